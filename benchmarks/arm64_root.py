"""The emulated arm64 side of ``python -m benchmarks.arm64_emulated`` (its docstring, steps 1-3, says why each
step is done this way): a Debian bookworm arm64 root unpacked without running arm64 programs, a ``/proc/cpuinfo``
for the emulated core, a venv made by the emulated Python with the aarch64 wheels of the runtime dependencies and
the edge-dfd wheel built on x86. Every arm64 program runs as ``qemu-aarch64-static -cpu CPU -L ROOT ...``."""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from benchmarks.common import REPO
from edge_dfd.core.progress import log

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
ROOT_PACKAGES = ("python3", "python3-venv", "libgomp1")
# Wheel tags the aarch64 wheels use (ai-edge-litert: manylinux_2_27, onnxruntime: 2_28, opencv: 2014/2_17).
AARCH64_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
                     "manylinux_2_28_aarch64")
QEMU = "qemu-aarch64-static"
# /proc/cpuinfo lines of the emulated cores: (CPU part, Features) as a Raspberry Pi's kernel prints them.
CPUINFO = {
    "cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid"),  # Raspberry Pi 4 (BCM2711)
    "cortex-a76": ("0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                            "lrcpc dcpop asimddp"),  # Raspberry Pi 5 (BCM2712)
    "neoverse-n1": ("0xd0c", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                             "lrcpc dcpop asimddp ssbs"),
}


def sh(cmd, log_file: Path | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the tail of its output."""
    cmd = [str(c) for c in cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if log_file is not None:
        with open(log_file, "a") as f:
            f.write(f"$ {' '.join(cmd)[:500]}\n{r.stdout}\n{r.stderr}\n[rc={r.returncode}]\n")
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"command failed (rc={r.returncode}): {' '.join(cmd)[:300]}\n" + "\n".join(tail))
    return r


def qemu_cmd(root: Path, cpu: str, exe, *args) -> list:
    return [QEMU, "-cpu", cpu, "-L", root, exe, *args]


def write_cpuinfo(root: Path, cpu: str) -> None:
    """ROOT/proc/cpuinfo for the emulated core, one entry per host CPU (the /sys topology is the host's)."""
    part, features = CPUINFO[cpu]
    n = len(_cpu_list(Path("/sys/devices/system/cpu/possible").read_text().strip()))
    entry = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {f}\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {p}\nCPU revision\t: 1\n\n")
    proc = root / "proc"
    if proc.is_symlink():
        proc.unlink()
    proc.mkdir(exist_ok=True)
    (proc / "cpuinfo").write_text("".join(entry.format(i=i, f=features, p=part) for i in range(n)))


def _cpu_list(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def build_root(work: Path, mirror: str, logf: Path) -> Path:
    root = work / "root"
    marker = root / ".edge-dfd-root.json"
    if marker.is_file():
        return root
    tmp = work / "root.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    log(f"debootstrap --foreign {SUITE} arm64 into {tmp} ...")
    sh(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=" + ",".join(ROOT_PACKAGES),
        SUITE, tmp, mirror], logf)
    # The second stage runs arm64 programs in a chroot: without binfmt_misc the kernel cannot exec them.
    second = subprocess.run(["chroot", str(tmp), "/debootstrap/debootstrap", "--second-stage"],
                            capture_output=True, text=True)
    note = (second.stderr or second.stdout).strip().splitlines()[-1:] or [""]
    log(f"debootstrap --second-stage in a chroot: rc={second.returncode} {note[0]}")
    base = (tmp / "debootstrap" / "base").read_text().split()
    archives = tmp / "var" / "cache" / "apt" / "archives"
    for pkg in base:
        debs = glob.glob(str(archives / f"{pkg}_*.deb"))
        if len(debs) != 1:
            raise RuntimeError(f"{pkg}: expected one .deb in {archives}, found {debs}")
        p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", debs[0]], stdout=subprocess.PIPE)
        p2 = subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(tmp)], stdin=p1.stdout,
                            capture_output=True, text=True)
        p1.stdout.close()
        if p1.wait() != 0 or p2.returncode != 0:
            raise RuntimeError(f"extracting {debs[0]} failed: {p2.stderr.strip()[-300:]}")
    for d in ("lib", "bin", "sbin"):
        if not (tmp / d).is_symlink():
            raise RuntimeError(f"{tmp / d} is no longer the merged-/usr symlink")
    facts = {"suite": SUITE, "mirror": mirror, "packages": ROOT_PACKAGES, "base_extracted": base,
             "second_stage": {"rc": second.returncode, "message": note[0]},
             "debian_version": (tmp / "etc" / "debian_version").read_text().strip()}
    tmp.rename(root)
    write_cpuinfo(root, "cortex-a72")
    r = sh(qemu_cmd(root, "cortex-a72", root / "usr" / "bin" / "python3", "-c",
                    "import platform; print(platform.machine(), platform.python_version())"), logf)
    facts["python"] = r.stdout.strip()
    marker.write_text(json.dumps(facts, indent=2))
    log(f"arm64 root ready: {r.stdout.strip()}")
    return root


def runtime_requirements() -> list[str]:
    """pyproject's [project] dependencies, pinned to the versions installed on this (x86) side when present."""
    from importlib import metadata

    import tomllib
    from packaging.requirements import Requirement  # pip vendors it; the x86 venv has it via setuptools/wheel

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    out = []
    for d in deps:
        req = Requirement(d)
        try:
            out.append(f"{req.name}=={metadata.version(req.name)}")
        except metadata.PackageNotFoundError:
            out.append(str(req))
    return out


def build_venv(root: Path, work: Path, logf: Path, cpu: str) -> Path:
    venv = root / "opt" / "venv"
    py = venv / "bin" / "python"
    if not (venv / ".edge-dfd-pip").is_file():
        if venv.exists():
            shutil.rmtree(venv)
        log("emulated: python3 -m venv --copies --without-pip; pip from python3-pip-whl ...")
        sh(qemu_cmd(root, cpu, root / "usr" / "bin" / "python3", "-m", "venv", "--copies", "--without-pip", venv),
           logf)
        wheels = root / "usr" / "share" / "python-wheels"
        pip_whl = next(wheels.glob("pip-*.whl"))
        sh(qemu_cmd(root, cpu, py, pip_whl / "pip", "install", "-q", "--no-index", "--find-links", wheels, "pip"), logf)
        (venv / ".edge-dfd-pip").write_text(pip_whl.name)
    # runtime dependencies: aarch64 wheels fetched on x86
    reqs = runtime_requirements()
    wheel_dir = work / "wheels"
    done = venv / ".edge-dfd-deps.json"
    if not done.is_file() or json.loads(done.read_text()) != reqs:
        log(f"pip download (aarch64, cp311): {' '.join(reqs)}")
        cmd = [sys.executable, "-m", "pip", "download", "-q", "-d", wheel_dir, "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp"]
        for p in AARCH64_PLATFORMS:
            cmd += ["--platform", p]
        sh(cmd + reqs, logf)
        log("emulated pip install --no-index --find-links wheels ...")
        sh(qemu_cmd(root, cpu, py, "-m", "pip", "install", "-q", "--no-index", "--no-compile", "--find-links",
                    wheel_dir, *reqs), logf)
        done.write_text(json.dumps(reqs))
    return py


def build_edge_dfd(root: Path, py: Path, work: Path, logf: Path, cpu: str) -> dict:
    """Build the edge-dfd wheel on x86 (pure Python) and install it into the arm64 venv if it changed."""
    dist = work / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    log("pip wheel --no-deps (edge-dfd, on x86) ...")
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, REPO], logf)
    whl = next(dist.glob("edge_dfd-*.whl"))
    with zipfile.ZipFile(whl) as z:
        record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        rec_sha = hashlib.sha256(z.read(record)).hexdigest()
    done = root / "opt" / "venv" / ".edge-dfd-wheel"
    if not done.is_file() or done.read_text() != rec_sha:
        log(f"emulated pip install {whl.name} ...")
        sh(qemu_cmd(root, cpu, py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--force-reinstall", whl), logf)
        done.write_text(rec_sha)
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "edge_dfd", "pyproject.toml"],
                           capture_output=True, text=True)
    return {"wheel": whl.name, "wheel_bytes": whl.stat().st_size, "wheel_record_sha256": rec_sha,
            "git_head": git.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
