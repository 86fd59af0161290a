"""The bench worker: measures ONE model file (a ``BenchJob``) in this process (``measure``) or in a fresh one
(``measure_isolated`` starts ``python -c WORKER_CODE JOB RESULT``, i.e. ``main``), and the batch-1 latency loop
every latency measurement uses (``latency_ms``). The job and the ``Measurement`` cross the process boundary as
files in ``edge_dfd.bench.job``'s wire format. Definitions: ``edge_dfd.bench``'s docstring."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_dfd.bench.job import BenchJob, Measurement, from_wire, to_wire
from edge_dfd.bench.result import BATCH, PREPROCESS_SAMPLE
from edge_dfd.core import tfquiet
from edge_dfd.core.errors import EdgeDFDError, ModelError
from edge_dfd.images.perturb import PERTURBATIONS, perturb

__all__ = ["WORKER_CODE", "latency_ms", "main", "measure", "measure_isolated"]

# what the measuring process runs (``python -c``): edge_dfd has no ``python -m`` entry for an internal process
WORKER_CODE = "import sys; from edge_dfd.bench.worker import main; sys.exit(main(sys.argv[1:]))"


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


def measure(job: BenchJob, make_bar=None) -> Measurement:
    """Measure the model file of ``job`` in this process.

    ``make_bar(total, desc, unit)`` makes the progress bar of each phase (latency, accuracy or throughput,
    robustness); default ``edge_dfd.core.progress.bar``, in the bench worker a relay to the parent process."""
    from edge_dfd.bench.evaluate import score_records
    from edge_dfd.core import progress
    from edge_dfd.core.metrics import binary_report
    from edge_dfd.images.data import Record
    from edge_dfd.images.preprocess import decode_image, load_image, prepare_batch
    from edge_dfd.runtime import load_model

    make_bar = make_bar or progress.bar
    baseline = _rss_mb()
    t0 = time.perf_counter()
    backend = load_model(job.path, threads=job.threads, provider=job.provider)
    load_ms = (time.perf_counter() - t0) * 1000.0
    size = backend.input_size
    records = [Record(Path(p), int(lab)) for p, lab in job.records]
    probe_files = list(job.probe_files)
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
    if job.probe_npy:
        probe = prepare_batch(list(np.load(job.probe_npy)), size)
    else:
        probe = None
    lat_in = np.stack(imgs) if imgs else probe
    if lat_in is None:
        raise ModelError("nothing to measure on: no readable images and no probe inputs")
    t = time.perf_counter()
    backend.predict(lat_in[:1])
    res["first_inference_ms"] = (time.perf_counter() - t) * 1000.0
    with make_bar(job.warmup + job.runs, "latency", unit="run") as bar:
        lat = latency_ms(backend, lat_in, job.warmup, job.runs, bar=bar)
    res["latency"] = {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                      "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())}

    # end to end over the data (accuracy) or over the probe files (throughput only)
    # (a pass of its own, after the latency loop: the accuracy never runs while latency is timed)
    if records:
        with make_bar(len(records), "accuracy", unit="img") as bar:
            y, p, errors, secs = score_records(backend, records, batch_size=BATCH, bar=bar)
        res["skipped_images"] = len(errors)
        res["skipped"] = tuple((str(a), str(b)) for a, b in errors)
        res["images_per_s"] = y.size / secs if secs > 0 else None
        bad = {str(a) for a, _ in errors}  # P(fake) per record, in the job's order (None: unreadable, skipped)
        kept = [str(r.path) not in bad for r in records]
        if sum(kept) == p.size:
            it = iter(p.tolist())
            res["p_records"] = tuple(next(it) if k else None for k in kept)
    elif probe_files:
        from edge_dfd.runtime.predict import Item, predict_items

        t = time.perf_counter()
        with make_bar(len(probe_files), "throughput", unit="img") as bar:
            k = 0
            for _ in predict_items(backend, [Item(f) for f in probe_files], batch_size=BATCH):
                k += 1
                bar.update(1)
        res["images_per_s"] = k / (time.perf_counter() - t)
    if probe is not None:  # in BATCH chunks like every other pass: one call of N probes would make LiteRT
        # allocate activations for N images, so the peak RSS would depend on the probe count (64: 762 MB, 32: 342)
        res["probe_p"] = tuple(np.concatenate([backend.predict(probe[i : i + BATCH])
                                               for i in range(0, len(probe), BATCH)]).tolist())
    if job.robustness and records:
        with make_bar(len(PERTURBATIONS) * len(records), "robustness", unit="img") as bar:
            res["robustness"] = _robustness(backend, records, decode_image, prepare_batch, binary_report, bar=bar)
    res["peak_rss_mb"] = _rss_mb()
    return Measurement(ok=True, **res)


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


def main(argv) -> int:
    """The measuring process (``python -c WORKER_CODE JOB RESULT``): ``measure`` the job file's model and write
    the result file. A malformed job file: one ``error:`` line on stderr, exit 2 (the parent reports it)."""
    from edge_dfd.core import progress

    if len(argv) != 2:
        print(f"error: the bench worker takes JOB RESULT (two file paths), got {len(argv)} argument(s)",
              file=sys.stderr)
        return 2
    job_path, out_path = argv
    try:
        job = from_wire(BenchJob, Path(job_path).read_text(encoding="utf-8"), where=f"bench job {job_path}")
    except (EdgeDFDError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # progress goes to the parent as tagged lines on this process's stdout (measure_isolated reads them)
        res = measure(job, make_bar=progress.relay_to(sys.stdout))
    except EdgeDFDError as exc:
        res = Measurement.failed(str(exc))
    Path(out_path).write_text(to_wire(res), encoding="utf-8")
    return 0


def measure_isolated(job: BenchJob, workdir: Path, label: str = "") -> Measurement:
    """``measure(job)`` in a fresh Python process (honest per-format peak RSS). Its progress is drawn here,
    each phase's bar described as ``label`` + phase (``edge_dfd.core.progress.Mirror``). A process that fails
    or writes a malformed result: a failed Measurement saying why (one line)."""
    from edge_dfd.core import progress

    fd, job_path = tempfile.mkstemp(prefix="job.", suffix=".json", dir=workdir)
    os.close(fd)
    out_path = job_path[:-5] + ".out.json"
    Path(job_path).write_text(to_wire(job), encoding="utf-8")
    env = {**os.environ} if tfquiet.debug() else {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    mirror = progress.Mirror(label)
    try:
        with tempfile.TemporaryFile("w+", dir=workdir) as err:
            proc = subprocess.Popen([sys.executable, "-c", WORKER_CODE, job_path, out_path],
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
            return Measurement.failed(f"measuring process failed ({why})")
        try:
            return from_wire(Measurement, Path(out_path).read_text(encoding="utf-8"), where="bench result")
        except EdgeDFDError as exc:
            return Measurement.failed(str(exc))
    finally:
        for p in (job_path, out_path):
            Path(p).unlink(missing_ok=True)
