"""Face boxes for the ``deploy`` recipe's live-style crops: found once per training image, cached in the run folder.

``face_box(img, detector)`` is BlazeFace's box on one native-resolution RGB image, found on the image extended by
half its size of reflected surroundings (a face that fills the frame is too close for a face detector).
``cached_boxes(run_dir, name, records)`` returns one row per record: (x1, y1, x2, y2) in the image's pixels, NaN
where no face was found, ``UNREADABLE`` (-1) where the image could not be decoded (the trainer drops those and
counts them). A file hard-linked under several names is detected once. The cache is ``boxes/<name>-<key>/part-NNNNN.npy`` (``PART`` images each, written atomically, so a
killed or failed run leaves only whole parts, which the next run reuses); ``key`` hashes the image paths, so
another data set never reuses them. Memory: the boxes (16 bytes an image) and one image at a time.
"""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, ImageError
from edge_dfd.core.fsutil import atomic_path

PART = 2048  # images per cache file
UNREADABLE = -1.0


def face_box(img: np.ndarray, detector) -> np.ndarray:
    """The detector's box nearest the centre on ``img`` padded by half its size of reflection (NaN: none)."""
    import cv2

    from edge_dfd.images.perturb import pad

    h, w = img.shape[:2]
    ph, pw = h // 2, w // 2
    big = pad(img, ph, ph, pw, pw, "reflect")
    boxes, _ = detector.detect(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    if not len(boxes):
        return np.full(4, np.nan, np.float32)
    c = np.array([big.shape[1] / 2, big.shape[0] / 2])  # reflections can hold mirrored faces
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    b = boxes[int(np.argmin(np.linalg.norm(centres - c, axis=1)))]
    return (np.asarray(b, np.float32) - np.array([pw, ph, pw, ph], np.float32)).astype(np.float32)


def cache_key(records) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(str(r.path).encode() + b"\n")
    return h.hexdigest()[:16]


def _read_part(path: Path, n: int) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return arr if arr.shape == (n, 4) and arr.dtype == np.float32 else None


def cached_boxes(run_dir: Path, name: str, records, detector_factory=None, skips=None) -> np.ndarray:
    """(len(records), 4) float32 boxes of ``records``, from the run folder's cache where present."""
    from edge_dfd.core import progress
    from edge_dfd.images.preprocess import decode_image

    folder = Path(run_dir) / "boxes" / f"{name}-{cache_key(records)}"
    n = len(records)
    out = np.empty((n, 4), np.float32)
    todo = []
    for k, start in enumerate(range(0, n, PART)):
        part = _read_part(folder / f"part-{k:05d}.npy", min(PART, n - start))
        if part is None:
            todo.append((k, start))
        else:
            out[start:start + len(part)] = part
    if not todo:
        return out
    if detector_factory is None:
        from edge_dfd.images.faces import make_detector

        def detector_factory():
            return make_detector("blazeface", threads=1)

    det = detector_factory()
    total = sum(min(PART, n - s) for _, s in todo)
    bar = progress.bar(total, f"face boxes for live-style crops ({name}, cached in {folder})", unit="image")
    seen: dict[tuple, np.ndarray] = {}  # (device, inode) -> box: hard-linked copies of one file are found once
    try:
        for k, start in todo:
            rows = np.empty((min(PART, n - start), 4), np.float32)
            for j, rec in enumerate(records[start:start + len(rows)]):
                try:
                    st = Path(rec.path).stat()
                    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                except OSError:
                    ident = None
                if ident is not None and ident in seen:
                    rows[j] = seen[ident]
                else:
                    try:
                        rows[j] = face_box(decode_image(rec.path), det)
                    except ImageError as exc:
                        rows[j] = UNREADABLE
                        if skips is not None:
                            skips.add(str(rec.path), exc.reason)
                    if ident is not None:
                        seen[ident] = rows[j].copy()
                bar.update(1)
            _write_part(folder / f"part-{k:05d}.npy", rows)
            out[start:start + len(rows)] = rows
    finally:
        bar.close()
    return out


def _write_part(path: Path, rows: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, rows, allow_pickle=False)
    except OSError as exc:
        why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise EdgeDFDError(f"{path}: cannot write the face-box cache ({why}); free space and run again "
                           f"(whole parts already written are reused, nothing half-written is)") from None
