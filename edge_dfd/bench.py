"""``edge-dfd bench``: size, accuracy, latency, throughput and memory of every format, side by side.

Each model file is measured in a FRESH subprocess (``python -m edge_dfd.bench JOB RESULT``), so that the
peak RSS of one format is not inflated by another (or by TensorFlow, which only the keras row loads).
``peak_rss_mb`` is that process's high-water mark (Python + numpy + OpenCV + the runtime + the model);
``baseline_rss_mb`` is the same process before it loaded the model.

Timings (``time.perf_counter``):
  load_ms             building the backend (file read, interpreter / session creation)
  first_inference_ms  the first predict() on one image after loading
  latency_ms_p50/90/99  batch-1 predict() (model only: quantise, invoke, dequantise), after ``warmup`` runs
  preprocess_ms       decode + centre-crop + resize of one image (edge_dfd.preprocess), sequential
  images_per_s        end to end over the split: threaded decode overlapped with batched inference
Accuracy comes from ``edge_dfd.evaluate.score_records``, the function ``edge-dfd evaluate`` uses.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from edge_dfd.errors import EdgeDFDError, ModelError, QualityGateError
from edge_dfd.formats import FORMATS, format_of_file, parse_formats
from edge_dfd.fsutil import (
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    sha256_file,
)
from edge_dfd.perturb import PERTURBATIONS, perturb

PROBE_N = 64
DEFAULT_MODEL_RUNS, DEFAULT_MODEL_PROBES = 50, 32  # `edge-dfd bench` with no model: the bundled detector
PREPROCESS_SAMPLE = 200
BATCH = 32
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class BenchRow:
    """One format of one model. ``None`` = not measured. See the module docstring for definitions."""

    model: str
    format: str
    status: str  # "ok" | "failed: reason" | "below floor" | "skipped: reason"
    path: str = ""
    bytes: int | None = None
    size_mb: float | None = None
    runtime: str | None = None
    provider: str | None = None
    threads: int | None = None
    threshold: float | None = None
    n: int | None = None
    accuracy: float | None = None
    accuracy_ci95_low: float | None = None  # 95 % Wilson interval of the accuracy over the n images
    accuracy_ci95_high: float | None = None
    balanced_accuracy: float | None = None
    auc: float | None = None
    ap: float | None = None
    eer: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    latency_ms_p99: float | None = None
    latency_ms_mean: float | None = None
    preprocess_ms: float | None = None
    images_per_s: float | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    peak_rss_mb: float | None = None
    baseline_rss_mb: float | None = None
    agreement: float | None = None  # fraction of identical verdicts vs the Keras model on probe inputs
    max_abs_diff: float | None = None  # max |dP(fake)| vs the Keras model on probe inputs
    skipped_images: int | None = None
    robustness: dict | None = field(default=None)  # perturbation -> {"accuracy", "auc"}

    def to_dict(self) -> dict:
        return asdict(self)

    def flat(self) -> dict:
        """to_dict with robustness spread into ``rob_<name>_acc`` / ``rob_<name>_auc`` columns (CSV)."""
        d = self.to_dict()
        rob = d.pop("robustness") or {}
        for name in PERTURBATIONS:
            r = rob.get(name) or {}
            d[f"rob_{name}_acc"] = r.get("accuracy")
            d[f"rob_{name}_auc"] = r.get("auc")
        return d


@dataclass
class BenchResult:
    machine: dict
    rows: list[BenchRow]
    notes: list[str]
    settings: dict

    def to_dict(self) -> dict:
        return {"machine": self.machine, "settings": self.settings,
                "rows": [r.to_dict() for r in self.rows], "notes": self.notes}


# ====================================================================== worker (one model, one process)


def _rss_mb() -> float:
    """This process's peak RSS in MB. Linux: VmHWM (reset at exec; ru_maxrss would carry the parent's peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def latency_ms(backend, inputs: np.ndarray, warmup: int, runs: int, bar=None) -> np.ndarray:
    """Batch-1 ``backend.predict`` times in ms (after ``warmup`` untimed runs), cycling through inputs.
    ``bar`` (optional, a progress Bar) advances once per run, outside the timed region."""
    n = len(inputs)
    for i in range(warmup):
        backend.predict(inputs[i % n : i % n + 1])
        if bar is not None:
            bar.update(1)
    out = np.empty(runs)
    clock = time.perf_counter
    for i in range(runs):
        x = inputs[i % n : i % n + 1]
        t0 = clock()
        backend.predict(x)
        out[i] = (clock() - t0) * 1000.0
        if bar is not None:
            bar.update(1)
    return out


def measure(job: dict, make_bar=None) -> dict:
    """Measure one model file as described by ``job`` (in this process); returns a JSON-able dict.

    ``make_bar(total, desc, unit)`` makes the progress bar of each phase (latency, accuracy or throughput,
    robustness); default ``edge_dfd.progress.bar``, in the bench worker a relay to the parent process."""
    from edge_dfd import progress
    from edge_dfd.data import Record
    from edge_dfd.evaluate import score_records
    from edge_dfd.metrics import binary_report
    from edge_dfd.preprocess import decode_image, load_image, prepare_batch
    from edge_dfd.runtime import load_model

    make_bar = make_bar or progress.bar
    baseline = _rss_mb()
    t0 = time.perf_counter()
    backend = load_model(job["path"], threads=job["threads"], provider=job.get("provider"))
    load_ms = (time.perf_counter() - t0) * 1000.0
    size = backend.input_size
    records = [Record(Path(p), int(lab)) for p, lab in job.get("records") or []]
    probe_files = job.get("probe_files") or []
    src = [str(r.path) for r in records] or probe_files
    in_float = getattr(backend, "qdq_in_float", False)
    res: dict = {"format": backend.format, "runtime": backend.runtime, "qdq_in_float": in_float,
                 "provider": backend.provider + (" (QDQ in float)" if in_float else ""), "threshold": backend.threshold, "load_ms": load_ms, "baseline_rss_mb": baseline}

    # batch-1 inputs: decoded data (or probes), with the sequential preprocessing time
    imgs, t_pre = [], 0.0
    if src:  # one untimed decode: first-call library set-up is not per-image cost
        try:
            load_image(src[0], size)
        except EdgeDFDError:
            pass
    for p in src[:PREPROCESS_SAMPLE]:
        t = time.perf_counter()
        try:
            imgs.append(load_image(p, size))
        except EdgeDFDError:
            continue
        finally:
            t_pre += time.perf_counter() - t
    res["preprocess_ms"] = t_pre * 1000.0 / max(1, min(len(src), PREPROCESS_SAMPLE)) if src else None
    if job.get("probe_npy"):
        probe = prepare_batch(list(np.load(job["probe_npy"])), size)
    else:
        probe = None
    lat_in = np.stack(imgs) if imgs else probe
    if lat_in is None:
        raise ModelError("nothing to measure on: no readable images and no probe inputs")
    t = time.perf_counter()
    backend.predict(lat_in[:1])
    res["first_inference_ms"] = (time.perf_counter() - t) * 1000.0
    with make_bar(job["warmup"] + job["runs"], "latency", unit="run") as bar:
        lat = latency_ms(backend, lat_in, job["warmup"], job["runs"], bar=bar)
    res["latency"] = {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                      "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())}

    # end to end over the data (accuracy) or over the probe files (throughput only)
    if records:
        with make_bar(len(records), "accuracy", unit="img") as bar:
            y, p, errors, secs = score_records(backend, records, batch_size=BATCH, bar=bar)
        res["report"] = binary_report(y, p, backend.threshold) if y.size else None
        res["skipped_images"] = len(errors)
        res["images_per_s"] = y.size / secs if secs > 0 else None
    elif probe_files:
        from edge_dfd.predict import Item, predict_items

        t = time.perf_counter()
        with make_bar(len(probe_files), "throughput", unit="img") as bar:
            k = 0
            for _ in predict_items(backend, [Item(f) for f in probe_files], batch_size=BATCH):
                k += 1
                bar.update(1)
        res["images_per_s"] = k / (time.perf_counter() - t)
    if probe is not None:
        res["probe_p"] = backend.predict(probe).tolist()
    if job.get("robustness") and records:
        with make_bar(len(PERTURBATIONS) * len(records), "robustness", unit="img") as bar:
            res["robustness"] = _robustness(backend, records, decode_image, prepare_batch, binary_report, bar=bar)
    res["peak_rss_mb"] = _rss_mb()
    return res


def _robustness(backend, records, decode_image, prepare_batch, binary_report, bar=None) -> dict:
    out = {}
    originals = []
    for r in records:
        try:
            originals.append((decode_image(r.path), r.is_fake))
        except EdgeDFDError:
            continue
    y = np.asarray([f for _, f in originals])
    for name in PERTURBATIONS:
        ps = []
        for i in range(0, len(originals), BATCH):
            chunk = [perturb(img, name) for img, _ in originals[i : i + BATCH]]
            ps.append(backend.predict(prepare_batch(chunk, backend.input_size)))
            if bar is not None:
                bar.update(len(chunk))
        rep = binary_report(y, np.concatenate(ps), backend.threshold)
        out[name] = {"accuracy": rep["accuracy"], "auc": rep["auc"]}
    return out


def _worker_main(argv) -> int:
    from edge_dfd import progress

    job_path, out_path = argv
    job = json.loads(Path(job_path).read_text())
    try:  # progress goes to the parent as tagged lines on this process's stdout (measure_isolated reads them)
        res = {"ok": True, **measure(job, make_bar=progress.relay_to(sys.stdout))}
    except EdgeDFDError as exc:
        res = {"ok": False, "error": str(exc)}
    Path(out_path).write_text(json.dumps(res))
    return 0


def measure_isolated(job: dict, workdir: Path, label: str = "") -> dict:
    """``measure(job)`` in a fresh Python process (honest per-format peak RSS). Its progress is drawn here,
    each phase's bar described as ``label`` + phase (``edge_dfd.progress.Mirror``)."""
    from edge_dfd import progress

    fd, job_path = tempfile.mkstemp(prefix="job.", suffix=".json", dir=workdir)
    os.close(fd)
    out_path = job_path[:-5] + ".out.json"
    Path(job_path).write_text(json.dumps(job))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    mirror = progress.Mirror(label)
    try:
        with tempfile.TemporaryFile("w+", dir=workdir) as err:
            proc = subprocess.Popen([sys.executable, "-m", "edge_dfd.bench", job_path, out_path],
                                    stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            try:
                for line in proc.stdout:
                    mirror.feed(line)
            finally:
                proc.stdout.close()
                returncode = proc.wait()
                mirror.close()
            err.seek(0)
            stderr = err.read()
        if returncode != 0 or not Path(out_path).is_file():
            lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
            why = lines[-1][:200] if lines else f"exit code {returncode}"
            return {"ok": False, "error": f"measuring process failed ({why})"}
        return json.loads(Path(out_path).read_text())
    finally:
        for p in (job_path, out_path):
            Path(p).unlink(missing_ok=True)


# ====================================================================== orchestration


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
            guess = format_of_file(p)
            if guess is None:
                raise ModelError(f"{p}: unknown model type '{p.suffix}' (expected .keras, .tflite or .onnx)")
            groups.append([_Target(p.name, guess.name, p)])
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


def run_bench(models=(), data=None, split: str = "test", formats: str | None = "all", threads: int = 2,
              warmup: int = 10, runs: int | None = None, floor: float | None = None, robustness: bool = False,
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
        runs = 100 if models else DEFAULT_MODEL_RUNS
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
    out = ensure_writable_dir(out_dir or "bench-results")
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
                res = measure_isolated(job, tmp, label=f"[{done}/{todo}] {tgt.fmt}")
                overall.update(1)
                row = _row(tgt, res, threads, floor)
                if res.get("qdq_in_float") and tgt.fmt not in in_float:
                    in_float.append(tgt.fmt)
                if tgt.fmt == "keras" and res.get("ok"):
                    ref, ref_t = np.asarray(res.get("probe_p")), res["threshold"]
                if ref is not None and res.get("ok") and res.get("probe_p") is not None:
                    p = np.asarray(res["probe_p"])
                    t = res["threshold"]  # each file's verdicts at its own threshold (int8 files carry their own)
                    row = _replace(row, agreement=float(((p >= t) == (ref >= ref_t)).mean()),
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
        from edge_dfd.kerasio import _check_archive

        shape = _find_key(_check_archive(path), "batch_shape")
        if not shape or len(shape) != 4 or not shape[1]:
            raise ModelError(f"{path}: cannot read the model's input size from its config")
        return int(shape[1])
    from edge_dfd.runtime import load_model

    return load_model(path).input_size


def _find_key(node, key):
    if isinstance(node, dict):
        if key in node:
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for v in node:
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


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


def check_floor(result: BenchResult, floor: float | None) -> None:
    """QualityGateError (exit 3) naming every format whose accuracy is below ``floor``."""
    if floor is None:
        return
    bad = [r for r in result.rows if r.status == "below floor"]
    if bad:
        listed = ", ".join(f"{r.model}:{r.format}={_fmt(r.accuracy)}" for r in bad)
        raise QualityGateError(f"accuracy below the floor {floor}: {listed}")


def check_measured(result: BenchResult) -> None:
    """EdgeDFDError (exit 1) when no row could be measured at all (every model failed or was skipped)."""
    if result.rows and not any(r.status in ("ok", "below floor") for r in result.rows):
        raise EdgeDFDError("nothing was measured: " + " | ".join(f"{r.model} {r.format}: {r.status}"
                                                                  for r in result.rows))


# ====================================================================== the ONE writer


TABLE_COLS = [("format", "format", "{}"), ("status", "status", "{}"), ("size_mb", "MB", "{:.2f}"),
              ("accuracy", "acc", "{:.4f}"), ("auc", "AUC", "{:.4f}"), ("latency_ms_p50", "p50 ms", "{:.2f}"),
              ("latency_ms_p90", "p90 ms", "{:.2f}"), ("latency_ms_p99", "p99 ms", "{:.2f}"),
              ("preprocess_ms", "prep ms", "{:.2f}"), ("images_per_s", "img/s", "{:.1f}"),
              ("load_ms", "load ms", "{:.0f}"), ("first_inference_ms", "1st ms", "{:.1f}"),
              ("peak_rss_mb", "RSS MB", "{:.0f}"), ("agreement", "agree", "{:.3f}"),
              ("max_abs_diff", "max|dp|", "{:.4f}")]


def _fmt(v, spec="{:.4f}") -> str:
    if v is None:
        return "-"
    try:
        return spec.format(v)
    except (ValueError, TypeError):
        return str(v)


def table_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    multi = len({r.model for r in result.rows}) > 1
    measured = any(r.accuracy is not None for r in result.rows)
    cols = ([("model", "model", "{}")] if multi else []) + TABLE_COLS
    if measured:  # the accuracy's 95 % interval, right after it
        i = next(k for k, c in enumerate(cols) if c[0] == "accuracy") + 1
        cols = cols[:i] + [("accuracy_ci95", "acc 95% CI", "{:.3f}")] + cols[i:]
    body = []
    for r in result.rows:
        d = r.to_dict()
        line = []
        for key, _, spec in cols:
            if key == "accuracy" and not measured and r.status == "ok":
                line.append(NOT_MEASURED)
            elif key == "accuracy_ci95":
                lo, hi = d.get("accuracy_ci95_low"), d.get("accuracy_ci95_high")
                line.append("-" if lo is None else f"{_fmt(lo, spec)}-{_fmt(hi, spec)}")
            else:
                line.append(_fmt(d.get(key), spec))
        body.append(line)
    return [h for _, h, _ in cols], body


def format_table(result: BenchResult) -> str:
    """Plain-text table (stdout)."""
    head, body = table_rows(result)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    lines += _robustness_lines(result)
    lines += [f"note: {n}" for n in result.notes]
    m = result.machine
    lines.append(f"machine: {m['cpu']}, {m['usable_cores']} cores, flags {' '.join(m['cpu_flags']) or '-'}, "
                 f"threads {m['threads']}, {m['os']}, Python {m['python']}")
    return "\n".join(lines) + "\n"


def _robustness_lines(result: BenchResult) -> list[str]:
    rows = [r for r in result.rows if r.robustness]
    if not rows:
        return []
    out = ["", "robustness (accuracy / AUC): " + ", ".join(PERTURBATIONS)]
    for r in rows:
        cells = [f"{_fmt(r.robustness[p]['accuracy'], '{:.3f}')}/{_fmt(r.robustness[p]['auc'], '{:.3f}')}"
                 for p in PERTURBATIONS]
        out.append(f"  {r.model}:{r.format}  " + "  ".join(cells))
    return out


def format_markdown(result: BenchResult) -> str:
    head, body = table_rows(result)
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "/") for c in b) + " |" for b in body]
    rob = [r for r in result.rows if r.robustness]
    if rob:
        md += ["", "Robustness (accuracy / AUC):", "",
               "| model | format | " + " | ".join(PERTURBATIONS) + " |", "|---|---|" + "---|" * len(PERTURBATIONS)]
        for r in rob:
            md.append(f"| {r.model} | {r.format} | " + " | ".join(
                f"{_fmt(r.robustness[p]['accuracy'], '{:.3f}')} / {_fmt(r.robustness[p]['auc'], '{:.3f}')}"
                for p in PERTURBATIONS) + " |")
    m = result.machine
    md += ["", f"Machine: {m['cpu']} ({m['arch']}), {m['usable_cores']} usable cores, flags: "
           f"{', '.join(m['cpu_flags']) or '-'}; threads {m['threads']}; {m['os']}; Python {m['python']}; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    s = result.settings
    md.append(f"Settings: data {s['data'] or 'none'} ({s['split'] or '-'}), warm-up {s['warmup']}, "
              f"runs {s['runs']}, batch-1 latency; end-to-end batch {BATCH}.")
    md += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(md) + "\n"


def format_csv(result: BenchResult) -> str:
    buf = io.StringIO()
    names = list(result.rows[0].flat()) if result.rows else [f.name for f in fields(BenchRow)]
    w = csv.DictWriter(buf, fieldnames=names)
    w.writeheader()
    for r in result.rows:
        w.writerow(r.flat())
    return buf.getvalue()


def write_results(result: BenchResult, out_dir, stem: str = "bench", plot=None) -> list[Path]:
    """bench.json, bench.csv, bench.md (+ the Pareto plot) in ``out_dir``, all atomic."""
    out = ensure_writable_dir(out_dir)
    paths = [atomic_write_json(out / f"{stem}.json", result.to_dict()),
             atomic_write_text(out / f"{stem}.csv", format_csv(result)),
             atomic_write_text(out / f"{stem}.md", format_markdown(result))]
    plot_path = Path(plot) if plot else out / "pareto.png"
    p = plot_pareto(result, plot_path)
    if p is not None:
        paths.append(p)
    return paths


def plot_pareto(result: BenchResult, path) -> Path | None:
    """Latency p50 (x) vs accuracy (y; agreement with Keras when accuracy is not measured); marker area = size."""
    from edge_dfd.report import _plt, save_figure

    rows = [r for r in result.rows if r.latency_ms_p50 is not None]
    ykey = "accuracy" if any(r.accuracy is not None for r in rows) else "agreement"
    rows = [r for r in rows if getattr(r, ykey) is not None]
    if not rows:
        return None
    plt = _plt(path)
    if plt is None:  # no matplotlib: one note on stderr, the tables are written anyway
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.array([r.latency_ms_p50 for r in rows])
    ys = np.array([getattr(r, ykey) for r in rows])
    mb = np.array([r.size_mb or 0.0 for r in rows])
    ax.scatter(xs, ys, s=40 + 400 * mb / max(mb.max(), 1e-9), alpha=0.6, edgecolors="k")
    multi = len({r.model for r in rows}) > 1
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(f"{r.model}:{r.format}" if multi else r.format, (x, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    order = np.lexsort((-ys, xs))  # Pareto front: no other point is both faster and more accurate
    front, best = [], -np.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    ax.plot(xs[front], ys[front], "--", color="tab:red", lw=1, label="Pareto front")
    ax.set_xlabel("latency p50, batch 1 (ms)")
    ax.set_ylabel(ykey if ykey == "accuracy" else "agreement with Keras (probe inputs)")
    ax.set_title(f"edge-dfd bench: latency vs {ykey} (marker area = file size)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
