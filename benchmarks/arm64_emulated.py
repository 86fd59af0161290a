"""arm64, verified under emulation: the Raspberry Pi runtime install and its predictions, compared with x86.

    python -m benchmarks.arm64_emulated                       # bundled tflite-int8 + onnx-int8-arm, 150 + 150 images
    python -m benchmarks.arm64_emulated --per-dataset 40      # quicker
    python -m benchmarks.arm64_emulated --model a.tflite --model b.onnx --qemu-cpu cortex-a72,cortex-a76

What it does, every step cached under runs/arm64/ (git-ignored; ``--fresh`` re-runs the predictions):

1. An arm64 Debian bookworm root (Python 3.11, glibc 2.36, like 64-bit Raspberry Pi OS Bookworm) WITHOUT
   touching kernel settings: ``debootstrap --foreign`` downloads and unpacks the essential packages; its second
   stage would have to execute arm64 programs (chroot), which fails here with "Exec format error" because
   binfmt_misc is not mounted. So the .deb files debootstrap downloaded for the rest of the base set (python3,
   python3-venv, ...) are unpacked with ``dpkg-deb --fsys-tarfile | tar -x --keep-directory-symlink`` (plain
   ``dpkg-deb -x`` replaces the merged-/usr ``/lib`` symlink with a directory and breaks the dynamic loader).
   No maintainer script runs; Python needs none. Every arm64 program is started explicitly as
   ``qemu-aarch64-static -cpu CPU -L ROOT ROOT/...``; an emulated program cannot start another one (no binfmt),
   so nothing here relies on subprocesses inside the emulator.
2. ``ROOT/proc`` is a directory holding only a ``cpuinfo`` written for the emulated core (Cortex-A72 = Pi 4,
   Cortex-A76 = Pi 5); every other /proc path falls through ``-L`` to the host's. Without it onnxruntime
   (pytorch/cpuinfo) reads the host's x86 /proc/cpuinfo, finds no ARM cores and dies with SIGSEGV on import.
3. A venv inside the root made by the emulated Python (``-m venv --copies --without-pip``; pip from Debian's
   python3-pip-whl), the aarch64 wheels of the runtime dependencies in pyproject.toml downloaded on x86
   (``pip download --platform manylinux..._aarch64 --only-binary=:all: --python-version 3.11``, pinned to the
   versions of the x86 environment so both sides run the same releases) and the edge-dfd wheel built on x86
   (``pip wheel --no-deps``, pure Python), installed by the emulated pip with ``--no-index --find-links``.
4. ``python -m edge_dfd predict --json --model FILE <images>`` on arm64 (emulated) and on x86 (this Python),
   on the test splits of ../shared/data/faces140k-sample and ffhq-tpdne-128 (``--per-dataset`` images of
   each, a seeded shuffle). The model files are copied (by sha256) into runs/arm64/models/ first, so both
   sides read the same bytes even if the bundled files change meanwhile.
5. Per format and emulated CPU: max / mean / median |dP| arm64 vs x86, verdict agreement (each side at its
   own file's threshold), accuracy on both sides; which runtime path each side used (``describe()``:
   XNNPACK threads, onnxruntime provider, ``qdq_in_float``); machine facts inside and outside the emulator.
   Writes benchmarks/results/arm64_emulated.{json,md}.

Timings under emulation mean nothing: QEMU's TCG translates every arm64 instruction (NEON and dot-product
included) into x86 code, tens to hundreds of times slower than a real core and not proportionally. The wall
times are recorded only to say how long the check takes. Measure speed on the device with ``edge-dfd bench``.

Needs (Debian): ``apt-get install qemu-user-static debootstrap``, network access to a Debian mirror and to PyPI
(or the configured index) for the first run, root (debootstrap), and ../shared/data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.arm64_root import (
    CPUINFO,
    MIRROR,
    QEMU,
    SUITE,
    build_edge_dfd,
    build_root,
    build_venv,
    qemu_cmd,
    sh,
    write_cpuinfo,
)
from benchmarks.common import FACES140K, REPO, RESULTS, RUNS, TPDNE128, need, need_data
from edge_dfd.core.progress import log, set_log_stamp

DATASETS = (FACES140K, TPDNE128)
WORK = RUNS / "arm64"
DEFAULT_MODELS = (REPO / "edge_dfd" / "assets" / "default" / "detector_int8.tflite",
                  REPO / "edge_dfd" / "assets" / "default" / "detector_int8arm.onnx")
TIMING_NOTE = ("Timings under emulation mean nothing: QEMU translates every arm64 instruction (NEON and dot-product "
               "kernels included) into x86 code in software, tens to hundreds of times slower than a real core and "
               "not in proportion between formats. Wall times are recorded only to say how long this check takes; "
               "measure speed on the device with `edge-dfd bench`.")

# Runs inside both Pythons (x86 and emulated arm64): facts about that side, one JSON line on stdout.
PROBE = r"""
import json, os, platform, sys
from importlib import metadata
out = {"uname_m": platform.machine(), "uname": list(os.uname()), "python": platform.python_version(),
       "libc": list(platform.libc_ver()), "executable": sys.executable}
out["versions"] = {}
for n in ("edge-dfd", "numpy", "onnxruntime", "ai-edge-litert", "opencv-python-headless", "pillow", "flatbuffers"):
    try:
        out["versions"][n] = metadata.version(n)
    except metadata.PackageNotFoundError:
        pass
try:
    from numpy._core._multiarray_umath import __cpu_features__ as f
    out["numpy_cpu_features"] = sorted(k for k, v in f.items() if v)
except Exception as e:
    out["numpy_cpu_features"] = repr(e)
import edge_dfd, onnxruntime
out["edge_dfd_file"] = edge_dfd.__file__
out["onnxruntime_providers"] = onnxruntime.get_available_providers()
from edge_dfd.core.machine import int8_saturates
out["int8_saturates"] = int8_saturates()
print(json.dumps(out))
"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ the comparison (pure numpy, unit-tested)


def compare(p_x86, p_arm, labels, thr_x86: float, thr_arm: float) -> dict:
    """arm64 vs x86 on the same images. ``labels``: 1 = fake, 0 = real (None: no accuracy).

    Verdict = fake when P(fake) >= that side's threshold (as ``edge-dfd predict`` decides)."""
    a = np.asarray(p_x86, dtype=np.float64).reshape(-1)
    b = np.asarray(p_arm, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two non-empty arrays of the same length, got {a.shape} and {b.shape}")
    dp = np.abs(a - b)
    va, vb = a >= thr_x86, b >= thr_arm
    out = {
        "n": int(a.size),
        "max_abs_dp": float(dp.max()),
        "mean_abs_dp": float(dp.mean()),
        "median_abs_dp": float(np.median(dp)),
        "identical": int((dp == 0).sum()),
        "agreement": float((va == vb).mean()),
        "disagree": int((va != vb).sum()),
        "disagree_idx": [int(i) for i in np.flatnonzero(va != vb)],
        "threshold_x86": float(thr_x86),
        "threshold_arm64": float(thr_arm),
    }
    if labels is not None:
        y = np.asarray(labels).reshape(-1).astype(bool)
        if y.shape != a.shape:
            raise ValueError(f"labels: {y.shape} for {a.shape} predictions")
        out["accuracy_x86"] = float((va == y).mean())
        out["accuracy_arm64"] = float((vb == y).mean())
        out["fake_share"] = float(y.mean())
    return out


def markdown(doc: dict) -> str:
    lines = ["# arm64 (emulated) vs x86: the runtime install and its predictions", "",
             f"Written {doc['written']} by `{doc['command']}`.", "",
             f"**{TIMING_NOTE}**", ""]
    for note in doc.get("notes", []):
        lines += [f"- {note}"]
    lines += ["", "## Results", "",
              "| format | file (sha256) | emulated CPU | N | max abs dP | mean abs dP | median abs dP | identical P "
              "| verdict agreement | accuracy x86 | accuracy arm64 | x86 path | arm64 path |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in doc["results"]:
        c = r["compare"]
        lines.append(
            f"| {r['format']} | {r['file']} ({r['sha256'][:12]}) | {r['qemu_cpu']} | {c['n']} | {c['max_abs_dp']:.2e} "
            f"| {c['mean_abs_dp']:.2e} | {c['median_abs_dp']:.2e} | {c['identical']}/{c['n']} "
            f"| {c['agreement']:.4f} ({c['disagree']} differ) "
            f"| {c['accuracy_x86']:.4f} | {c['accuracy_arm64']:.4f} | {r['x86']['path_used']} "
            f"| {r['arm64']['path_used']} |")
    lines += ["", "P(fake) is compared as `edge-dfd predict --json` prints it (6 decimals), so |dP| below 1e-6 shows "
              "as 0. Verdicts: fake when P(fake) >= the threshold stored in the file (each side reads its own copy).",
              "", "Per dataset (same columns):", "",
              "| format | emulated CPU | x86 path | dataset | N | max abs dP | mean abs dP | agreement | accuracy x86 "
              "| accuracy arm64 |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in doc["results"]:
        for name, c in r["per_dataset"].items():
            lines.append(f"| {r['format']} | {r['qemu_cpu']} | {r['x86']['path_used']} | {name} | {c['n']} "
                         f"| {c['max_abs_dp']:.2e} "
                         f"| {c['mean_abs_dp']:.2e} | {c['agreement']:.4f} | {c['accuracy_x86']:.4f} "
                         f"| {c['accuracy_arm64']:.4f} |")
    m = doc["machine"]
    lines += ["", "## Machine", "",
              "| | x86 (host) | arm64 (emulated) |", "|---|---|---|",
              f"| uname -m | {m['x86']['uname_m']} | {m['arm64']['uname_m']} (`uname -m` in the root: "
              f"{m['arm64_uname_m_binary']}) |",
              f"| Python / libc | {m['x86']['python']} / {' '.join(m['x86']['libc'])} | {m['arm64']['python']} / "
              f"{' '.join(m['arm64']['libc'])} |"]
    names = sorted(set(m["x86"]["versions"]) | set(m["arm64"]["versions"]))
    for n in names:
        lines.append(f"| {n} | {m['x86']['versions'].get(n, '-')} | {m['arm64']['versions'].get(n, '-')} |")
    lines += [f"| int8 kernels saturate (x86 without VNNI) | {m['x86']['int8_saturates']} | "
              f"{m['arm64']['int8_saturates']} |",
              "", f"- Host CPU: {m['host_cpu']}; emulator: {m['qemu_version']}; arm64 root: Debian "
              f"{m['debian_version']} ({SUITE}) made without kernel changes (see the script's docstring).",
              "- Emulated CPU features (numpy, per `-cpu`): " + "; ".join(
                  f"{cpu}: {' '.join(f) if isinstance(f, list) else f}" for cpu, f in m["arm64_cpu_features"].items()),
              f"- edge-dfd source: git {doc['source']['git_head'][:12]}"
              f"{' + uncommitted changes' if doc['source']['dirty'] else ''}; wheel RECORD sha256 "
              f"{doc['source']['wheel_record_sha256'][:12]}.",
              "", "## Wall time of this check (NOT a speed measurement)", "",
              "| format | emulated CPU | x86 path | x86 s | arm64 emulated s |", "|---|---|---|---:|---:|"]
    for r in doc["results"]:
        lines.append(f"| {r['format']} | {r['qemu_cpu']} | {r['x86']['path_used']} | {r['x86']['wall_s']:.1f} "
                     f"| {r['arm64']['wall_s']:.1f} |")
    lines += ["", TIMING_NOTE, ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ images, models, predictions


def select_images(per_dataset: int, seed: int) -> list[dict]:
    from edge_dfd.images.data import load_split

    out = []
    for root in DATASETS:
        recs = sorted(load_split(root, "test"), key=lambda r: str(r.path))
        order = np.random.default_rng(seed).permutation(len(recs))[:per_dataset]
        out += [{"path": str(recs[i].path), "fake": int(recs[i].is_fake), "dataset": root.name}
                for i in sorted(order)]
    return out


def stage_model(path: Path, work: Path) -> tuple[Path, str]:
    digest = sha256(path)
    dst = work / "models" / digest[:16] / path.name
    if not dst.is_file() or sha256(dst) != digest:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
        if sha256(dst) != digest:
            raise RuntimeError(f"{path} changed while it was being copied; run again")
    return dst, digest


def run_predict(cmd: list, cwd: Path, log_path: Path, env: dict) -> tuple[dict, float]:
    t0 = time.perf_counter()
    with open(log_path, "w") as err:
        r = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-10:]
        raise RuntimeError(f"predict failed (rc={r.returncode}), log {log_path}:\n" + "\n".join(tail))
    return json.loads(r.stdout[r.stdout.index("{"):]), wall


def path_used(model: dict) -> str:
    s = f"{model['runtime']}: {model['provider']}"
    if "qdq_in_float" in model:
        s += ", QDQ in float" if model["qdq_in_float"] else ", int8 kernels"
    return s


def side_predictions(side: str, cpu: str, model: Path, digest: str, images: list[dict], args, root: Path,
                     py: Path, env: dict) -> dict:
    key = hashlib.sha256(json.dumps([i["path"] for i in images]).encode()).hexdigest()[:12]
    # keyed on the model, the images and the edge-dfd wheel (the code both sides run)
    tag = f"{side}-{cpu}-{digest[:12]}-{key}-w{args.wheel_key}-t{args.threads}b{args.batch_size}"
    cache = args.work / "preds" / f"{tag}.json"
    if cache.is_file() and not args.fresh:
        log(f"cached: {cache.name}")
        return json.loads(cache.read_text())
    cache.parent.mkdir(parents=True, exist_ok=True)
    predict = ["-m", "edge_dfd", "predict", "--json", "--threads", str(args.threads), "--batch-size",
               str(args.batch_size), "--model", model, *[i["path"] for i in images]]
    if side == "arm64":
        write_cpuinfo(root, cpu)
        cmd = qemu_cmd(root, cpu, py, *predict)
    else:
        cmd = [sys.executable, *predict]
    where = cpu if side == "arm64" else f"{platform.machine()}, {cpu}"
    log(f"{side} ({where}) predict {model.name} on {len(images)} images ...")
    doc, wall = run_predict(cmd, args.work, cache.with_suffix(".log"), env)
    res = {"model": doc["model"], "summary": doc["summary"], "wall_s": wall,
           "p_fake": {r["path"]: r["p_fake"] for r in doc["results"]}}
    cache.write_text(json.dumps(res))
    log(f"  done in {wall:.0f} s (wall; meaningless under emulation)")
    return res


def probe(cmd_prefix: list, cwd: Path, env: dict) -> dict:
    r = subprocess.run([str(c) for c in [*cmd_prefix, "-c", PROBE]], cwd=cwd, capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise RuntimeError(f"probe failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    set_log_stamp(True)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", type=Path, default=None,
                    help="model file (repeatable); default: the bundled detector_int8.tflite and detector_int8arm.onnx")
    ap.add_argument("--per-dataset", type=int, default=150, help="test images from each shared set (default 150)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--qemu-cpu", default="cortex-a72",
                    help=f"comma-separated emulated cores, of {', '.join(CPUINFO)} (default cortex-a72 = Pi 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--work", type=Path, default=WORK, help=f"cache folder (default {WORK.relative_to(REPO)})")
    ap.add_argument("--mirror", default=MIRROR)
    ap.add_argument("--fresh", action="store_true", help="re-run the predictions even when cached")
    ap.add_argument("--out", type=Path, default=RESULTS / "arm64_emulated",
                    help="results stem (.json and .md are written)")
    ap.add_argument("--report", action="store_true", help="only rewrite the .md from the existing .json")
    args = ap.parse_args(argv)
    if args.report:
        args.out.with_suffix(".md").write_text(markdown(json.loads(args.out.with_suffix(".json").read_text())))
        return 0
    cpus = [c.strip() for c in args.qemu_cpu.split(",") if c.strip()]
    for c in cpus:
        if c not in CPUINFO:
            ap.error(f"--qemu-cpu {c}: expected one of {', '.join(CPUINFO)}")
    need(shutil.which(QEMU) is not None and shutil.which("debootstrap") is not None, f"{QEMU} and debootstrap",
         "apt-get install qemu-user-static debootstrap")
    need_data(*DATASETS)
    models = args.model or list(DEFAULT_MODELS)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    logf = args.work / "build.log"

    root = build_root(args.work, args.mirror, logf)
    write_cpuinfo(root, cpus[0])
    py = build_venv(root, args.work, logf, cpus[0])
    source = build_edge_dfd(root, py, args.work, logf, cpus[0])
    args.wheel_key = source["wheel_record_sha256"][:8]

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", EDGE_QDQ)}
    env.update(PYTHONNOUSERSITE="1", TF_CPP_MIN_LOG_LEVEL="2")
    machine = {"x86": probe([sys.executable], args.work, env), "arm64_cpu_features": {}}
    for cpu in cpus:
        write_cpuinfo(root, cpu)
        facts = probe(qemu_cmd(root, cpu, py), args.work, env)
        machine.setdefault("arm64", facts)
        machine["arm64_cpu_features"][cpu] = facts["numpy_cpu_features"]
    if not machine["arm64"]["edge_dfd_file"].startswith(str(root)):
        raise RuntimeError(f"arm64 side imports edge_dfd from {machine['arm64']['edge_dfd_file']}, not the root's venv")
    machine["arm64_uname_m_binary"] = sh(qemu_cmd(root, cpus[0], root / "usr" / "bin" / "uname", "-m")).stdout.strip()
    machine["qemu_version"] = sh([QEMU, "--version"]).stdout.splitlines()[0]
    machine["debian_version"] = (root / "etc" / "debian_version").read_text().strip()
    from edge_dfd.core.machine import cpu_model

    machine["host_cpu"] = cpu_model()
    root_facts = json.loads((root / ".edge-dfd-root.json").read_text())

    images = select_images(args.per_dataset, args.seed)
    log(f"{len(images)} test images: " + ", ".join(f"{d.name} {sum(i['dataset'] == d.name for i in images)}"
                                                    for d in DATASETS))
    results = []
    for src in models:
        staged, digest = stage_model(src.resolve(), args.work)
        # x86 runs the file as this CPU decides (VNNI here: int8 kernels); an .onnx file also once with its
        # QDQ graph in float (EDGE_DFD_ONNX_QDQ=float), the path x86 CPUs without VNNI take for onnx-int8-arm.
        variants = [("native", env)]
        if staged.suffix.lower() == ".onnx":
            variants.append(("qdq-float", {**env, EDGE_QDQ: "float"}))
        for variant, x86_env in variants:
            x86 = side_predictions("x86", variant, staged, digest, images, args, root, py, x86_env)
            for cpu in cpus:
                arm = side_predictions("arm64", cpu, staged, digest, images, args, root, py, env)
                missing = [i["path"] for i in images
                           if i["path"] not in x86["p_fake"] or i["path"] not in arm["p_fake"]]
                if missing:
                    raise RuntimeError(f"{len(missing)} image(s) without a prediction on one side, e.g. {missing[0]}")
                pa = [x86["p_fake"][i["path"]] for i in images]
                pb = [arm["p_fake"][i["path"]] for i in images]
                y = [i["fake"] for i in images]
                cmp_all = compare(pa, pb, y, x86["model"]["threshold"], arm["model"]["threshold"])
                cmp_all["disagree_paths"] = [images[k]["path"] for k in cmp_all.pop("disagree_idx")]
                per = {}
                for d in DATASETS:
                    ix = [k for k, i in enumerate(images) if i["dataset"] == d.name]
                    c = compare([pa[k] for k in ix], [pb[k] for k in ix], [y[k] for k in ix],
                                x86["model"]["threshold"], arm["model"]["threshold"])
                    c.pop("disagree_idx")
                    per[d.name] = c
                side = lambda s: {"describe": s["model"], "path_used": path_used(s["model"]), "wall_s": s["wall_s"],
                                  "summary": {k: v for k, v in s["summary"].items() if k != "errors"}}
                results.append({"format": x86["model"]["format"], "x86_variant": variant, "file": src.name,
                                "source_path": str(src), "sha256": digest, "bytes": staged.stat().st_size,
                                "qemu_cpu": cpu, "compare": cmp_all, "per_dataset": per, "x86": side(x86),
                                "arm64": side(arm)})
                c = cmp_all
                log(f"{results[-1]['format']} [{cpu} vs x86 {variant}]: max|dP| {c['max_abs_dp']:.2e} "
                    f"mean {c['mean_abs_dp']:.2e} agreement {c['agreement']:.4f} "
                    f"acc x86 {c['accuracy_x86']:.4f} arm64 {c['accuracy_arm64']:.4f}")

    manifest = REPO / "edge_dfd" / "assets" / "default" / "manifest.json"
    notes = [
        "arm64 side: Debian bookworm arm64 root (Python 3.11, glibc 2.36) run with qemu-user "
        f"({QEMU} -cpu CPU -L ROOT), no binfmt_misc and no kernel change; debootstrap's second stage "
        f"cannot run that way (chroot: rc={root_facts['second_stage']['rc']} "
        f"'{root_facts['second_stage']['message']}'), so the base .debs were unpacked directly.",
        "ROOT/proc/cpuinfo is synthetic (the emulated core's MIDR and features): onnxruntime's cpuinfo crashes "
        "(SIGSEGV on import) on the host's x86 /proc/cpuinfo.",
        "The arm64 venv holds the aarch64 wheels of pyproject's runtime dependencies, pinned to the x86 versions, "
        "and the edge-dfd wheel built from this tree; both sides run `python -m edge_dfd predict --json`.",
        "Each .onnx file is also run on x86 with its QDQ graph in float (EDGE_DFD_ONNX_QDQ=float; x86 path "
        "'QDQ in float'): the path edge-dfd takes for onnx-int8-arm on x86 CPUs without VNNI, compared here with "
        "what the arm64 int8 kernels compute.",
        "Emulation checks that the aarch64 builds install, import and compute the same answers (QEMU implements "
        "arm64 integer, NEON and IEEE float semantics in software); it is not a run on Raspberry Pi hardware.",
    ]
    doc = {
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m benchmarks.arm64_emulated " + " ".join(argv if argv is not None else sys.argv[1:]),
        "timing_note": TIMING_NOTE, "notes": notes,
        "images": {"n": len(images), "per_dataset": args.per_dataset, "seed": args.seed,
                   "datasets": {d.name: sum(i["dataset"] == d.name for i in images) for d in DATASETS},
                   "split": "test"},
        "bundled_manifest_model_version": (json.loads(manifest.read_text()).get("model_version")
                                           if manifest.is_file() else None),
        "threads": args.threads, "batch_size": args.batch_size,
        "source": source, "root": root_facts, "machine": machine, "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    log(f"wrote {args.out.with_suffix('.json')} and .md")
    return 0


EDGE_QDQ = "EDGE_DFD_ONNX_QDQ"

if __name__ == "__main__":
    sys.exit(main())
