"""Shared by the stages of ``python -m benchmarks.quality`` (its docstring gives the recipe): the sets' records,
labels and images, and stage 1 (``features``): pooled multi-tap features of every crop, both backbones, LiteRT
fp32, cached under runs/cache/."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, SETS
from edge_dfd.core.progress import log  # noqa: F401 (the one log helper; the quality stages import it from here)
from edge_dfd.modelling.backbones import CROPS

SPLITS = ("train", "valid", "test")
CACHE = REPO / "runs" / "cache"
INPUT_SIZE, VIEW_SIZE = 256, 224
ALL_CROPS = tuple(CROPS)
SEED = 0
# The ten-pass model this script builds was the TEACHER of the bundled single-pass default (docs/release.md);
# it no longer ships, so its files and card go to runs/teacher, never into edge_dfd/assets/default.
TEACHER_DIR = REPO / "runs" / "teacher"


def records(set_name: str, split: str):
    from edge_dfd.images.data import load_split

    return load_split(SETS[set_name], split)


def labels(set_name: str, split: str) -> np.ndarray:
    return np.array([r.is_fake for r in records(set_name, split)], np.int32)


def load_images(set_name: str, split: str) -> np.ndarray:
    from edge_dfd.images.preprocess import load_image

    return np.stack([load_image(r.path, INPUT_SIZE) for r in records(set_name, split)])


# ------------------------------------------------------------------ stage 1: features


def tflite_interpreter(keras_model, threads: int = 2):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    it = Interpreter(model_content=conv.convert(), num_threads=threads)
    it.allocate_tensors()
    return it


def run_tflite(it, images: np.ndarray, budget_end: float) -> np.ndarray:
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for i, im in enumerate(images):
        if time.time() > budget_end:
            raise SystemExit(f"time budget exhausted after {i} images; rerun (cached splits are kept)")
        it.set_tensor(inp["index"], im[None].astype(np.float32))
        it.invoke()
        res.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(res)


def feat_path(arch, set_name, split) -> Path:
    return CACHE / f"feat_{arch}_{set_name}_{split}.npy"


def stage_features(args) -> None:
    from edge_dfd.modelling.backbones import multicrop_features

    end = time.time() + 60 * args.budget_min
    CACHE.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        it = None
        for s in SETS:
            for split in SPLITS:
                p = feat_path(arch, s, split)
                if p.is_file():
                    continue
                if it is None:
                    it = tflite_interpreter(multicrop_features(arch, INPUT_SIZE, VIEW_SIZE, ALL_CROPS))
                t0 = time.time()
                imgs = load_images(s, split)
                f = run_tflite(it, imgs, end)
                np.save(p, f.astype(np.float32))
                log(f"{arch} {s}/{split}: {f.shape} in {time.time() - t0:.0f}s "
                    f"({(time.time() - t0) / len(imgs) * 1000:.0f} ms/image)")
