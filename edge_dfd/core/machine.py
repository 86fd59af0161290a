"""Machine facts recorded with every benchmark result: CPU, cores, SIMD flags, OS, Python, runtime versions.

Reads /proc/cpuinfo where present; never imports TensorFlow (versions come from package metadata).
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

# SIMD features that decide int8 / fp32 speed on x86-64 and Arm
FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8",
         "asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")
PACKAGES = ("edge-dfd", "numpy", "opencv-python-headless", "opencv-python", "ai-edge-litert", "onnxruntime",
            "tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx")


def _cpuinfo() -> dict:
    info: dict = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if ":" not in line:
                    continue
                k, v = (s.strip() for s in line.split(":", 1))
                info.setdefault(k, v)
    except OSError:
        pass
    return info


def cpu_model() -> str:
    info = _cpuinfo()
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    info = _cpuinfo()
    have = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in FLAGS if f in have]


X86 = ("x86_64", "amd64", "i386", "i686", "x86")
VNNI = ("avx512_vnni", "avx_vnni")


def int8_saturates(arch: str | None = None, flags=None) -> bool:
    """True on x86 CPUs without VNNI: onnxruntime's u8 x s8 kernels there sum pairs of products in 16 bits
    (VPMADDUBSW), which saturates for weights using the full int8 range. ARM64 and VNNI CPUs accumulate in
    32 bits. ``arch`` / ``flags`` describe another machine (e.g. recorded ``machine_facts``); by default this
    one: flags from /proc/cpuinfo, else numpy's CPU dispatch table (macOS, Windows)."""
    if (arch if arch is not None else platform.machine()).lower() not in X86:
        return False
    if flags is None:
        flags = (_cpuinfo().get("flags") or "").split() or None
    if flags is not None:
        return not set(VNNI) & set(flags)
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            return True
    return not feats.get("AVX512VNNI", False)


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_gb() -> float | None:
    """Total physical memory in GiB (sysconf: Linux and macOS), None where unknown."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def physical_cores() -> int | None:
    """Distinct (package, core) pairs in /proc/cpuinfo; None where it does not list them (Arm, non-Linux)."""
    cores, phys = set(), None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                k, _, v = (s.strip() for s in line.partition(":"))
                if k == "physical id":
                    phys = v
                elif k == "core id":
                    cores.add((phys, v))
    except OSError:
        return None
    return len(cores) or None


def machine_facts(threads: int | None = None) -> dict:
    """One dict with everything needed to compare results between machines."""
    mem_gb, physical = memory_gb(), physical_cores()
    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": usable_cores(),
        "cpu_flags": cpu_flags(),
        "memory_gb": mem_gb,
        "threads": threads,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_impl": sys.implementation.name,
        "versions": versions(),
    }
