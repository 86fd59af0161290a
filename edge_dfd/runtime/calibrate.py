"""Calibrating a two-stage cascade (``edge_dfd.runtime.cascade``): the band table of a (first, second) pair from
a labelled valid split, computed once and cached (``calibrate``), and the bundled default -> ten-pass tables
(``write_bundled``; ``python -m edge_dfd.runtime.calibrate --write-bundled DATA_DIR...``). numpy + runtime only.
The speed / accuracy curve that ``bench`` and ``benchmarks/cascade.py`` measure is ``edge_dfd.bench.curve``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_dfd.core.errors import DataError
from edge_dfd.runtime.cascade import build_table, file_id, margin


def _dirs(calib_data) -> list[Path]:
    items = [calib_data] if isinstance(calib_data, (str, Path)) else list(calib_data)
    return [Path(d).expanduser().resolve() for d in items]


def calib_source(calib_data) -> str:
    """The string that names a calibration data set in a table (its folders' absolute paths, valid split)."""
    return ";".join(str(d) for d in _dirs(calib_data)) + " [valid]"


def load_faces(records, size: int, log=None, kept: list | None = None):
    """Decode records at ``size`` (edge_dfd.images.preprocess) -> (uint8 images (N, size, size, 3), y_fake (N,)),
    unreadable ones skipped (and logged); ``kept`` receives the indices of the decoded records."""
    from edge_dfd.core.errors import ImageError
    from edge_dfd.runtime.predict import decode_many

    imgs, ys = [], []
    for i, img in decode_many([r.path for r in records], size):
        if isinstance(img, ImageError):
            if log:
                log(f"skipped: {img}")
            continue
        imgs.append(img)
        ys.append(int(records[i].is_fake))
        if kept is not None:
            kept.append(i)
    if not imgs:
        raise DataError("no readable images")
    return np.stack(imgs), np.asarray(ys, np.int64)


def _predict_all(backend, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([np.asarray(backend.predict(x[i : i + batch]), np.float64) for i in range(0, len(x), batch)])


def calibrate(first, second, calib_data, log=None) -> dict:
    """The calibration table of ``first`` -> ``second`` from the valid split of ``calib_data`` (one folder or a
    list): both models on every valid image, decoded once at the larger input size (``Cascade.input_size``)."""
    from edge_dfd.images import data as datamod
    from edge_dfd.images.preprocess import prepare_batch

    records = []
    for d in _dirs(calib_data):
        recs = datamod.load_split(d, "valid")
        if not recs:
            raise DataError(f"--calib-data {d}: no valid split images")
        records += recs
    size = max(first.input_size, second.input_size)
    if log:
        log(f"calibrating the cascade {first.path.name} -> {second.path.name} on {len(records)} valid images")
    x, y = load_faces(records, size, log)

    def at(s):
        return x if s == size else np.stack([prepare_batch([im], s)[0] for im in x])

    p1, p2 = _predict_all(first, at(first.input_size)), _predict_all(second, at(second.input_size))
    ids = []
    for m in (first, second):
        ids.append({**file_id(m.path), "format": m.format, "threshold": float(m.threshold)})
    return build_table(margin(p1, first.threshold), margin(p2, second.threshold), y, ids[0], ids[1],
                       calib_source(calib_data))


def write_bundled(calib_data, formats=None, log=print) -> Path:
    """(Re)write the bundled default -> ten-pass tables (``BUNDLED_TABLES``), one per bundled format of the
    default that the runtime can load, from the valid splits of ``calib_data``."""
    from edge_dfd.core.fsutil import atomic_write_json
    from edge_dfd.images import data as datamod
    from edge_dfd.images.preprocess import prepare_batch
    from edge_dfd.runtime import load_model, zoo
    from edge_dfd.runtime.cascade import BUNDLED_TABLES

    second = load_model("ten-pass")
    records = [r for d in _dirs(calib_data) for r in datamod.load_split(d, "valid")]
    size = second.input_size
    x, y = load_faces(records, size, log)
    p2 = _predict_all(second, x)
    sid = {**file_id(second.path), "format": second.format, "threshold": float(second.threshold)}
    tables = []
    for fmt in formats or [f for f in zoo.available_formats() if f != "keras"]:
        first = load_model("default", format=fmt)
        x1 = x if first.input_size == size else np.stack([prepare_batch([im], first.input_size)[0] for im in x])
        p1 = _predict_all(first, x1)
        fid = {**file_id(first.path), "format": first.format, "threshold": float(first.threshold)}
        t = build_table(margin(p1, first.threshold), margin(p2, second.threshold), y, fid, sid,
                        "bundled: " + " + ".join(d.name for d in _dirs(calib_data)) + " [valid]")
        log(f"{fmt}: rule {t['rule']}, band(0.2) = {np.interp(0.2, t['fractions'], t['band']):.3f}, "
            f"valid balanced accuracy {t['valid_balanced_accuracy']}")
        tables.append(t)
    doc = {"version": 1, "regenerate": "python -m edge_dfd.runtime.calibrate --write-bundled DATA_DIR...", "tables": tables}
    return atomic_write_json(BUNDLED_TABLES, doc)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m edge_dfd.runtime.calibrate",
                                 description="Rewrite the bundled default -> ten-pass cascade calibration tables "
                                             "(edge_dfd/assets/cascade_default_ten_pass.json); a maintainer's tool.")
    ap.add_argument("--write-bundled", nargs="+", metavar="DATA_DIR", required=True,
                    help="rewrite the bundled default -> ten-pass calibration tables from these sets' valid splits")
    ap.add_argument("--formats", nargs="*", default=None)
    a = ap.parse_args()
    print(f"wrote {write_bundled(a.write_bundled, a.formats)}")
