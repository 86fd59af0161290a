"""``edge-dfd train --recipe deploy``: the recipe of the bundled default detector, streaming from disk.

Model: ``edge_dfd.modelling.backbones.multicrop_model`` with ONE view (the whole crop): raw pixels -> the backbone
(EfficientNet-Lite0 by default, or MobileNetV2) -> pooled at several depths -> standardised -> one logistic unit ->
P(fake); fine-tuned end to end with BatchNorm in inference mode (AdamW, cosine schedule with warm-up, label
smoothing 0.02). ``--init``: ``default`` (the bundled detector.keras), ``imagenet`` (the bundled ported ImageNet
weights; offline) or a ``.keras`` file of the same architecture and input size.

Training views: each step draws ``batch`` images, the ``--data`` folders in turn (sampled equally), each image
through ``edge_dfd.train.augment.augment`` (face-detector framing with natural surroundings, zoom-out, borders,
rescale, blur, noise, colour, JPEG / MJPG) and resized to the input size. Image ``pos`` of epoch ``e`` is always
the same draw (``numpy.random.default_rng((seed, e, pos))``), so a resumed run sees the same data as an
uninterrupted one. The face boxes the live-style crop needs are found once per image and cached in the run
folder (``edge_dfd.train.boxes``). Memory: only the path / label / box lists grow with the data.

Validation (epoch and threshold selection): every valid image as it is AND once through a ``bench --robustness``
perturbation (image i through ``PERTURBATIONS[i % n]``); the epoch with the lowest loss on both together is kept
and its threshold is chosen on both (max balanced accuracy). The test report is on the test split as it is.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, ImageError, ModelError, require

ARCHS = ("efficientnet_lite0", "mobilenet_v2")  # edge_dfd.modelling.backbones.BACKBONES: bundled ImageNet weights
ARCH = "efficientnet_lite0"
# The face crop each arch's model is told to get in video (written into its metadata, ``crop_mode``): the crop
# measured best in video for models of this recipe (benchmarks/results/live_fidelity.md, 150 test faces:
# EfficientNet-Lite0 0.913 aligned vs 0.827 box; the MobileNetV2 student 0.847 box vs 0.807-0.813 aligned).
CROP_MODES = {"efficientnet_lite0": "aligned", "mobilenet_v2": "box"}
INPUT_SIZE = 224
LR = 1e-4
LABEL_SMOOTHING = 0.02
WEIGHT_DECAY = 1e-4
INITS = ("default", "imagenet")  # or a .keras path
MODEL_NAME = "edge_dfd_detector"
THRESHOLD_SOURCE = "valid split as-is and perturbed (bench --robustness), max balanced accuracy"


def meta_arch(arch: str) -> str:
    return f"{arch}_single_pass"


def training_crop(recipe: str, arch: str) -> tuple[str, float]:
    """(crop_mode, crop_margin) a run writes into its model's metadata: the deploy recipe's per-arch crop
    (``CROP_MODES``); the study recipe trains on the FFHQ-aligned 140k images as they are, so ``aligned``."""
    from edge_dfd.core.meta import DEFAULT_MARGIN

    return (CROP_MODES.get(arch, "aligned") if recipe == "deploy" else "aligned"), DEFAULT_MARGIN


class EpochState:
    """The epoch the input pipeline draws for (set by ``epoch_callback`` before each epoch's iterator starts)."""

    def __init__(self, global_batch: int = 1):
        self.epoch = 0
        self.global_batch = global_batch


def epoch_callback(state: EpochState):
    keras = require("keras", "training")

    class SetEpoch(keras.callbacks.Callback):
        """Sets the epoch to draw before its iterator starts; adds the train phase's images/s (validation
        excluded) to the epoch logs, which the run keeper writes to history.csv."""

        def on_epoch_begin(self, epoch, logs=None):
            state.epoch = int(epoch)
            self.t0, self.t_train, self.steps = time.perf_counter(), None, 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1

        def on_test_begin(self, logs=None):
            if self.t_train is None:
                self.t_train = time.perf_counter() - self.t0

        def on_epoch_end(self, epoch, logs=None):
            seconds = self.t_train if self.t_train is not None else time.perf_counter() - self.t0
            if logs is not None and seconds > 0:
                logs["train_images_per_s"] = self.steps * state.global_batch / seconds

    return SetEpoch()


# ------------------------------------------------------------------ model


def build_model(arch: str, size: int, init: str):
    """The single-pass detector from ``init`` (default | imagenet | PATH); one-line ModelError on a mismatch."""
    from edge_dfd.modelling.backbones import TAP_CHANNELS, multicrop_model, set_trainable

    if init == "imagenet":
        n = sum(TAP_CHANNELS[arch])
        return multicrop_model(arch, input_size=size, view_size=size, crops=("whole",), weights="imagenet",
                               standardize=(np.zeros(n), np.ones(n)), trainable_from=0, name=MODEL_NAME)
    from edge_dfd.modelling.kerasio import load_keras

    path = init_path(init)
    model = load_keras(path)
    check_init(model, path, arch, size)
    set_trainable(model.get_layer(arch), 0)  # everything trains; BatchNorm stays in inference mode
    return model


def init_path(init: str) -> Path:
    if init == "default":
        from edge_dfd.runtime import zoo

        return zoo.default_path("keras")
    p = Path(init)
    if p.suffix != ".keras":
        raise ModelError(f"--init {init}: expected default, imagenet or a .keras file")
    if not p.is_file():
        raise ModelError(f"--init {init}: file not found (expected default, imagenet or a .keras file)")
    return p


def check_init(model, path, arch: str, size: int) -> None:
    """``model`` must be a single-view ``arch`` detector with the multi-depth head at ``size`` px."""
    from edge_dfd.modelling.backbones import TAP_CHANNELS

    shape = tuple(model.inputs[0].shape[1:]) if len(model.inputs) == 1 else None
    if shape != (size, size, 3):
        got = f"{shape[0]}x{shape[1]}" if shape and len(shape) == 3 else str(shape)
        raise ModelError(f"--init {path}: input is {got}, this run trains at {size}x{size} "
                         f"(pass --img-size {shape[0] if shape and len(shape) == 3 else size} or another model)")
    names = {layer.name for layer in model.layers}
    n = sum(TAP_CHANNELS[arch])
    try:
        kernel = model.get_layer("logit").get_weights()[0]
    except (ValueError, IndexError):
        kernel = None
    if arch not in names or kernel is None or kernel.shape != (n, 1) or "mean_logit" in names:
        raise ModelError(f"--init {path}: not a single-pass {arch} detector with the multi-depth head "
                         f"(expected a '{arch}' backbone and one 'logit' unit over {n} pooled features)")


def compile_model(model, lr: float, total_steps: int, warmup_steps: int):
    keras = require("keras", "training")
    sched = keras.optimizers.schedules.CosineDecay(lr * 0.1, max(1, total_steps), alpha=0.02, warmup_target=lr,
                                                   warmup_steps=max(1, warmup_steps))
    model.compile(optimizer=keras.optimizers.AdamW(sched, weight_decay=WEIGHT_DECAY),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=LABEL_SMOOTHING),
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    return model


# ------------------------------------------------------------------ data


class TrainSets:
    """The train split of each ``--data`` folder: paths, targets and face boxes (unreadable images dropped)."""

    def __init__(self, names, records_per_set, boxes_per_set, skips):
        from edge_dfd.train.boxes import UNREADABLE

        self.names = list(names)
        self.paths, self.ys, self.boxes, self.dropped = [], [], [], 0
        for recs, boxes in zip(records_per_set, boxes_per_set):
            keep = boxes[:, 0] != UNREADABLE
            for r in (r for r, k in zip(recs, keep) if not k):
                skips.add(str(r.path), "unreadable (found while caching face boxes)")
            self.dropped += int((~keep).sum())
            self.paths.append(np.array([str(r.path) for r, k in zip(recs, keep) if k]))
            self.ys.append(np.array([r.is_fake for r, k in zip(recs, keep) if k], np.float32))
            self.boxes.append(boxes[keep])
        for name, p, y in zip(self.names, self.paths, self.ys):
            if len(p) == 0 or len(set(y.tolist())) < 2:
                raise EdgeDFDError(f"{name}: the train split needs readable real and fake images "
                                   f"(has {int((y == 0).sum())} real, {int((y == 1).sum())} fake)")

    def __len__(self) -> int:
        return sum(len(p) for p in self.paths)

    def draw(self, seed: int, epoch: int, pos: int):
        """Image ``pos`` of ``epoch``: (path, y_fake, box or None, rng for its augmentation)."""
        rng = np.random.default_rng((seed, epoch, pos))
        s = pos % len(self.paths)
        i = int(rng.integers(len(self.paths[s])))
        b = self.boxes[s][i]
        return self.paths[s][i], self.ys[s][i], (None if np.isnan(b).any() else b), rng


def train_dataset(sets: TrainSets, state: EpochState, *, seed: int, size: int, steps: int, global_batch: int,
                  batch_size: int, skips, shard=None):
    """tf.data: positions 0..steps*global_batch -> [shard] -> parallel decode + deployment augmentation -> batch."""
    tf = require("tensorflow", "training")
    from edge_dfd.images.preprocess import decode_image
    from edge_dfd.train.augment import augment

    blank = np.zeros((size, size, 3), np.uint8)

    def load(pos):
        path, y, box, rng = sets.draw(seed, state.epoch, int(pos))
        try:
            img = decode_image(path)
        except ImageError as exc:
            skips.add(str(path), exc.reason)
            return blank, np.float32(y), np.bool_(False)
        return augment(img, rng, box, size), np.float32(y), np.bool_(True)

    ds = tf.data.Dataset.range(steps * global_batch)
    if shard is not None:
        ds = ds.shard(*shard)
    return _finish(tf, ds, load, size, batch_size)


def eval_dataset(records, *, size: int, batch_size: int, skips, perturbed: bool = True, shard=None):
    """tf.data over ``records`` as they are, then (``perturbed``) each through ``PERTURBATIONS[i % n]``."""
    tf = require("tensorflow", "training")
    from edge_dfd.images.perturb import PERTURBATIONS, perturb
    from edge_dfd.images.preprocess import decode_image, resize_square

    paths = np.array([str(r.path) for r in records])
    ys = np.array([r.is_fake for r in records], np.float32)
    n = len(records)
    blank = np.zeros((size, size, 3), np.uint8)

    def load(k):
        k = int(k)
        i = k % n
        try:
            img = decode_image(paths[i])
        except ImageError as exc:
            skips.add(str(paths[i]), exc.reason)
            return blank, ys[i], np.bool_(False)
        if k >= n:
            img = perturb(img, PERTURBATIONS[i % len(PERTURBATIONS)])
        return resize_square(img, size), ys[i], np.bool_(True)

    ds = tf.data.Dataset.range(2 * n if perturbed else n)
    if shard is not None:
        ds = ds.shard(*shard)
    return _finish(tf, ds, load, size, batch_size)


def _finish(tf, ds, load, size: int, batch_size: int):
    """Positions -> batches of ``batch_size`` positions -> ONE numpy_function per batch (the per-call overhead of
    tf.data is paid per batch, not per image; batches run in parallel, OpenCV releases the GIL) without the
    unreadable images. Batches stay uint8 (a quarter of float32's bytes to copy and to send to an accelerator):
    the model's float32 input casts them inside the train / predict step."""

    def load_batch(positions):
        out = [o for o in (load(p) for p in positions) if o[2]]
        imgs = np.stack([o[0] for o in out]) if out else np.zeros((0, size, size, 3), np.uint8)
        return imgs, np.asarray([o[1] for o in out], np.float32).reshape(-1)

    def fn(positions):
        img, y = tf.numpy_function(load_batch, [positions], [tf.uint8, tf.float32], stateful=False)
        img.set_shape((None, size, size, 3))
        y.set_shape((None,))
        return img, y

    par = tf.data.AUTOTUNE
    return ds.batch(batch_size).map(fn, num_parallel_calls=par, deterministic=True).prefetch(par)
