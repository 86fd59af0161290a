"""Planning one ``edge-dfd bench`` run: model arguments -> (format, file) targets, a ``.keras`` source converted
once into a cache keyed by its sha256, each target measured by ``worker.measure_isolated``, rows and notes."""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_dfd.bench import worker
from edge_dfd.bench.result import (
    DEFAULT_MODEL_PROBES,
    DEFAULT_MODEL_RUNS,
    DEFAULT_OUT,
    DEFAULT_RUNS,
    DEFAULT_THREADS,
    DEFAULT_WARMUP,
    NOT_MEASURED,
    PROBE_N,
    BenchResult,
    BenchRow,
)
from edge_dfd.errors import EdgeDFDError, ModelError
from edge_dfd.formats import FORMATS, format_of_file, parse_formats, runtime_of_file
from edge_dfd.fsutil import ensure_writable_dir, sha256_file
from edge_dfd.verdicts import agreement

__all__ = ["default_probe_inputs", "have_tensorflow", "run_bench"]


def have_tensorflow() -> bool:
    """True when TensorFlow is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def default_probe_inputs(size: int, n: int = PROBE_N) -> np.ndarray:
    """Deterministic generated inputs shared with the converter's verification (no TensorFlow needed)."""
    from edge_dfd.convert import probe_inputs

    return probe_inputs(n, size, seed=0)


@dataclass
class _Target:
    group: str
    fmt: str
    path: Path | None
    status: str | None = None  # pre-set for skipped / failed-before-measuring rows


def _group_targets(models, formats, cache_root: Path, data, log, convert_kwargs=None) -> list[list[_Target]]:
    """Model arguments -> groups of (format, file) to measure; a .keras source is converted (cached)."""
    from edge_dfd import zoo

    groups = []
    if not models:
        have = zoo.available_formats()
        if not have:
            zoo.default_path()  # raises the 'bundled model missing' ModelError
        wanted = [f.name for f in parse_formats(formats, allow_keras=True)]
        groups.append([_Target("default", n, zoo.default_path(n))  # default_path checks the manifest
                       for n in wanted if n in have])
        return groups
    for m in models:
        p = Path(m)
        if str(m) == "default":
            groups.extend(_group_targets([], formats, cache_root, data, log, convert_kwargs))
            continue
        if zoo.is_bundled_name(m):  # another bundled model ("ten-pass"): every format it has
            d = zoo.NAMED[str(m)]
            groups.append([_Target(str(m), n, zoo.bundled_path(str(m), n)) for n in zoo.available_formats(d)])
            continue
        if not p.is_file():
            raise ModelError(f"{p}: model file not found")
        if p.suffix.lower() != ".keras":
            runtime_of_file(p)  # an unknown suffix: one line naming the file and the accepted suffixes
            groups.append([_Target(p.name, format_of_file(p).name, p)])
            continue
        wanted = [f.name for f in parse_formats(formats, allow_keras=True)]
        groups.append(_convert_cached(p, wanted, cache_root, data, log, convert_kwargs or {}))
    return groups


def _convert_cached(src: Path, wanted: list[str], cache_root: Path, data, log, convert_kwargs: dict) -> list[_Target]:
    """Convert ``src`` to the wanted export formats into cache_root/<sha256[:16]>, reusing earlier results."""
    group = src.name
    targets = [_Target(group, "keras", src)] if "keras" in wanted else []
    exports = [n for n in wanted if n != "keras"]
    if not exports:
        return targets
    if not have_tensorflow():
        return targets + [_Target(group, n, None, "skipped: TensorFlow not installed (needed to convert)")
                          for n in exports]
    cache = ensure_writable_dir(cache_root / sha256_file(src)[:16])
    stem = src.stem
    missing = [n for n in exports if not (cache / FORMATS[n].filename(stem)).is_file()]
    failed: dict[str, str] = {}
    if missing:
        from edge_dfd.convert import convert_model

        log(f"converting {src.name} to {', '.join(missing)} (cached in {cache})")
        calib = str(data) if data else None
        def convert(names):
            for r in convert_model(src, names, out_dir=cache, calib_data=calib, progress=log, **convert_kwargs):
                if not r.ok:
                    failed[r.format] = str(r.error or "conversion failed")
                    Path(r.path).unlink(missing_ok=True)  # never reuse a failed export from the cache

        try:
            convert(missing)  # one call: the model is loaded and exported to a SavedModel once
        except EdgeDFDError:
            for n in missing:  # a format refused up front (e.g. int8 without data) must not sink the others
                try:
                    convert([n])
                except EdgeDFDError as exc:
                    failed[n] = str(exc)
    for n in exports:
        path = cache / FORMATS[n].filename(stem)
        if n in failed:
            targets.append(_Target(group, n, path, f"failed: {failed[n]}"))
        elif not path.is_file():
            targets.append(_Target(group, n, path, "failed: converter wrote no file"))
        else:
            targets.append(_Target(group, n, path))
    return targets


def run_bench(models=(), data=None, split: str = "test", formats: str | None = "all",
              threads: int = DEFAULT_THREADS, warmup: int = DEFAULT_WARMUP, runs: int | None = None, floor: float | None = None, robustness: bool = False,
              out_dir=None, provider: str | None = None, log=None, convert_kwargs: dict | None = None,
              probes: int | None = None, sample: int | None = None, seed: int = 0) -> BenchResult:
    """Measure every requested format of every model; returns the rows (does not write files).

    ``runs`` / ``probes`` default to 100 / 64, or to ``DEFAULT_MODEL_RUNS`` / ``DEFAULT_MODEL_PROBES`` when no
    model is given (the bundled 10-pass detector in 7 formats must finish within 3 minutes on 2 cores).
    ``convert_kwargs`` go to ``edge_dfd.convert.convert_model`` (e.g. calib_size, verify_size).
    ``sample``: measure accuracy on a class-stratified sample of that many images of ``data`` (drawn with
    ``seed``; the same images for every format), recorded in ``settings["sample"]``.
    """
    from edge_dfd import progress
    from edge_dfd.errors import UsageError
    from edge_dfd.evaluate import sample_info
    from edge_dfd.machine import machine_facts

    log = log or progress.echo
    if runs is None:
        runs = DEFAULT_RUNS if models else DEFAULT_MODEL_RUNS
    if probes is None:
        probes = PROBE_N if models else DEFAULT_MODEL_PROBES
    if runs < 1 or warmup < 0:
        raise EdgeDFDError(f"--runs {runs} / --warmup {warmup}: expected runs >= 1 and warmup >= 0")
    if floor is not None and not data:
        raise EdgeDFDError("--floor needs labelled images: add --data DIR")
    if robustness and not data:
        raise EdgeDFDError("--robustness needs labelled images: add --data DIR")
    if sample is not None and not data:
        raise UsageError(f"--sample {sample} needs labelled images: add --data DIR")
    parse_formats(formats, allow_keras=True)  # unknown names fail even when no .keras model needs them
    records, population = None, None
    if data:
        from edge_dfd.data import load_split
        from edge_dfd.evaluate import sample_records

        recs = load_split(data, split)
        population = len(recs)
        recs = sample_records(recs, sample, seed, where=f"{data} [{split}]")  # a bad --sample: before any output
        records = [[str(r.path), int(r.label)] for r in recs]
    out = ensure_writable_dir(out_dir or DEFAULT_OUT)
    groups = _group_targets(list(models), formats, out / "cache", data, log, convert_kwargs)
    notes = []
    rows: list[BenchRow] = []
    in_float: list[str] = []  # formats whose quantised graph ran in float (see edge_dfd.runtime.onnx)
    tf_ok = have_tensorflow()
    todo = sum(1 for g in groups for t in g if t.status is None and (t.fmt != "keras" or tf_ok))
    done = 0
    with tempfile.TemporaryDirectory(prefix="edge-dfd-bench-") as tmp, \
            progress.bar(todo, "bench", unit="format") as overall:
        tmp = Path(tmp)
        probe_cache: dict[int, tuple[str, list[str]]] = {}
        for group in groups:
            ref = None  # Keras probabilities on the probe inputs, for agreement
            size = None
            for tgt in group:
                if tgt.status is None and tgt.fmt == "keras" and not tf_ok:
                    tgt.status = "skipped: TensorFlow not installed"
                if tgt.status is not None:
                    rows.append(BenchRow(tgt.group, tgt.fmt, tgt.status, path=str(tgt.path or "")))
                    continue
                size = size or _input_size(tgt.path)
                if size not in probe_cache:
                    probe_cache[size] = _write_probes(tmp, size, probes)
                probe_npy, probe_files = probe_cache[size]
                job = {"path": str(tgt.path), "threads": threads, "warmup": warmup, "runs": runs,
                       "records": records, "probe_npy": probe_npy, "probe_files": probe_files,
                       "robustness": robustness,
                       "provider": provider if tgt.path.suffix.lower() == ".onnx" else None}
                log(f"measuring {tgt.group} {tgt.fmt} ({tgt.path.name}) ...")
                done += 1
                res = worker.measure_isolated(job, tmp, label=f"[{done}/{todo}] {tgt.fmt}")
                overall.update(1)
                row = _row(tgt, res, threads, floor)
                if res.get("qdq_in_float") and tgt.fmt not in in_float:
                    in_float.append(tgt.fmt)
                if tgt.fmt == "keras" and res.get("ok"):
                    ref, ref_t = np.asarray(res.get("probe_p")), res["threshold"]
                if ref is not None and res.get("ok") and res.get("probe_p") is not None:
                    p = np.asarray(res["probe_p"])
                    t = res["threshold"]  # each file's verdicts at its own threshold (int8 files carry their own)
                    row = _replace(row, agreement=agreement(p, ref, t, ref_t),
                                   max_abs_diff=float(np.abs(p - ref).max()))
                rows.append(row)
    if in_float:
        notes.append(f"{', '.join(in_float)}: full 8-bit weights, which this CPU's int8 kernels (x86 without VNNI) "
                     "would saturate, so its quantised graph ran in float: its accuracy and agreement are what an "
                     "ARM64 / VNNI CPU computes; its latency is not int8 latency")
    if data:
        drawn = (f"a class-stratified sample of {len(records)} of the {population} images (seed {seed}), the same for "
                 "every format" if sample is not None else f"all {len(records)} images")
        notes.append(f"accuracy on {drawn} of {data} [{split}]; acc 95% CI = its Wilson score interval")
    if not data:
        notes.append(f"accuracy {NOT_MEASURED}: no labelled images ship with edge-dfd; add them with "
                     "`edge-dfd bench --data DIR` (DIR = a 140k-layout folder, e.g. the Kaggle 140k dataset)")
    if any(r.fmt == "keras" for g in groups for r in g) and not tf_ok:
        notes.append("keras row skipped: TensorFlow is not installed (runtime-only install); "
                     "agreement with Keras not measured")
    notes.append("peak_rss_mb: high-water RSS of a fresh process that loaded only that model and ran its "
                 "measurements (Python, numpy, OpenCV and the runtime included; baseline_rss_mb = same process "
                 "before loading the model)")
    settings = {"data": str(data) if data else None, "split": split if data else None, "threads": threads,
                "warmup": warmup, "runs": runs, "floor": floor, "robustness": robustness,
                "provider": provider, "n_images": len(records) if records else None,
                "probe_inputs": probes, "sample": sample_info(sample, seed, population) if data else None}
    return BenchResult(machine_facts(threads), rows, notes, settings)


def _replace(row: BenchRow, **kw) -> BenchRow:
    from dataclasses import replace

    return replace(row, **kw)


def _input_size(path: Path) -> int:
    """The model's input size from its metadata (no runtime needed when present)."""
    from edge_dfd.meta import read_meta

    meta = read_meta(path)
    if meta is not None:
        return int(meta.input_size)
    if path.suffix.lower() == ".keras":  # read config.json instead of loading TensorFlow in this process
        from edge_dfd.kerasio import config_input_size

        return config_input_size(path)
    from edge_dfd.runtime import load_model

    return load_model(path).input_size


def _write_probes(tmp: Path, size: int, n: int = PROBE_N) -> tuple[str, list[str]]:
    """Probe inputs as .npy (exact arrays, for agreement) and PNG files (for end-to-end throughput)."""
    import cv2

    probe = default_probe_inputs(size, n)
    d = ensure_writable_dir(tmp / f"probe{size}")
    npy = d / "probe.npy"
    np.save(npy, probe)
    files = []
    for i, img in enumerate(probe):
        f = d / f"{i:03d}.png"
        cv2.imwrite(str(f), img[..., ::-1])
        files.append(str(f))
    return str(npy), files


def _row(tgt: _Target, res: dict, threads: int, floor: float | None) -> BenchRow:
    size = tgt.path.stat().st_size if tgt.path and tgt.path.is_file() else None
    base = dict(model=tgt.group, format=tgt.fmt, path=str(tgt.path), bytes=size,
                size_mb=round(size / 1e6, 3) if size else None, threads=threads)
    if not res.get("ok"):
        return BenchRow(status=f"failed: {res.get('error', 'unknown error')}", **base)
    from edge_dfd.metrics import wilson_interval

    rep = res.get("report") or {}
    lat = res["latency"]
    status = "ok"
    acc = rep.get("accuracy")
    ci = wilson_interval(round(acc * rep["n"]), rep["n"]) if acc is not None and rep.get("n") else (None, None)
    if floor is not None and (acc is None or acc < floor):
        status = "below floor"
    r2 = lambda v, k=3: None if v is None else round(float(v), k)
    return BenchRow(
        status=status, runtime=res.get("runtime"), provider=res.get("provider"), threshold=res.get("threshold"),
        n=rep.get("n"), accuracy=acc, accuracy_ci95_low=ci[0], accuracy_ci95_high=ci[1],
        balanced_accuracy=rep.get("balanced_accuracy"), auc=rep.get("auc"),
        ap=rep.get("ap"), eer=rep.get("eer"), precision=rep.get("precision"), recall=rep.get("recall"),
        f1=rep.get("f1"), latency_ms_p50=r2(lat["p50"]), latency_ms_p90=r2(lat["p90"]),
        latency_ms_p99=r2(lat["p99"]), latency_ms_mean=r2(lat["mean"]), preprocess_ms=r2(res.get("preprocess_ms")),
        images_per_s=r2(res.get("images_per_s"), 1), load_ms=r2(res["load_ms"], 1),
        first_inference_ms=r2(res["first_inference_ms"]), peak_rss_mb=r2(res["peak_rss_mb"], 1),
        baseline_rss_mb=r2(res["baseline_rss_mb"], 1), skipped_images=res.get("skipped_images"),
        robustness=res.get("robustness"), **base)
