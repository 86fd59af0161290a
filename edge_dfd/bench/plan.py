"""Planning one ``edge-dfd bench`` run: the labelled images (``--data`` or the bundled sample), the targets
(``targets.group_targets``), each measured by ``worker.measure_isolated``, then rows (accuracy, paired differences,
Pareto: ``accuracy``) and notes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edge_dfd.bench import worker
from edge_dfd.bench.job import BenchJob, BenchRequest, Measurement
from edge_dfd.bench.result import (
    DEFAULT_MODEL_PROBES,
    DEFAULT_MODEL_RUNS,
    DEFAULT_OUT,
    DEFAULT_RUNS,
    PROBE_N,
    BenchResult,
    BenchRow,
)
from edge_dfd.bench.targets import Target, group_targets, have_tensorflow
from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.core.formats import parse_formats
from edge_dfd.core.fsutil import ensure_writable_dir
from edge_dfd.core.verdicts import agreement

__all__ = ["default_probe_inputs", "have_tensorflow", "run_bench"]


def default_probe_inputs(size: int, n: int = PROBE_N) -> np.ndarray:
    """Deterministic generated inputs shared with the converter's verification (no TensorFlow needed)."""
    from edge_dfd.export.imagesets import probe_inputs

    return probe_inputs(n, size, seed=0)


def _eval_records(data, split: str, sample: int | None, seed: int, notes: list[str]):
    """(records, sets, population, where) measured for accuracy: ``--data``'s split, else the bundled sample
    (its damaged or missing images reported in ``notes`` and left out); ``sample`` draws a stratified subset."""
    from edge_dfd.bench.evaluate import sample_records

    if data:
        from edge_dfd.images.data import load_split

        recs, sets, where = load_split(data, split), None, f"{data} [{split}]"
    else:
        from edge_dfd.runtime.sample import eval_sample

        smp = eval_sample()
        notes.extend(f"bundled sample: {line}" for line in smp.problems)
        recs, where = smp.records, "the bundled evaluation sample"
        set_of = {r.path: n for r, n in zip(smp.records, smp.sets)}
    population = len(recs)
    recs = sample_records(recs, sample, seed, where=where)  # a bad --sample: before any output
    if not data:
        sets = [set_of[r.path] for r in recs]
    return recs, sets, population, where


def run_bench(request: BenchRequest | None = None, log=None) -> BenchResult:
    """Measure every requested format of every model; returns the rows (does not write files). ``log``: where
    the progress lines go (default ``edge_dfd.core.progress.log``).

    ``request`` (default ``BenchRequest()``): ``models``: model files, ``convert`` output folders, bundled names
    ("default", "ten-pass"); none = the bundled default model. ``formats``: for a .keras source, the formats to convert to; for a bundle or a
    folder, the formats to measure ("all" = every one it has).
    ``runs`` / ``probes`` default to 100 / 64, or to ``DEFAULT_MODEL_RUNS`` / ``DEFAULT_MODEL_PROBES`` when no
    model is given (the bundled detector in 7 formats must finish within 3 minutes on 2 cores).
    ``convert_kwargs`` go to ``edge_dfd.export.convert.convert_model`` (e.g. calib_size, verify_size).
    Accuracy is measured on ``data``/``split``, or without ``data`` on the bundled evaluation sample
    (``edge_dfd.runtime.sample.eval_sample``). ``sample``: a class-stratified sample of that many of those images (drawn
    with ``seed``; the same images for every format), recorded in ``settings["sample"]``. Each model file is
    measured by ``worker.measure_isolated`` from a ``BenchJob``.
    """
    from edge_dfd.bench import accuracy as acc
    from edge_dfd.bench.evaluate import sample_info
    from edge_dfd.core import progress
    from edge_dfd.core.machine import machine_facts

    request = request or BenchRequest()
    models, data, split, formats = list(request.models), request.data, request.split, request.formats
    threads, warmup, runs, floor = request.threads, request.warmup, request.runs, request.floor
    robustness, provider, probes = request.robustness, request.provider, request.probes
    sample, seed, escalate, calib_data = request.sample, request.seed, request.escalate, request.calib_data
    escalate_fraction = request.escalate_fraction
    log = log or progress.log
    if runs is None:
        runs = DEFAULT_RUNS if models else DEFAULT_MODEL_RUNS
    if probes is None:
        probes = PROBE_N if models else DEFAULT_MODEL_PROBES
    if runs < 1 or warmup < 0:
        raise EdgeDFDError(f"--runs {runs} / --warmup {warmup}: expected runs >= 1 and warmup >= 0")
    parse_formats(formats, allow_keras=True)  # unknown names fail even when no .keras model needs them
    notes: list[str] = []
    recs, sets, population, where = _eval_records(data, split, sample, seed, notes)
    records = tuple((str(r.path), int(r.label)) for r in recs)
    y_all = np.asarray([1 - lab for _, lab in records], np.int64)
    if escalate is not None:  # a bad escalation model: one line before any work
        from edge_dfd.bench import escalation

        escalation.check_second(escalate, threads)
    out = ensure_writable_dir(request.out_dir or DEFAULT_OUT)
    groups = group_targets(models, formats, out / "cache", data, log, request.convert_kwargs, notes)
    cascade = first_tgt = None
    if escalate is not None:  # the pair's calibration table (or --calib-data's) before the per-format pass
        first_tgt = escalation.pick_first(groups)
        cascade = escalation.prepare(first_tgt, escalate, escalation.DEFAULT_FRACTION if escalate_fraction is None
                                     else escalate_fraction, calib_data, threads, provider, log)
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
            measured: list[tuple[int, Measurement]] = []  # (index in rows, worker result) of this group
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
                job = BenchJob(path=str(tgt.path), threads=threads, warmup=warmup, runs=runs, records=records,
                               probe_npy=probe_npy, probe_files=probe_files, robustness=robustness,
                               provider=provider if tgt.path.suffix.lower() == ".onnx" else None)
                log(f"measuring {tgt.group} {tgt.fmt} ({tgt.path.name}) ...")
                done += 1
                res = worker.measure_isolated(job, tmp, label=f"[{done}/{todo}] {tgt.fmt}")
                overall.update(1)
                row = _row(tgt, res, threads, floor, y_all, sets)
                if res.qdq_in_float and tgt.fmt not in in_float:
                    in_float.append(tgt.fmt)
                if tgt.fmt == "keras" and res.ok:
                    ref, ref_t = np.asarray(res.probe_p), res.threshold
                if ref is not None and res.ok and res.probe_p is not None:
                    p = np.asarray(res.probe_p)
                    t = res.threshold  # each file's verdicts at its own threshold (int8 files carry their own)
                    row = _replace(row, agreement=agreement(p, ref, t, ref_t),
                                   max_abs_diff=float(np.abs(p - ref).max()))
                if res.ok and res.p_records is not None:
                    measured.append((len(rows), res))
                rows.append(row)
            _finish_group(rows, measured, y_all, acc)
    block = None
    if cascade is not None:  # the extra pass: the cascade curve, measured after every format's own pass
        fractions = escalation.curve_fractions(escalate_fraction)
        log(f"measuring the cascade curve {first_tgt.fmt} -> {escalate} at F = "
            f"{', '.join(str(f) for f in fractions)} ...")
        block = escalation.measure_curve(cascade, first_tgt, escalate, recs, sets, fractions, log)
        if "error" in block:
            notes.append(f"cascade curve not measured: {block['error']}")
        else:
            notes.append("cascade curve: escalated = the share of these images sent to the second model (the band "
                         f"is calibrated on {block['calibration']}); ms/face is a whole cascade call per face, not "
                         "the per-format table's model-only p50; plot: cascade.png beside the Pareto plot")
    if in_float:
        notes.append(f"{', '.join(in_float)}: full 8-bit weights, which this CPU's int8 kernels (x86 without VNNI) "
                     "would saturate, so its quantised graph ran in float: its accuracy and agreement are what an "
                     "ARM64 / VNNI CPU computes; its latency is not int8 latency")
    drawn = (f"a class-stratified sample of {len(records)} of the {population} images (seed {seed}), the same for "
             "every format" if sample is not None else f"all {len(records)} images")
    if data:
        notes.append(f"accuracy on {drawn} of {data} [{split}]")
    else:
        from edge_dfd.runtime.sample import EVAL_SAMPLE_SETS

        counts = {}
        for r, st in zip(recs, sets):
            c = counts.setdefault(st, [0, 0])
            c[0 if r.label == 1 else 1] += 1
        parts = "; ".join(f"{st}: {c[0]} real + {c[1]} fake, {EVAL_SAMPLE_SETS[st]}" for st, c in counts.items())
        notes.append(f"accuracy on {drawn} of the bundled evaluation sample ({parts}; edge_dfd/assets/eval_sample, "
                     "never used in training): --data DIR measures your own images instead")
    notes.append("95% intervals: accuracy = Wilson score; balanced accuracy = MOVER from the two recalls' Wilson "
                 "intervals; AUC = DeLong; the paired differences (this format minus the reference, same images, "
                 "each file at its own threshold) = Newcombe's hybrid score interval (accuracy) and DeLong (AUC). "
                 "Pareto = no other format of the model is both faster (p50) and more accurate (point estimates)")
    notes.append("latency and accuracy are measured in separate passes of the same process (the batch-1 latency "
                 "loop first, on decoded images; then the accuracy pass, whose end-to-end rate is img/s)")
    for why in dict.fromkeys(r.auc_note for r in rows if r.auc_note):
        notes.append(f"AUC {why}")
    if any(r.release for r in rows):
        notes.append("release-time figures: what the release run measured on each set's test split "
                     "when the bundled files were made (from the bundle's manifest.json, i.e. "
                     "benchmarks/results/detector_v2.json), printed beside the figures measured here")
    if any(r.fmt == "keras" for g in groups for r in g) and not tf_ok:
        notes.append("keras row skipped: TensorFlow is not installed (runtime-only install); "
                     "agreement with Keras not measured; the paired reference is the fp32 file")
    notes.append("peak_rss_mb: high-water RSS of a fresh process that loaded only that model and ran its "
                 "measurements (Python, numpy, OpenCV and the runtime included; baseline_rss_mb = same process "
                 "before loading the model)")
    settings = {"data": str(data) if data else None, "split": split if data else "test",
                "eval_sample": None if data else "edge_dfd/assets/eval_sample", "threads": threads,
                "warmup": warmup, "runs": runs, "floor": floor, "robustness": robustness,
                "provider": provider, "n_images": len(records), "probe_inputs": probes,
                "sample": sample_info(sample, seed, population),
                "intervals": {"accuracy": "Wilson score 95%", "balanced_accuracy": "MOVER-Wilson 95%",
                              "auc": "DeLong 95%", "acc_diff": "Newcombe hybrid score 95% (paired)",
                              "auc_diff": "DeLong 95% (paired)"}}
    if escalate is not None:
        settings["escalate"] = {"model": escalate, "fraction": cascade.fraction, "calib_data":
                                [str(d) for d in calib_data] if calib_data else None}
    return BenchResult(machine_facts(threads), rows, notes, settings, cascade=block)


def _finish_group(rows: list[BenchRow], measured: list[tuple[int, Measurement]], y: np.ndarray, acc) -> None:
    """Paired differences against the group's reference and the group's Pareto flags, in place in ``rows``."""
    if not measured:
        return
    by_fmt = {rows[i].format: (i, res) for i, res in reversed(measured)}
    ref_fmt = acc.pick_reference(list(by_fmt))
    if ref_fmt is not None and len(measured) > 1:  # a file measured alone has nothing to be paired with
        _, ref_res = by_fmt[ref_fmt]
        p_ref = ref_res.p_records
        for i, res in measured:
            p = res.p_records
            both = np.asarray([a is not None and b is not None for a, b in zip(p_ref, p)], bool)
            if not both.any():
                continue
            pr = np.asarray([v for v, k in zip(p_ref, both) if k], np.float64)
            pf = np.asarray([v for v, k in zip(p, both) if k], np.float64)
            rows[i] = _replace(rows[i], **acc.paired_fields(y[both], pr, ref_res.threshold, pf,
                                                            res.threshold, ref_fmt))
    pts = [(i, rows[i]) for i, _ in measured if rows[i].accuracy is not None and rows[i].latency_ms_p50 is not None]
    flags = acc.pareto_flags([(r.latency_ms_p50, r.accuracy) for _, r in pts])
    for (i, r), f in zip(pts, flags):
        rows[i] = _replace(r, pareto=bool(f))


def _replace(row: BenchRow, **kw) -> BenchRow:
    from dataclasses import replace

    return replace(row, **kw)


def _input_size(path: Path) -> int:
    """The model's input size from its metadata (no runtime needed when present)."""
    from edge_dfd.core.meta import read_meta

    meta = read_meta(path)
    if meta is not None:
        return int(meta.input_size)
    if path.suffix.lower() == ".keras":  # read config.json instead of loading TensorFlow in this process
        from edge_dfd.modelling.kerasio import config_input_size

        return config_input_size(path)
    from edge_dfd.runtime import load_model

    return load_model(path).input_size


def _write_probes(tmp: Path, size: int, n: int = PROBE_N) -> tuple[str, tuple[str, ...]]:
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
    return str(npy), tuple(files)


def _release(tgt: Target) -> dict | None:
    """Release-time figures of a bundled file (its manifest's ``release`` table), None for any other file."""
    from edge_dfd.runtime import zoo

    if not zoo.is_bundled_name(tgt.group):
        return None
    rel = zoo.release_figures(tgt.group)
    row = (rel or {}).get("formats", {}).get(tgt.fmt)
    if not row or (tgt.path is not None and row.get("file") not in (None, tgt.path.name)):
        return None
    return {**{k: v for k, v in row.items() if k != "file"}, "time": rel.get("time")}


def _row(tgt: Target, res: Measurement, threads: int, floor: float | None, y: np.ndarray, sets) -> BenchRow:
    size = tgt.path.stat().st_size if tgt.path and tgt.path.is_file() else None
    base = dict(model=tgt.group, format=tgt.fmt, path=str(tgt.path), bytes=size,
                size_mb=round(size / 1e6, 3) if size else None, threads=threads, release=_release(tgt))
    if not res.ok:
        return BenchRow(status=f"failed: {res.error or 'unknown error'}", **base)
    from edge_dfd.bench import accuracy as acc

    lat = res.latency
    fields = {}
    p_rec = res.p_records
    if p_rec is not None:
        keep = np.asarray([v is not None for v in p_rec], bool)
        if keep.any():
            p = np.asarray([v for v in p_rec if v is not None], np.float64)
            fields = acc.accuracy_fields(y[keep], p, res.threshold)
            if sets is not None:
                fields["by_set"] = acc.by_set(y[keep], p, res.threshold, [s for s, k in zip(sets, keep) if k])
    status = "ok"
    a = fields.get("accuracy")
    if floor is not None and (a is None or a < floor):
        status = "below floor"
    r2 = lambda v, k=3: None if v is None else round(float(v), k)  # noqa: E731
    return BenchRow(
        status=status, runtime=res.runtime, provider=res.provider, threshold=res.threshold,
        latency_ms_p50=r2(lat["p50"]), latency_ms_p90=r2(lat["p90"]),
        latency_ms_p99=r2(lat["p99"]), latency_ms_mean=r2(lat["mean"]), preprocess_ms=r2(res.preprocess_ms),
        images_per_s=r2(res.images_per_s, 1), load_ms=r2(res.load_ms, 1),
        first_inference_ms=r2(res.first_inference_ms), peak_rss_mb=r2(res.peak_rss_mb, 1),
        baseline_rss_mb=r2(res.baseline_rss_mb, 1), skipped_images=res.skipped_images,
        robustness=res.robustness, **fields, **base)
