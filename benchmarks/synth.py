"""Generated data for tests and benchmarks: tiny 140k-layout datasets, face-like images, a tiny ONNX classifier.
Nothing here is a real photo.

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


def write_split_csv(root, split: str, rows) -> Path:
    """``root/{split}.csv`` in the 140k layout (``HEADER``) with ``rows`` ([index, original_path, id, label,
    label_str, path] each)."""
    path = Path(root) / f"{split}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


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
        write_split_csv(root, split, rows)
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


def cartoon_face(fake: bool, size: int = 160, seed: int = 0) -> np.ndarray:
    """A synth_face (class colours) with hair, eyes, brows, nose and mouth drawn on, so that the Haar cascade
    finds it (39/40 positions in a sweep). RGB."""
    import cv2

    img = cv2.GaussianBlur(synth_face(fake, size, seed), (5, 5), 0)  # blur the checkerboard: it hides faces from Haar
    s, dark = size, (50, 35, 25)
    cv2.ellipse(img, (s // 2, int(s * 0.12)), (int(s * 0.42), int(s * 0.14)), 0, 0, 360, dark, -1)
    for dx in (-0.18, 0.18):
        cx = int(s * (0.5 + dx))
        cv2.ellipse(img, (cx, int(s * 0.42)), (int(s * 0.12), int(s * 0.06)), 0, 0, 360, (20, 20, 20), -1)
        cv2.line(img, (cx - int(s * 0.1), int(s * 0.33)), (cx + int(s * 0.1), int(s * 0.33)), dark, max(2, s // 25))
    cv2.line(img, (s // 2, int(s * 0.47)), (s // 2, int(s * 0.62)), (120, 80, 70), max(2, s // 50))
    cv2.ellipse(img, (s // 2, int(s * 0.74)), (int(s * 0.14), int(s * 0.035)), 0, 0, 360, (110, 40, 40), -1)
    return img


def tiny_onnx(path, size: int = 32, threshold: float = 0.5) -> Path:
    """A tiny hand-built ONNX classifier (no training, no TensorFlow) with edge-dfd metadata embedded:
    P(fake) = sigmoid(40 * (mean(B - R) + 0.15)) on ``size`` px crops. synth "real" cartoon faces are warm
    (B - R ~ -0.25), "fake" ones cool (B - R ~ -0.05); a background at B - R = -0.15 sits at the threshold."""
    import onnx
    from onnx import TensorProto, helper

    from edge_dfd.core.meta import ModelMeta, write_meta

    k = 40.0
    w = np.array([[-k / 255], [0.0], [k / 255]], np.float32)  # RGB input: B - R
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["z"]),
        helper.make_node("Add", ["z", "b"], ["zb"]),
        helper.make_node("Sigmoid", ["zb"], ["p_fake"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("p_fake", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [3, 1], w.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, [1], [k * 0.15])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    write_meta(path, ModelMeta(format="onnx", arch="tiny-tint", input_size=size, threshold=threshold,
                               threshold_source="test"))
    return path
