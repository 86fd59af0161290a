"""Training: tf.data input pipeline + Keras fit + the run folder.

``train(TrainConfig(...)) -> RunResult`` writes into ``config.out``::

    model.keras            best epoch (by val_loss), ModelMeta embedded (threshold chosen on `valid`)
    history.csv            one row per epoch, 1..N, rewritten atomically after every epoch
    curves.png             accuracy and loss, train vs validation
    confusion_matrix.png   report.json  report.txt      on the `test` split when present
    config.json            everything needed to reproduce (absolute data path, CSVs used, versions)
    checkpoints/           best.keras + backup/ (keras BackupAndRestore: the --resume state)

Pipeline: (path, y_fake) -> parallel ``tf.numpy_function(edge_dfd.preprocess.load_image)`` ->
[JPEG-quality aug] -> float32 -> [blur aug] -> batch -> [the study's random rotation / flip / shear /
zoom / shift as Keras preprocessing layers] -> prefetch. Augmentation runs only in the input
pipeline, never inside the saved model. Unreadable images are skipped and reported.

``distribute="mirrored"|"multi-worker"`` trains on tf.distribute (``edge_dfd.distribute``): batch_size is per
replica, each worker reads its shard, and only the chief writes the run folder.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shlex
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_dfd import data as dataset
from edge_dfd.errors import EdgeDFDError, ImageError, require
from edge_dfd.fsutil import atomic_path, atomic_write_json, atomic_write_text, ensure_writable_dir

# The study's augmentation (ImageDataGenerator-style ranges), as Keras preprocessing layers.
AUG_ROTATION = 20 / 360  # +-20 degrees, as a fraction of a full turn
AUG_SHIFT = 0.1
AUG_ZOOM = 0.1
AUG_SHEAR = 0.1
JPEG_QUALITY = (40, 95)  # --jpeg-aug: random re-encoding quality, applied to half the images
BLUR_SIGMA = (0.3, 1.5)  # --blur-aug: random Gaussian blur sigma (px), applied to half the images
MONITOR = "val_loss"
# settings a --resume must share with the interrupted run
RESUME_KEYS = ("data", "arch", "img_size", "batch_size", "weights", "freeze_base", "seed", "augment",
               "jpeg_aug", "blur_aug", "lr")


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "cnn"
    epochs: int = 7
    batch_size: int = 32
    img_size: int = 256
    weights: str = "none"
    freeze_base: bool = False
    seed: int = 0
    resume: bool = False
    augment: bool = True
    jpeg_aug: bool = False
    blur_aug: bool = False
    lr: float = 1e-3
    patience: int = 3  # early stopping on val_loss; 0 disables it
    distribute: str = "none"  # none | mirrored | multi-worker (edge_dfd.distribute); batch_size is per replica

    def validate(self) -> None:
        bad = []
        if self.epochs < 1:
            bad.append(f"epochs={self.epochs} (expected >= 1)")
        if self.batch_size < 1:
            bad.append(f"batch_size={self.batch_size} (expected >= 1)")
        if not 8 <= self.img_size <= 4096:
            bad.append(f"img_size={self.img_size} (expected 8..4096)")
        if not self.lr > 0:
            bad.append(f"lr={self.lr} (expected > 0)")
        if self.patience < 0:
            bad.append(f"patience={self.patience} (expected >= 0)")
        if self.distribute not in ("none", "mirrored", "multi-worker"):
            bad.append(f"distribute={self.distribute!r} (expected none, mirrored or multi-worker)")
        if bad:
            raise EdgeDFDError("bad training settings: " + "; ".join(bad))


@dataclass
class RunResult:
    run_dir: Path
    model_path: Path
    epochs_run: int
    best_epoch: int
    threshold: float
    valid: dict | None
    test: dict | None
    skipped: dict = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["run_dir"], d["model_path"] = str(self.run_dir), str(self.model_path)
        return d


def log(msg: str) -> None:
    from edge_dfd.progress import echo

    echo(msg)  # stderr, above a progress bar if one is drawn


# ---------------------------------------------------------------- input pipeline


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
    from edge_dfd.preprocess import load_image

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


# ---------------------------------------------------------------- model


def build_and_compile(cfg: TrainConfig):
    """Build and compile the model. Everything that creates variables happens here, so a
    ``tf.distribute`` strategy can wrap this one call (``with strategy.scope(): build_and_compile(cfg)``)."""
    keras = require("keras", "training")
    from edge_dfd.models import build_model

    model = build_model(cfg.arch, cfg.img_size, cfg.weights, cfg.freeze_base)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=cfg.lr),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


# ---------------------------------------------------------------- callbacks


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
                for row in csv.DictReader(f)]


def _history_csv(rows: list[dict]) -> str:
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch", "seconds"}) + ["seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (r[k] if k == "epoch" else f"{r[k]:.6g}") for k in keys if k in r})
    return buf.getvalue()


def _run_keeper(run_dir: Path, cfg: TrainConfig, monitor: str, skips: SkipLog):
    """A callback that owns history.csv, checkpoints/best.keras, early stopping and the epoch line.

    It survives --resume: on the first epoch it reloads history.csv, drops rows at or after the epoch
    Keras resumes from (so no epoch is duplicated) and restores the early-stopping state.
    """
    keras = require("keras", "training")

    class RunKeeper(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: list[dict] = []
            self.best = np.inf
            self.wait = 0
            self.started = None
            self.t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            if self.started is None:
                self.started = epoch
                self.rows = [r for r in read_history(run_dir / "history.csv") if r["epoch"] <= epoch]
                for r in self.rows:
                    self._track(r.get(monitor, np.inf))
                if epoch:
                    log(f"resuming from epoch {epoch + 1} (epochs 1..{epoch} restored from checkpoints/backup)")
            self.t0 = time.perf_counter()

        def _track(self, value) -> bool:
            if value < self.best:
                self.best, self.wait = value, 0
                return True
            self.wait += 1
            return False

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
                   "seconds": time.perf_counter() - self.t0}
            self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
            improved = self._track(row.get(monitor, np.inf))
            if improved:
                with atomic_path(run_dir / "checkpoints" / "best.keras") as tmp:
                    self.model.save(tmp)
            atomic_write_text(run_dir / "history.csv", _history_csv(self.rows))
            parts = [f"{k} {row[k]:.4f}" for k in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")
                     if k in row]
            log(f"epoch {epoch + 1}/{cfg.epochs}  " + "  ".join(parts) + f"  {row['seconds']:.1f}s"
                + ("  *best" if improved else ""))
            skips.report_new()
            if cfg.patience and self.wait >= cfg.patience:
                log(f"early stopping: {monitor} has not improved for {cfg.patience} epoch(s)")
                self.model.stop_training = True

    return RunKeeper()


def _progress_bars(epochs: int, train_steps: int | None, valid_steps: int | None):
    """A callback that draws the steps of each epoch (and its validation) with ``edge_dfd.progress``: a bar
    with rate and ETA on a terminal, a line every ~10 s otherwise (Keras's own output is off: verbose=0).
    The step counts start as estimates (images / global batch); each epoch then uses the count of the last."""
    keras = require("keras", "training")
    from edge_dfd import progress

    class ProgressBars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = {"train": train_steps, "valid": valid_steps}
            self.bar = None
            self.phase = None
            self.epoch = 0
            self.shown = 0.0

        def _open(self, phase: str, desc: str):
            self._close()
            self.phase = phase
            self.bar = progress.bar(self.steps[phase], desc, unit="step", leave=False)
            self.shown = 0.0

        def _close(self):
            if self.bar is not None:
                if self.bar.n:
                    self.steps[self.phase] = self.bar.n  # the real count (unreadable images drop out)
                self.bar.close()
                self.bar = None

        def _step(self, logs):
            if self.bar is None:
                return
            self.bar.update(1)
            now = time.monotonic()
            if logs and now - self.shown >= 1.0:  # reading the logs syncs with the device: not every step
                self.shown = now
                self.bar.set_postfix("  ".join(f"{k} {float(logs[k]):.4f}" for k in ("loss", "accuracy") if k in logs))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self._open("train", f"epoch {epoch + 1}/{epochs}")

        def on_train_batch_end(self, batch, logs=None):
            self._step(logs)

        def on_test_begin(self, logs=None):
            self._open("valid", f"epoch {self.epoch + 1}/{epochs} validation")

        def on_test_batch_end(self, batch, logs=None):
            self._step(logs)

        def on_epoch_end(self, epoch, logs=None):
            self._close()  # before RunKeeper prints the epoch line

        def on_train_end(self, logs=None):
            self._close()

    return ProgressBars()


# ---------------------------------------------------------------- run


def _versions() -> dict:
    import keras
    import tensorflow as tf

    from edge_dfd import __version__

    return {"edge_dfd": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}


def _check_resume(run_dir: Path, cfg: TrainConfig) -> None:
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise EdgeDFDError(f"{run_dir}: nothing to resume (no config.json); start the run without --resume")
    try:
        old = json.loads(cfg_path.read_text())["config"]
    except (ValueError, KeyError, TypeError):
        raise EdgeDFDError(f"{cfg_path}: not a valid edge-dfd run config; cannot resume") from None
    if old.get("status") == "complete" or (run_dir / "model.keras").exists():
        raise EdgeDFDError(f"{run_dir}: this run already finished (model.keras exists); nothing to resume")
    new = asdict(cfg)
    new["data"] = str(Path(cfg.data).resolve())
    diff = [f"{k} {old.get(k)!r} -> {new[k]!r}" for k in RESUME_KEYS if old.get(k) != new[k]]
    if diff:
        raise EdgeDFDError(f"{run_dir}: --resume must use the run's settings; changed: {', '.join(diff)}")


def _write_config(run_dir: Path, cfg: TrainConfig, info: dict, status: str, results: dict | None = None) -> None:
    conf = asdict(cfg)
    conf["data"] = str(Path(cfg.data).resolve())
    conf["out"] = str(run_dir.resolve())
    conf["status"] = status
    atomic_write_json(run_dir / "config.json", {"config": conf, **info, "results": results})


def train(config) -> RunResult:
    """Train per ``config`` (TrainConfig or dict) and write the run folder. See the module docstring."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    cfg.validate()
    t_start = time.perf_counter()
    run_dir = Path(cfg.out)
    data_root = Path(cfg.data).resolve()

    # 1. validate everything before any work
    ds_records = dataset.load_dataset(data_root)
    if "train" not in ds_records:
        raise EdgeDFDError(f"{data_root}: has no 'train' split; training needs one")
    from edge_dfd.models import ARCHS, arch_info

    if cfg.arch not in ARCHS:
        from edge_dfd.models import build_model

        build_model(cfg.arch)  # raises the one-line "unknown arch" error
    if cfg.img_size < ARCHS[cfg.arch].min_size:
        raise EdgeDFDError(f"--img-size {cfg.img_size} is too small for {cfg.arch} "
                           f"(expected {ARCHS[cfg.arch].min_size}..4096)")
    # the tf.distribute strategy (if any) must exist before any other TensorFlow op: create it now
    from edge_dfd import distribute

    dist = distribute.setup(cfg.distribute)
    out_dir = run_dir  # the run folder: only the chief writes it; other workers write a temporary folder
    if not dist.is_chief:
        run_dir = dist.work_dir(out_dir, cfg.resume)
    elif cfg.resume:
        _check_resume(run_dir, cfg)
    elif (run_dir / "model.keras").exists() or (run_dir / "checkpoints").exists():
        raise EdgeDFDError(f"{run_dir}: already holds a training run; use --resume to continue it or another --out")
    ensure_writable_dir(run_dir)
    log(f"data {data_root} ({dataset.detect_layout(data_root)} layout)\n{dataset.summarize(ds_records)}")
    log(dist.describe(cfg.batch_size))

    keras = require("keras", "training")
    keras.utils.set_random_seed(cfg.seed)
    info = {
        "data_layout": dataset.detect_layout(data_root),
        "split_sources": {s: str(dataset.split_source(data_root, s)) for s in ds_records},
        "valid_csv": str(dataset.split_source(data_root, "valid")) if "valid" in ds_records else None,
        "counts": {s: dataset.class_counts(r) for s, r in ds_records.items()},
        "arch_info": arch_info(cfg.arch),
        "augmentation": {
            "layers": None if not cfg.augment else
            "RandomRotation, RandomFlip(horizontal), RandomShear, RandomZoom, RandomTranslation (fill nearest)",
            "rotation": AUG_ROTATION, "shift": AUG_SHIFT, "zoom": AUG_ZOOM, "shear": AUG_SHEAR,
            "jpeg_quality": JPEG_QUALITY if cfg.jpeg_aug else None,
            "blur_sigma": BLUR_SIGMA if cfg.blur_aug else None,
        },
        "monitor": MONITOR if "valid" in ds_records else "loss",
        "versions": _versions(),
        "command": shlex.join(sys.argv),
        "distribute": dist.to_dict(cfg.batch_size),
    }
    _write_config(run_dir, cfg, info, "running")

    # 2. pipelines and model
    skips = SkipLog()
    train_ds = dist.distribute_dataset(  # --batch-size per replica; each worker reads its own shard
        lambda bs, shard: make_dataset(ds_records["train"], cfg, skips, True, bs, shard), cfg.batch_size)
    valid_ds = make_dataset(ds_records["valid"], cfg, skips, training=False) if "valid" in ds_records else None
    valid_fit = valid_ds if valid_ds is None or dist.strategy is None else dist.distribute_dataset(
        lambda bs, shard: make_dataset(ds_records["valid"], cfg, skips, False, bs, shard), cfg.batch_size)
    with dist.scope():
        model = build_and_compile(cfg)
    size = cfg.img_size
    distribute.prepare_model(dist, model, (np.zeros((1, size, size, 3), np.float32), np.zeros((1,), np.float32)))

    # 3. fit (BackupAndRestore = the --resume state; RunKeeper = history, best checkpoint, early stop).
    # RunKeeper runs first at epoch end: a kill between the two re-runs that epoch instead of leaving a gap.
    monitor = info["monitor"]
    backup = distribute.backup_and_restore(dist, out_dir / "checkpoints" / "backup",  # every worker restores
                                           run_dir / "checkpoints" / "backup", double_checkpoint=True)
    keeper = _run_keeper(run_dir, cfg, monitor, skips)
    per_step = dist.global_batch(cfg.batch_size)
    bars = _progress_bars(cfg.epochs, -(-len(ds_records["train"]) // per_step),
                          -(-len(ds_records["valid"]) // per_step) if valid_ds is not None else None)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    with warnings.catch_warnings():
        # tf.data after .filter() has unknown length: Keras warns about it on the first epoch; harmless.
        warnings.filterwarnings("ignore", message=".*(ran out of data|shuffle=True).*")
        model.fit(train_ds, validation_data=valid_fit, epochs=cfg.epochs, callbacks=[bars, keeper, backup],
                  verbose=0)
    distribute.dump_weights(dist, model)
    rows = read_history(run_dir / "history.csv")
    if not rows:
        raise EdgeDFDError(f"{run_dir}: no epoch completed (every training image unreadable?)")
    if not dist.is_chief:  # the chief evaluates and writes the run folder; drop this worker's temporary one
        dist.cleanup()
        best = min(rows, key=lambda r: r.get(monitor, np.inf))
        log(f"{dist.task} done after {len(rows)} epoch(s); the chief writes {out_dir / 'model.keras'}")
        return RunResult(out_dir, out_dir / "model.keras", len(rows), int(best["epoch"]), float("nan"), None, None,
                         dict(skips.items), time.perf_counter() - t_start)

    # 4. final model = best epoch; threshold chosen on valid; report on test
    from edge_dfd.kerasio import load_keras
    from edge_dfd.meta import ModelMeta, write_meta
    from edge_dfd.metrics import binary_report, choose_threshold
    from edge_dfd.report import plot_curves, write_report

    best_row = min(rows, key=lambda r: r.get(monitor, np.inf))
    best_path = run_dir / "checkpoints" / "best.keras"
    final = load_keras(best_path) if best_path.is_file() else model
    threshold, source, valid_rep = 0.5, "default 0.5 (no valid split)", None
    if valid_ds is not None:
        yv, pv = predict_dataset(final, valid_ds)
        threshold = choose_threshold(yv, pv)
        source = f"valid split, max balanced accuracy ({info['valid_csv']})"
        valid_rep = binary_report(yv, pv, threshold)
    test_rep = None
    if "test" in ds_records:
        yt, pt = predict_dataset(final, make_dataset(ds_records["test"], cfg, skips, training=False))
        title = f"{cfg.arch} on test ({len(yt)} images, threshold {threshold:.4f} from valid)"
        test_rep = write_report(run_dir, yt, pt, threshold, title=title, extra={"split": "test"})
    skips.report_new()
    plot_curves({k: [r.get(k, np.nan) for r in rows] for k in rows[-1]}, run_dir / "curves.png",
                title=f"{cfg.arch} training curves")

    summary = {
        "epochs_run": len(rows),
        "best_epoch": int(best_row["epoch"]),
        "threshold": threshold,
        "threshold_source": source,
        "valid": _brief(valid_rep),
        "test": _brief(test_rep),
        "skipped_images": dict(skips.items),
    }
    meta = ModelMeta(
        arch=cfg.arch,
        input_size=cfg.img_size,
        threshold=float(threshold),
        threshold_source=source,
        training={
            "data": str(data_root),
            "valid_csv": info["valid_csv"],
            "split_sources": info["split_sources"],
            "counts": info["counts"],
            "epochs": cfg.epochs,
            "epochs_run": len(rows),
            "best_epoch": int(best_row["epoch"]),
            "batch_size": cfg.batch_size,
            "distribute": info["distribute"],
            "lr": cfg.lr,
            "seed": cfg.seed,
            "weights": cfg.weights,
            "freeze_base": cfg.freeze_base,
            "augment": cfg.augment,
            "jpeg_aug": cfg.jpeg_aug,
            "blur_aug": cfg.blur_aug,
            "valid": _brief(valid_rep),
            "test": _brief(test_rep),
        },
        extra={"scaling": info["arch_info"]["scaling"], "tensorflow": info["versions"]["tensorflow"]},
    )
    model_path = run_dir / "model.keras"
    with atomic_path(model_path) as tmp:
        final.save(tmp)
        write_meta(tmp, meta)
    _write_config(run_dir, cfg, info, "complete", summary)
    seconds = time.perf_counter() - t_start
    log(f"done in {seconds:.0f}s: {model_path} (best epoch {summary['best_epoch']}, threshold {threshold:.4f})"
        + (f"; test accuracy {test_rep['accuracy']:.4f}, AUC {_fmt(test_rep['auc'])}" if test_rep else ""))
    return RunResult(run_dir, model_path, len(rows), int(best_row["epoch"]), float(threshold), valid_rep, test_rep,
                     dict(skips.items), seconds)


def _brief(rep: dict | None) -> dict | None:
    if rep is None:
        return None
    return {k: rep.get(k) for k in ("n", "accuracy", "balanced_accuracy", "auc", "ap", "eer", "precision", "recall",
                                     "f1", "confusion_matrix")}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"
