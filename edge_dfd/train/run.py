"""The training run: ``train(config) -> RunResult`` in three steps with explicit arguments.

``prepare`` validates the data, the settings and the run folder before any work and writes config.json
("running"); ``fit`` trains on the two pipelines with the run keeper and --resume state (the run loop: it gets
the folders, epochs, patience and monitor, not the whole config); ``finish`` keeps the best epoch, chooses the
threshold on `valid`, reports on `test` and writes model.keras with its metadata and config.json ("complete").
"""

from __future__ import annotations

import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, require
from edge_dfd.core.fsutil import atomic_path, ensure_writable_dir
from edge_dfd.core.progress import log
from edge_dfd.images import data as dataset
from edge_dfd.train.config import (
    AUG_ROTATION,
    AUG_SHEAR,
    AUG_SHIFT,
    AUG_ZOOM,
    BLUR_SIGMA,
    JPEG_QUALITY,
    MONITOR,
    RunResult,
    TrainConfig,
)
from edge_dfd.train.keeper import check_resume, progress_bars, read_history, run_keeper, versions, write_config
from edge_dfd.train.pipeline import SkipLog, make_dataset, predict_dataset


def build_and_compile(cfg: TrainConfig):
    """Build and compile the model. Everything that creates variables happens here, so a
    ``tf.distribute`` strategy can wrap this one call (``with strategy.scope(): build_and_compile(cfg)``)."""
    keras = require("keras", "training")
    from edge_dfd.modelling.models import build_model

    model = build_model(cfg.arch, cfg.img_size, cfg.weights, cfg.freeze_base)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=cfg.lr),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model



@dataclass
class Prepared:
    """What ``prepare`` checked and set up: the run folder this process writes (``run_dir``; a temporary one on
    a non-chief worker), the run folder (``out_dir``), the data, the tf.distribute setup and config.json's info."""

    run_dir: Path
    out_dir: Path
    data_root: Path
    records: dict
    dist: object
    info: dict
    dirs: list = None
    per_dir: list = None


def prepare(cfg: TrainConfig) -> Prepared:
    """Validate everything before any work, set up tf.distribute and the seed, write config.json ("running")."""
    run_dir = Path(cfg.out)
    dirs = [d.resolve() for d in cfg.data_dirs]
    per_dir = [dataset.load_dataset(d) for d in dirs]
    for d, recs in zip(dirs, per_dir):
        if "train" not in recs:
            raise EdgeDFDError(f"{d}: has no 'train' split; training needs one")
        for split in ("train", "valid"):
            if split in recs:
                check_classes(dataset.split_source(d, split), split, recs[split])
    if cfg.eval_sample:  # valid and test: a stratified sample of each folder's split (seeded)
        per_dir = [{s: (dataset.stratified_sample(r, cfg.eval_sample, cfg.seed) if s != "train" else r)
                    for s, r in recs.items()} for recs in per_dir]
    data_root = dirs[0]
    ds_records = {s: [r for recs in per_dir for r in recs.get(s, [])] for s in dataset.SPLITS
                  if any(s in recs for recs in per_dir)}
    from edge_dfd.core.meta import MAX_INPUT_SIZE
    from edge_dfd.modelling.models import ARCHS, arch_info

    if cfg.recipe == "deploy":
        from edge_dfd.train.deploy import ARCHS as DEPLOY_ARCHS

        if cfg.arch not in DEPLOY_ARCHS:
            raise EdgeDFDError(f"--arch {cfg.arch}: the deploy recipe trains {' or '.join(DEPLOY_ARCHS)}")
    if cfg.arch not in ARCHS:
        from edge_dfd.modelling.models import build_model

        build_model(cfg.arch)  # raises the one-line "unknown arch" error
    if cfg.img_size < ARCHS[cfg.arch].min_size:
        raise EdgeDFDError(f"--img-size {cfg.img_size} is too small for {cfg.arch} "
                           f"(expected {ARCHS[cfg.arch].min_size}..{MAX_INPUT_SIZE})")
    # the tf.distribute strategy (if any) must exist before any other TensorFlow op: create it now
    from edge_dfd.train import distribute

    dist = distribute.setup(cfg.distribute)
    if cfg.recipe == "deploy" and cfg.init != "imagenet":  # a mismatched --init fails before any work
        from edge_dfd.modelling.kerasio import load_keras
        from edge_dfd.train.deploy import check_init, init_path

        path = init_path(cfg.init)
        check_init(load_keras(path), path, cfg.arch, cfg.img_size)
    out_dir = run_dir  # the run folder: only the chief writes it; other workers write a temporary folder
    if not dist.is_chief:
        run_dir = dist.work_dir(out_dir, cfg.resume)
    elif cfg.resume:
        check_resume(run_dir, cfg)
    elif (run_dir / "model.keras").exists() or (run_dir / "checkpoints").exists():
        raise EdgeDFDError(f"{run_dir}: already holds a training run; use --resume to continue it or another --out")
    ensure_writable_dir(run_dir)
    for d, recs in zip(dirs, per_dir):
        log(f"data {d} ({dataset.detect_layout(d)} layout)\n{dataset.summarize(recs)}")
    log(dist.describe(cfg.batch_size))

    keras = require("keras", "training")
    keras.utils.set_random_seed(cfg.seed)
    sources = [{s: str(dataset.split_source(d, s)) for s in recs} for d, recs in zip(dirs, per_dir)]
    info = {
        "data_layout": dataset.detect_layout(data_root),
        "split_sources": sources[0] if len(dirs) == 1 else {str(d): s for d, s in zip(dirs, sources)},
        "valid_csv": (sources[0].get("valid") if len(dirs) == 1 else [s.get("valid") for s in sources])
        if "valid" in ds_records else None,
        "counts": {s: dataset.class_counts(r) for s, r in ds_records.items()},
        "arch_info": arch_info(cfg.arch),
        "recipe": cfg.recipe,
        "augmentation": {"deploy": "edge_dfd.train.augment: live-style face-detector crops, zoom-out, crop, "
                                   "border, flip, rotation, rescale, blur, noise, colour, JPEG / MJPG"}
        if cfg.recipe == "deploy" else {
            "layers": None if not cfg.augment else
            "RandomRotation, RandomFlip(horizontal), RandomShear, RandomZoom, RandomTranslation (fill nearest)",
            "rotation": AUG_ROTATION, "shift": AUG_SHIFT, "zoom": AUG_ZOOM, "shear": AUG_SHEAR,
            "jpeg_quality": JPEG_QUALITY if cfg.jpeg_aug else None,
            "blur_sigma": BLUR_SIGMA if cfg.blur_aug else None,
        },
        "monitor": MONITOR if "valid" in ds_records else "loss",
        "versions": versions(),
        "command": shlex.join(sys.argv),
        "distribute": dist.to_dict(cfg.batch_size),
    }
    write_config(run_dir, cfg, info, "running")
    return Prepared(run_dir, out_dir, data_root, ds_records, dist, info, dirs, per_dir)


def check_classes(source: Path, split: str, records) -> None:
    """A train / valid split needs real and fake images: one line naming its file otherwise."""
    counts = dataset.class_counts(records)
    if not records or min(counts.values(), default=0) == 0:
        have = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no images"
        raise EdgeDFDError(f"{source}: the {split} split needs real and fake images (has {have})")


def fit(model, train_ds, valid_ds, *, dist, run_dir: Path, out_dir: Path, epochs: int, patience: int, monitor: str,
        skips: SkipLog, train_steps: int | None, valid_steps: int | None, extra_callbacks=()) -> list[dict]:
    """The run loop: ``model.fit`` with the progress bars, the run keeper (history, best checkpoint, early stop)
    and BackupAndRestore (the --resume state, under ``out_dir``, which every worker restores); returns the rows
    of history.csv. RunKeeper runs first at epoch end: a kill between the two re-runs that epoch instead of
    leaving a gap."""
    from edge_dfd.train import distribute

    backup = distribute.backup_and_restore(dist, out_dir / "checkpoints" / "backup",
                                           run_dir / "checkpoints" / "backup", double_checkpoint=True)
    keeper = run_keeper(run_dir, epochs, patience, monitor, skips)
    bars = progress_bars(epochs, train_steps, valid_steps)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    with warnings.catch_warnings():
        # tf.data after .filter() has unknown length: Keras warns about it on the first epoch; harmless.
        warnings.filterwarnings("ignore", message=".*(ran out of data|shuffle=True).*")
        model.fit(train_ds, validation_data=valid_ds, epochs=epochs, callbacks=[*extra_callbacks, bars, keeper, backup],
                  verbose=0)
    distribute.dump_weights(dist, model)
    rows = read_history(run_dir / "history.csv")
    if not rows:
        raise EdgeDFDError(f"{run_dir}: no epoch completed (every training image unreadable?)")
    return rows


def train(config) -> RunResult:
    """Train per ``config`` (TrainConfig or dict) and write the run folder. See ``edge_dfd.train``."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    cfg.validate()
    t_start = time.perf_counter()
    run = prepare(cfg)
    dist, records = run.dist, run.records

    # pipelines and model
    from edge_dfd.train import distribute

    skips = SkipLog()
    per_step = dist.global_batch(cfg.batch_size)
    if cfg.recipe == "deploy":
        train_ds, valid_ds, valid_fit, model, extra, train_steps = _deploy_parts(cfg, run, skips)
    else:
        train_ds = dist.distribute_dataset(  # --batch-size per replica; each worker reads its own shard
            lambda bs, shard: make_dataset(records["train"], cfg, skips, True, bs, shard), cfg.batch_size)
        valid_ds = make_dataset(records["valid"], cfg, skips, training=False) if "valid" in records else None
        valid_fit = valid_ds if valid_ds is None or dist.strategy is None else dist.distribute_dataset(
            lambda bs, shard: make_dataset(records["valid"], cfg, skips, False, bs, shard), cfg.batch_size)
        with dist.scope():
            model = build_and_compile(cfg)
        extra, train_steps = (), -(-len(records["train"]) // per_step)
    size = cfg.img_size
    distribute.prepare_model(dist, model, (np.zeros((1, size, size, 3), np.float32), np.zeros((1,), np.float32)))

    monitor = run.info["monitor"]
    n_valid = len(records.get("valid", ())) * (2 if cfg.recipe == "deploy" else 1)
    rows = fit(model, train_ds, valid_fit, dist=dist, run_dir=run.run_dir, out_dir=run.out_dir, epochs=cfg.epochs,
               patience=cfg.patience, monitor=monitor, skips=skips, train_steps=train_steps,
               valid_steps=-(-n_valid // per_step) if valid_ds is not None else None, extra_callbacks=extra)
    if not dist.is_chief:  # the chief evaluates and writes the run folder; drop this worker's temporary one
        dist.cleanup()
        best = min(rows, key=lambda r: r.get(monitor, np.inf))
        log(f"{dist.task} done after {len(rows)} epoch(s); the chief writes {run.out_dir / 'model.keras'}")
        return RunResult(run.out_dir, run.out_dir / "model.keras", len(rows), int(best["epoch"]), float("nan"),
                         None, None, dict(skips.items), time.perf_counter() - t_start)
    return finish(cfg, run, model, rows, valid_ds, skips, t_start)


def _deploy_parts(cfg: TrainConfig, run: Prepared, skips: SkipLog):
    """The deploy recipe's pipelines (face boxes cached first), model and per-epoch callback."""
    from edge_dfd.train import deploy
    from edge_dfd.train.boxes import cached_boxes

    dist, records = run.dist, run.records
    names = [str(dataset.split_source(d, "train")) for d in run.dirs]
    boxes = [cached_boxes(run.run_dir, d.name, recs["train"], skips=skips) for d, recs in zip(run.dirs, run.per_dir)]
    sets = deploy.TrainSets(names, [recs["train"] for recs in run.per_dir], boxes, skips)
    skips.report_new()
    per_step = dist.global_batch(cfg.batch_size)
    steps = cfg.steps_per_epoch or max(1, -(-len(sets) // per_step))
    state = deploy.EpochState(per_step)
    size = cfg.img_size
    log(f"deploy recipe: {cfg.arch} single pass at {size} px from {cfg.init}; {steps} steps of {per_step} images "
        f"per epoch, the {len(sets.paths)} data set(s) sampled equally")
    train_ds = dist.distribute_dataset(
        lambda bs, shard: deploy.train_dataset(sets, state, seed=cfg.seed, size=size, steps=steps,
                                               global_batch=per_step, batch_size=bs, skips=skips, shard=shard),
        cfg.batch_size)
    valid_ds = valid_fit = None
    if "valid" in records:
        valid_ds = deploy.eval_dataset(records["valid"], size=size, batch_size=cfg.batch_size, skips=skips)
        valid_fit = valid_ds if dist.strategy is None else dist.distribute_dataset(
            lambda bs, shard: deploy.eval_dataset(records["valid"], size=size, batch_size=bs, skips=skips,
                                                  shard=shard), cfg.batch_size)
    with dist.scope():
        model = deploy.compile_model(deploy.build_model(cfg.arch, size, cfg.init), cfg.lr, cfg.epochs * steps,
                                     steps // 3)
    return train_ds, valid_ds, valid_fit, model, [deploy.epoch_callback(state)], steps


def finish(cfg: TrainConfig, run: Prepared, model, rows: list[dict], valid_ds, skips: SkipLog,
           t_start: float) -> RunResult:
    """Final model = best epoch; threshold chosen on valid; report on test; model.keras + config.json written."""
    from edge_dfd.core.meta import ModelMeta, write_meta
    from edge_dfd.core.metrics import binary_report, choose_threshold
    from edge_dfd.core.report import plot_curves, write_report
    from edge_dfd.modelling.kerasio import load_keras

    run_dir, info, ds_records, monitor = run.run_dir, run.info, run.records, run.info["monitor"]
    best_row = min(rows, key=lambda r: r.get(monitor, np.inf))
    best_path = run_dir / "checkpoints" / "best.keras"
    final = load_keras(best_path) if best_path.is_file() else model
    threshold, source, valid_rep = 0.5, "default 0.5 (no valid split)", None
    if valid_ds is not None:
        yv, pv = predict_dataset(final, valid_ds)
        threshold = choose_threshold(yv, pv)
        source = f"valid split, max balanced accuracy ({info['valid_csv']})"
        if cfg.recipe == "deploy":
            from edge_dfd.train.deploy import THRESHOLD_SOURCE

            source = f"{THRESHOLD_SOURCE} ({info['valid_csv']})"
        valid_rep = binary_report(yv, pv, threshold)
    test_rep = None
    if "test" in ds_records:
        if cfg.recipe == "deploy":
            from edge_dfd.train.deploy import eval_dataset

            test_ds = eval_dataset(ds_records["test"], size=cfg.img_size, batch_size=cfg.batch_size, skips=skips,
                                   perturbed=False)
        else:
            test_ds = make_dataset(ds_records["test"], cfg, skips, training=False)
        yt, pt = predict_dataset(final, test_ds)
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
        "skipped_count": len(skips.items),
        "skipped_images": dict(skips.items),
    }
    from edge_dfd.train.deploy import training_crop

    crop_mode, crop_margin = training_crop(cfg.recipe, cfg.arch)  # how to feed the model: written once, here
    meta = ModelMeta(
        arch=f"{cfg.arch}_single_pass" if cfg.recipe == "deploy" else cfg.arch,
        input_size=cfg.img_size,
        crop_mode=crop_mode,
        crop_margin=crop_margin,
        threshold=float(threshold),
        threshold_source=source,
        training={
            "data": cfg.resolved_data(),
            "recipe": cfg.recipe,
            "init": cfg.init,
            "steps_per_epoch": cfg.steps_per_epoch,
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
    write_config(run_dir, cfg, info, "complete", summary)
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
