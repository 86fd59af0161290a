"""Evaluate any model file (.keras / .tflite / .onnx / "default") on a dataset split, through the runtime.

Writes report.json, report.txt and confusion_matrix.png (``edge_dfd.core.report``). ``edge-dfd bench`` uses
the same ``score_records`` so its accuracy equals ``evaluate``'s on the same data.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import DataError
from edge_dfd.runtime.options import DEFAULT_FRACTION
from edge_dfd.runtime.zoo import is_bundled_name


def score_records(backend, records, batch_size: int = 32, on_error=None, bar=None):
    """P(fake) for dataset records -> (y_fake, p_fake, errors, seconds); unreadable images are skipped.

    ``bar`` (an ``edge_dfd.core.progress`` Bar or RelayBar) advances by one per image, readable or not."""
    from edge_dfd.runtime.predict import Item, predict_items

    errors = []

    def err(exc):
        errors.append((exc.path, exc.reason))
        if bar is not None:
            bar.update(1)
        if on_error is not None:
            on_error(exc)

    items = [Item(str(r.path), int(r.label)) for r in records]
    t0 = time.perf_counter()
    ys, ps = [], []
    for item, p in predict_items(backend, items, batch_size=batch_size, on_error=err):
        ys.append(1 - item.label)
        ps.append(p)
        if bar is not None:
            bar.update(1)
    secs = time.perf_counter() - t0
    return np.asarray(ys, np.int64), np.asarray(ps, np.float32), errors, secs


def sample_records(records, sample: int | None, seed: int = 0, where: str = "the split"):
    """``sample`` class-stratified records (``edge_dfd.images.data.stratified_sample``, reproducible for ``seed``), or
    all of them when ``sample`` is None. UsageError (exit 2) for a size below 1 or above the records' count."""
    if sample is None:
        return records
    from edge_dfd.core.errors import UsageError
    from edge_dfd.images.data import stratified_sample

    if sample < 1:
        raise UsageError(f"--sample {sample}: expected a positive number of images")
    if sample > len(records):
        raise UsageError(f"--sample {sample}: larger than the {len(records)} images of {where}")
    return stratified_sample(records, sample, seed=seed)


def sample_info(sample: int | None, seed: int, population: int) -> dict | None:
    """What goes into the results about a --sample (None without one)."""
    if sample is None:
        return None
    return {"n": int(sample), "seed": int(seed), "of": int(population), "stratified": True}


def default_out_dir(model, split: str, format: str | None = None) -> Path:
    name = str(model) if is_bundled_name(model) else Path(model).name.replace(".", "_")
    if format and is_bundled_name(model):
        name += f"_{format}"
    return Path("eval") / f"{name}_{split}"


def evaluate(model, data, split: str = "test", out_dir=None, threads=None, provider=None,
             format=None, batch_size: int = 32, write: bool = True, log=None, sample: int | None = None,
             seed: int = 0, escalate=None, escalate_fraction: float | None = None, calib_data=None) -> dict:
    """Run ``model`` on ``data``/``split`` and return the report dict (files written to ``out_dir``).

    ``data`` None: the bundled evaluation sample (``edge_dfd.runtime.sample.eval_sample``: 660 labelled test images;
    its missing or damaged images are logged and left out), with per-set figures in ``by_set``.
    ``sample``: only that many images, a class-stratified sample drawn with ``seed`` (recorded in the report
    as ``sample``). The report's ``accuracy_ci95`` is the accuracy's 95 % Wilson interval. ``escalate``: a
    second model for the uncertain share ``escalate_fraction`` of faces (None: ``DEFAULT_FRACTION``) (``edge_dfd.runtime.cascade``, calibrated
    on ``calib_data`` when the pair has no stored table); the report then gains ``cascade``."""
    from edge_dfd.core import progress
    from edge_dfd.core.metrics import accuracy_ci95, binary_report
    from edge_dfd.core.report import write_report
    from edge_dfd.images import data as datamod
    from edge_dfd.runtime import load_model

    log = log or progress.echo
    sets = None
    if data is None:  # the bundled evaluation sample (edge_dfd/assets/eval_sample): its test split
        from edge_dfd.runtime.sample import EVAL_SAMPLE_SPLIT, eval_sample

        smp = eval_sample()
        for line in smp.problems:
            log(f"bundled sample: {line}")
        records, split, set_of = smp.records, EVAL_SAMPLE_SPLIT, dict(zip(smp.records, smp.sets))
        where = "the bundled evaluation sample"
    else:
        records = datamod.load_split(data, split)
        where = f"{data} [{split}]"
    if not records:
        raise DataError(f"{data}: split '{split}' has no images")
    population = len(records)
    records = sample_records(records, sample, seed, where=where)
    if data is None:
        sets = [set_of[r] for r in records]
    backend = load_model(model, format=format, threads=threads, provider=provider)
    if escalate:
        from edge_dfd.runtime.cascade import load_cascade

        backend = load_cascade(backend, escalate, DEFAULT_FRACTION if escalate_fraction is None else escalate_fraction,
                               calib_data=calib_data, threads=threads, log=log)
    if write:  # an unwritable --out fails now, not after the whole evaluation
        from edge_dfd.core.fsutil import ensure_writable_dir

        ensure_writable_dir(Path(out_dir) if out_dir else default_out_dir(model, split, format))
    drawn = "" if sample is None else f" (a stratified sample of {population}, seed {seed})"
    log(f"evaluating {backend.path.name} ({backend.format}) on {len(records)} images of {where}{drawn}")
    with progress.bar(len(records), f"evaluate {backend.format}", unit="img") as bar:
        y, p, errors, secs = score_records(backend, records, batch_size=batch_size,
                                           on_error=lambda e: log(f"skipped: {e}"), bar=bar)
    if y.size == 0:
        raise DataError(f"{data or where}: no readable images in split '{split}'")
    extra = {
        "model": str(backend.path),
        "format": backend.format,
        "runtime": backend.runtime,
        "provider": backend.provider,
        "threshold_source": backend.meta.threshold_source,
        "data": str(data) if data is not None else "bundled evaluation sample (edge_dfd/assets/eval_sample)",
        "split": split,
        "skipped": [{"path": a, "reason": b} for a, b in errors],
        "seconds": round(secs, 3),
        "accuracy_ci95": accuracy_ci95(y, p, backend.threshold),
        "sample": sample_info(sample, seed, population),
    }
    if hasattr(backend, "info"):  # --escalate: the second model, F, band, rule; how many it decided / failed on
        extra["cascade"] = backend.info()
    if sets is not None:  # accuracy / AUC per set of the bundled sample
        from edge_dfd.bench.accuracy import by_set

        bad = {str(a) for a, _ in errors}
        kept = [s for r, s in zip(records, sets) if str(r.path) not in bad]
        if len(kept) == y.size:
            extra["by_set"] = by_set(y, p.astype(np.float64), backend.threshold, kept)
    title = (f"{backend.path.name} ({backend.format}) on "
             f"{Path(data).name if data is not None else 'the bundled evaluation sample'} [{split}]")
    if escalate:
        title += f", escalating {backend.fraction:g} to {backend.second.path.name}"
    if sample is not None:
        title += f", stratified sample of {len(records)}/{population} (seed {seed})"
    if write:
        out = Path(out_dir) if out_dir else default_out_dir(model, split, format)
        rep = write_report(out, y, p, backend.threshold, title=title, extra=extra)
        rep["out_dir"] = str(out)
    else:
        rep = binary_report(y, p, backend.threshold)
        rep.update(extra)
    rep["title"] = title
    return rep
