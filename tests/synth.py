"""Generated test data: tiny 140k-layout datasets and face-like images. Nothing here is a real photo.

Classes are made clearly separable so that a tiny model trained for one epoch learns them:
"real" images are smooth warm-toned gradients with a bright ellipse, "fake" ones add a strong
high-frequency checkerboard and a cool tint.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HEADER = ["", "original_path", "id", "label", "label_str", "path"]
IMAGES_SUBDIR = Path("real_vs_fake") / "real-vs-fake"


def synth_face(fake: bool, size: int = 64, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 RGB image of class ``fake``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    base = np.stack([0.55 + 0.3 * xx, 0.45 + 0.2 * yy, 0.35 + 0.1 * xx * yy], axis=-1)
    cy, cx = 0.5 + rng.uniform(-0.08, 0.08, 2)
    ell = ((yy - cy) / 0.38) ** 2 + ((xx - cx) / 0.3) ** 2 < 1.0
    base[ell] = base[ell] * 0.6 + np.array([0.85, 0.7, 0.6]) * 0.4
    if fake:
        checker = ((np.indices((size, size)).sum(axis=0) % 2) * 2 - 1).astype(np.float32)
        base = base * np.array([0.7, 0.8, 1.15]) + 0.18 * checker[..., None]
    base = base + rng.normal(0, 0.02, base.shape)
    return (np.clip(base, 0, 1) * 255).astype(np.uint8)


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 95) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path.write_bytes(buf.tobytes())


def make_140k(root, counts=None, size: int = 64, seed: int = 0, splits=("train", "valid", "test")) -> Path:
    """Write a 140k-layout dataset: root/{split}.csv + root/real_vs_fake/real-vs-fake/{split}/{real,fake}/*.jpg.

    ``counts`` maps split -> images per class (default train 16, valid 8, test 8).
    """
    root = Path(root)
    counts = counts or {"train": 16, "valid": 8, "test": 8}
    k = 0
    for split in splits:
        n = counts.get(split, 0)
        rows = []
        for cls, label in (("real", 1), ("fake", 0)):
            for _i in range(n):
                ident = f"{cls[0].upper()}{seed}{k:05d}"
                rel = f"{split}/{cls}/{ident}.jpg"
                write_jpeg(root / IMAGES_SUBDIR / rel, synth_face(cls == "fake", size, seed * 100000 + k))
                rows.append([len(rows), f"synthetic/{ident}", ident, label, cls, rel])
                k += 1
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            w.writerows(rows)
    return root


def make_folder_layout(root, counts=None, size: int = 64, seed: int = 1) -> Path:
    """Plain layout: root/{split}/{real,fake}/*.jpg."""
    root = Path(root)
    counts = counts or {"train": 8, "valid": 4, "test": 4}
    k = 0
    for split, n in counts.items():
        for cls in ("real", "fake"):
            for _i in range(n):
                write_jpeg(root / split / cls / f"{k:05d}.jpg", synth_face(cls == "fake", size, seed * 100000 + k))
                k += 1
    return root
