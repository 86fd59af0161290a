"""The run keeper: the run folder's state across epochs and across --resume.

``read_history`` / ``history_csv`` (history.csv, one row per epoch), ``run_keeper`` (the Keras callback that owns
history.csv, checkpoints/best.keras, early stopping and the epoch line), ``progress_bars`` (steps of each epoch),
``check_resume`` (a --resume uses the interrupted run's settings), ``write_config`` (config.json) and ``versions``.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, require
from edge_dfd.core.fsutil import atomic_path, atomic_write_json, atomic_write_text
from edge_dfd.core.progress import log
from edge_dfd.core.util import read_csv_rows
from edge_dfd.train.config import RESUME_KEYS, TrainConfig
from edge_dfd.train.pipeline import SkipLog


def scalar(value) -> float:
    """One float from a Keras log value: a Python/NumPy scalar, or (under a distribution strategy) an array with
    one value per local replica, whose mean it returns (metrics are already synced: every replica holds the same)."""
    a = np.asarray(value, dtype=np.float64)
    return float(a.mean()) if a.size else float("nan")


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
            for row in read_csv_rows(path)]


def history_csv(rows: list[dict]) -> str:
    keys = ["epoch"] + sorted({k for r in rows for k in r} - {"epoch", "seconds"}) + ["seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (r[k] if k == "epoch" else f"{r[k]:.6g}") for k in keys if k in r})
    return buf.getvalue()


def run_keeper(run_dir: Path, epochs: int, patience: int, monitor: str, skips: SkipLog):
    """A callback that owns history.csv, checkpoints/best.keras, early stopping and the epoch line.

    ``patience`` epochs without improvement of ``monitor`` stop the fit (0: never). It survives --resume: on the first epoch it reloads history.csv, drops rows at or after the epoch
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
            row = {"epoch": epoch + 1, **{k: scalar(v) for k, v in (logs or {}).items()},
                   "seconds": time.perf_counter() - self.t0}
            self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
            improved = self._track(row.get(monitor, np.inf))
            if improved:
                with atomic_path(run_dir / "checkpoints" / "best.keras") as tmp:
                    self.model.save(tmp)
            atomic_write_text(run_dir / "history.csv", history_csv(self.rows))
            parts = [f"{k} {row[k]:.4f}" for k in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc")
                     if k in row]
            log(f"epoch {epoch + 1}/{epochs}  " + "  ".join(parts) + f"  {row['seconds']:.1f}s"
                + ("  *best" if improved else ""))
            skips.report_new()
            if patience and self.wait >= patience:
                log(f"early stopping: {monitor} has not improved for {patience} epoch(s)")
                self.model.stop_training = True

    return RunKeeper()


def progress_bars(epochs: int, train_steps: int | None, valid_steps: int | None):
    """A callback that draws the steps of each epoch (and its validation) with ``edge_dfd.core.progress``: a bar
    with rate and ETA on a terminal, a line every ~10 s otherwise (Keras's own output is off: verbose=0).
    The step counts start as estimates (images / global batch); each epoch then uses the count of the last."""
    keras = require("keras", "training")
    from edge_dfd.core import progress

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
                self.bar.set_postfix("  ".join(f"{k} {scalar(logs[k]):.4f}" for k in ("loss", "accuracy") if k in logs))

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


def versions() -> dict:
    import keras
    import tensorflow as tf

    from edge_dfd import __version__

    return {"edge_dfd": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "platform": platform.platform()}


def check_resume(run_dir: Path, cfg: TrainConfig) -> None:
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
    new["data"] = cfg.resolved_data()
    before = {"recipe": "study"}  # what runs written before a setting existed used (absent keys: None)
    diff = [f"{k} {old.get(k, before.get(k))!r} -> {new[k]!r}" for k in RESUME_KEYS
            if old.get(k, before.get(k)) != new[k]]
    if diff:
        raise EdgeDFDError(f"{run_dir}: --resume must use the run's settings; changed: {', '.join(diff)}")


def write_config(run_dir: Path, cfg: TrainConfig, info: dict, status: str, results: dict | None = None) -> None:
    conf = asdict(cfg)
    conf["data"] = cfg.resolved_data()
    conf["out"] = str(run_dir.resolve())
    conf["status"] = status
    atomic_write_json(run_dir / "config.json", {"config": conf, **info, "results": results})
