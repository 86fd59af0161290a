"""The training input pipeline: (path, y_fake) -> decoded, augmented float32 batches (tf.data).

Pipeline: (path, y_fake) -> parallel ``tf.numpy_function(edge_dfd.images.preprocess.load_image)`` ->
[JPEG-quality aug] -> float32 -> [blur aug] -> batch -> [the study's random rotation / flip / shear /
zoom / shift as Keras preprocessing layers] -> prefetch. Augmentation runs only in the input
pipeline, never inside the saved model. Unreadable images are skipped and recorded in a ``SkipLog``.
"""

from __future__ import annotations

import threading

import numpy as np

from edge_dfd.core.errors import ImageError, require
from edge_dfd.core.progress import log
from edge_dfd.train.config import (
    AUG_ROTATION,
    AUG_SHEAR,
    AUG_SHIFT,
    AUG_ZOOM,
    BLUR_SIGMA,
    JPEG_QUALITY,
    TrainConfig,
)


class SkipLog:
    """Thread-safe record of images that could not be decoded (path -> reason)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.items: dict[str, str] = {}
        self.reported = 0

    def add(self, path: str, reason: str) -> None:
        with self._lock:
            self.items.setdefault(path, reason)

    def report_new(self) -> None:
        with self._lock:
            new = list(self.items.items())[self.reported:]
            self.reported = len(self.items)
        if new:
            shown = "; ".join(f"{p} ({r})" for p, r in new[:3])
            more = f" (+{len(new) - 3} more)" if len(new) > 3 else ""
            log(f"warning: skipped {len(new)} unreadable image(s): {shown}{more}")


def _loader(size: int, skips: SkipLog):
    from edge_dfd.images.preprocess import load_image

    blank = np.zeros((size, size, 3), np.uint8)

    def load(path: bytes):
        p = path.decode()
        try:
            return load_image(p, size), np.bool_(True)
        except ImageError as exc:
            skips.add(p, exc.reason)
            return blank, np.bool_(False)

    return load


def augmentation_layers(seed: int):
    """The study's random augmentation as a Keras pipeline (applied in tf.data, never saved)."""
    keras = require("keras", "training")
    L = keras.layers
    return keras.Sequential(
        [
            L.RandomRotation(AUG_ROTATION, fill_mode="nearest", seed=seed),
            L.RandomFlip("horizontal", seed=seed + 1),
            L.RandomShear(x_factor=AUG_SHEAR, y_factor=AUG_SHEAR, fill_mode="nearest", seed=seed + 2),
            L.RandomZoom(AUG_ZOOM, fill_mode="nearest", seed=seed + 3),
            L.RandomTranslation(AUG_SHIFT, AUG_SHIFT, fill_mode="nearest", seed=seed + 4),
        ],
        name="augmentation",
    )


def _jpeg_aug(tf, img):
    q = tf.random.uniform([], JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, dtype=tf.int32)
    return tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.image.adjust_jpeg_quality(img, q), lambda: img)


def _blur_aug(tf, img):
    sigma = tf.random.uniform([], *BLUR_SIGMA)
    r = tf.range(-3.0, 4.0)
    k = tf.exp(-(r**2) / (2.0 * sigma**2))
    k = k / tf.reduce_sum(k)
    kern = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, 3, 1])

    def blur():
        padded = tf.pad(img, [[3, 3], [3, 3], [0, 0]], mode="REFLECT")
        return tf.nn.depthwise_conv2d(padded[None], kern, [1, 1, 1, 1], "VALID")[0]

    return tf.cond(tf.random.uniform([]) < 0.5, blur, lambda: img)


def make_dataset(records, cfg: TrainConfig, skips: SkipLog, training: bool, batch_size: int | None = None,
                 shard: tuple[int, int] | None = None):
    """tf.data pipeline yielding (float32 0..255 batch, float32 y_fake batch).

    ``batch_size`` defaults to cfg.batch_size; ``shard=(num, index)`` keeps every num-th record from
    ``index`` before decoding (one tf.distribute worker's share)."""
    tf = require("tensorflow", "training")
    size = cfg.img_size
    paths = [str(r.path) for r in records]
    ys = np.asarray([r.is_fake for r in records], np.float32)
    ds = tf.data.Dataset.from_tensor_slices((paths, ys))
    if shard is not None:
        ds = ds.shard(*shard)
    if training:
        ds = ds.shuffle(len(paths), seed=cfg.seed, reshuffle_each_iteration=True)
    load = _loader(size, skips)

    def decode(path, y):
        img, ok = tf.numpy_function(load, [path], [tf.uint8, tf.bool], stateful=False)
        img.set_shape((size, size, 3))
        ok.set_shape(())
        return img, y, ok

    def readable(img, y, ok):
        return ok

    def drop_flag(img, y, ok):
        return img, y

    def jpeg(img, y):
        return _jpeg_aug(tf, img), y

    def to_float(img, y):
        return tf.cast(img, tf.float32), y

    def blur(img, y):
        return _blur_aug(tf, img), y

    par = tf.data.AUTOTUNE
    ds = ds.map(decode, num_parallel_calls=par, deterministic=True).filter(readable).map(drop_flag)
    if training and cfg.jpeg_aug:
        ds = ds.map(jpeg, num_parallel_calls=par)
    ds = ds.map(to_float)
    if training and cfg.blur_aug:
        ds = ds.map(blur, num_parallel_calls=par)
    ds = ds.batch(batch_size or cfg.batch_size)
    if training and cfg.augment:
        aug = augmentation_layers(cfg.seed)

        def augment(x, y):
            return tf.clip_by_value(aug(x, training=True), 0.0, 255.0), y

        ds = ds.map(augment, num_parallel_calls=par)
    return ds.prefetch(par)


def predict_dataset(model, ds) -> tuple[np.ndarray, np.ndarray]:
    """(y_fake, p_fake) over a pipeline built with training=False (skipped images drop out of both)."""
    ys, ps = [], []
    for xb, yb in ds:
        ps.append(np.asarray(model(xb, training=False), np.float32).reshape(-1))
        ys.append(np.asarray(yb).reshape(-1))
    if not ys:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(ys).astype(np.int64), np.concatenate(ps)
