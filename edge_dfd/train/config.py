"""Training settings and result: ``TrainConfig`` (validated), ``RunResult``, the augmentation constants, ``log``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_dfd.errors import EdgeDFDError
from edge_dfd.models import DEFAULT_INPUT_SIZE, MAX_INPUT_SIZE, MIN_INPUT_SIZE

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
    img_size: int = DEFAULT_INPUT_SIZE
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
        if not MIN_INPUT_SIZE <= self.img_size <= MAX_INPUT_SIZE:
            bad.append(f"img_size={self.img_size} (expected {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE})")
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

