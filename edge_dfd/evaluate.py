"""Evaluate any model file (.keras / .tflite / .onnx / "default") on a dataset split, through the runtime.

Writes report.json, report.txt and confusion_matrix.png (``edge_dfd.report``). ``edge-dfd bench`` uses
the same ``score_records`` so its accuracy equals ``evaluate``'s on the same data.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from edge_dfd.errors import DataError


def score_records(backend, records, batch_size: int = 32, on_error=None):
    """P(fake) for dataset records -> (y_fake, p_fake, errors, seconds); unreadable images are skipped."""
    from edge_dfd.predict import Item, predict_items

    errors = []

    def err(exc):
        errors.append((exc.path, exc.reason))
        if on_error is not None:
            on_error(exc)

    items = [Item(str(r.path), int(r.label)) for r in records]
    t0 = time.perf_counter()
    ys, ps = [], []
    for item, p in predict_items(backend, items, batch_size=batch_size, on_error=err):
        ys.append(1 - item.label)
        ps.append(p)
    secs = time.perf_counter() - t0
    return np.asarray(ys, np.int64), np.asarray(ps, np.float32), errors, secs


def default_out_dir(model, split: str) -> Path:
    name = "default" if str(model) == "default" else Path(model).name.replace(".", "_")
    return Path("eval") / f"{name}_{split}"


def evaluate(model, data, split: str = "test", out_dir=None, threads=None, provider=None,
             format=None, batch_size: int = 32, write: bool = True, log=None) -> dict:
    """Run ``model`` on ``data``/``split`` and return the report dict (files written to ``out_dir``)."""
    from edge_dfd import data as datamod
    from edge_dfd.metrics import binary_report
    from edge_dfd.report import write_report
    from edge_dfd.runtime import load_model

    log = log or (lambda msg: print(msg, file=sys.stderr))
    records = datamod.load_split(data, split)
    if not records:
        raise DataError(f"{data}: split '{split}' has no images")
    backend = load_model(model, format=format, threads=threads, provider=provider)
    if write:  # an unwritable --out fails now, not after the whole evaluation
        from edge_dfd.fsutil import ensure_writable_dir

        ensure_writable_dir(Path(out_dir) if out_dir else default_out_dir(model, split))
    log(f"evaluating {backend.path.name} ({backend.format}) on {len(records)} images of {data} [{split}]")
    y, p, errors, secs = score_records(backend, records, batch_size=batch_size,
                                       on_error=lambda e: log(f"skipped: {e}"))
    if y.size == 0:
        raise DataError(f"{data}: no readable images in split '{split}'")
    extra = {
        "model": str(backend.path),
        "format": backend.format,
        "runtime": backend.runtime,
        "provider": backend.provider,
        "threshold_source": backend.meta.threshold_source,
        "data": str(data),
        "split": split,
        "skipped": [{"path": a, "reason": b} for a, b in errors],
        "seconds": round(secs, 3),
    }
    title = f"{backend.path.name} ({backend.format}) on {Path(data).name} [{split}]"
    if write:
        out = Path(out_dir) if out_dir else default_out_dir(model, split)
        rep = write_report(out, y, p, backend.threshold, title=title, extra=extra)
        rep["out_dir"] = str(out)
    else:
        rep = binary_report(y, p, backend.threshold)
        rep.update(extra)
    rep["title"] = title
    return rep
