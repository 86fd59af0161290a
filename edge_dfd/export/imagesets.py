"""The images ``edge-dfd convert`` calibrates and verifies on (``edge_dfd.export.convert``): a class-stratified
sample of the train split of the data folder (``--calib-data``, else the one recorded in the model by
``edge-dfd train``) calibrates when it has enough, else of its valid split; verification images are a
class-stratified sample of the valid split, never a calibration image. With no labelled data at all, float
formats verify on deterministic generated inputs (``probe_inputs``, also the bench's probe images)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import DataError, ImageError
from edge_dfd.core.meta import ModelMeta

CALIB_SEED, VERIFY_SEED = 0, 1


@dataclass
class ImageSet:
    """Images (uint8, N x S x S x 3), their labels (y_fake, or None when unknown) and where they came from."""

    x: np.ndarray
    y_fake: np.ndarray | None
    source: str


def probe_inputs(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` deterministic generated (size, size, 3) uint8 images: smooth colour fields, a blob, texture, noise.

    Used to verify float exports when no labelled data exists (and by the conversion benchmark). They
    span the whole 0..255 range and vary in texture, so they exercise every layer - but they are not
    faces: integer calibration needs real images.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(0, 1, (3, 3))
        img = a + (b - a) * xx[..., None] + (c - a) * yy[..., None]
        cy, cx, ry, rx = rng.uniform(0.3, 0.7, 2).tolist() + rng.uniform(0.15, 0.4, 2).tolist()
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
        img[blob] = img[blob] * 0.5 + rng.uniform(0, 1, 3) * 0.5
        freq = rng.uniform(2, size / 3)
        img += rng.uniform(0, 0.25) * np.sin(2 * np.pi * freq * (xx + yy))[..., None]
        img += rng.normal(0, rng.uniform(0.0, 0.08), img.shape)
        out[i] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return out


def data_root(calib_data, meta: ModelMeta | None, keras_path: Path) -> Path | None:
    """--calib-data, else the data folder recorded by `edge-dfd train` (if it still exists)."""
    if calib_data is not None:
        return Path(calib_data).expanduser()
    recorded = (meta.training or {}).get("data") if meta else None
    if not recorded:
        return None
    names = [str(r) for r in recorded] if isinstance(recorded, (list, tuple)) else [str(recorded)]
    for name in names:  # a model trained on several folders records a list: the first one found here
        for cand in (Path(name).expanduser(), keras_path.parent / name):
            if cand.is_dir():
                return cand
    shown = ", ".join(names)
    print(f"note: the model's recorded data folder {shown} is not here; pass --calib-data DIR", file=sys.stderr)
    return None


def load_images(records, size: int, what: str):
    """Decode records through preprocess.load_image; unreadable ones are skipped and counted."""
    from edge_dfd.core import progress
    from edge_dfd.images.preprocess import load_image

    xs, ys, bad = [], [], []
    for r in progress.iterate(records, desc=f"reading {what} images", unit="img", leave=False):
        try:
            xs.append(load_image(r.path, size))
            ys.append(r.is_fake)
        except ImageError as exc:
            bad.append(exc)
    if bad:
        print(f"note: skipped {len(bad)} unreadable {what} image(s), e.g. {bad[0]}", file=sys.stderr)
    x = np.stack(xs) if xs else np.zeros((0, size, size, 3), np.uint8)
    return x, np.asarray(ys, np.int64), len(bad)


def select_images(root: Path, size: int, calib_size: int, verify_size: int):
    """(calibration ImageSet, verification ImageSet) of ``root``: verification = up to ``verify_size``
    class-stratified images of the valid split (all of them when it has fewer: one note says so); calibration =
    ``calib_size`` class-stratified images of the train split when it has that many, else shared out of the valid
    split (at most half of it when it cannot hold both counts). The two never share an image."""
    from edge_dfd.images.data import available_splits, load_split, stratified_sample

    splits = available_splits(root)
    split = "valid" if "valid" in splits else (splits[0] if splits else None)
    if split is None:
        raise DataError(f"{root}: has no split to draw calibration images from")
    if split != "valid":
        print(f"note: {root} has no 'valid' split; calibrating and verifying on '{split}'", file=sys.stderr)
    records = load_split(root, split)
    calib_split, calib_pool = split, records
    if calib_size and split != "train" and "train" in splits:
        train = load_split(root, "train")
        if len(train) >= calib_size:
            calib_split, calib_pool = "train", train
    if calib_size and calib_split == split and calib_size + verify_size > len(records) and \
            calib_size > len(records) // 2:  # too few to share out as asked: at most half calibrates, never reused
        calib_size = max(1, len(records) // 2)
        print(f"note: {root}:{split} has {len(records)} images and no train split with enough: calibrating on "
              f"{calib_size} of them, verifying on the others", file=sys.stderr)
    calib_recs = stratified_sample(calib_pool, calib_size, seed=CALIB_SEED)
    verify_recs = stratified_sample(records, verify_size, seed=VERIFY_SEED,
                                    exclude=calib_recs if calib_split == split else ())
    if len(verify_recs) < verify_size:
        print(f"note: verifying on all {len(verify_recs)} labelled images of {root}:{split} left for it (fewer than "
              f"the {verify_size} asked for)", file=sys.stderr)
    cx, cy, _ = load_images(calib_recs, size, "calibration")
    vx, vy, _ = load_images(verify_recs, size, "verification")
    if len(cx) == 0 and len(vx) == 0:
        raise DataError(f"{root}: no readable images in the '{split}' split ({len(records)} listed)")
    return ImageSet(cx, cy, f"{root}:{calib_split}"), ImageSet(vx, vy, f"{root}:{split}")
