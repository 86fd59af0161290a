"""Training settings and result: ``TrainConfig`` (validated), ``RunResult``, the augmentation constants."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.core.meta import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from edge_dfd.modelling.models import DEFAULT_INPUT_SIZE

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
               "jpeg_aug", "blur_aug", "lr", "recipe", "init", "steps_per_epoch", "eval_sample")
RECIPES = ("study", "deploy")  # study: the report's models and augmentation; deploy: the bundled default's recipe


@dataclass
class TrainConfig:
    """``data`` is one dataset folder or a list of them (sampled equally by the deploy recipe, concatenated by
    study). ``arch`` / ``img_size`` / ``lr`` left None take the recipe's defaults (study: cnn, 256, 1e-3;
    deploy: efficientnet_lite0, 224, 1e-4 from imagenet and 1e-5 from a trained detector)."""

    data: str | list
    out: str
    arch: str | None = None
    epochs: int = 7
    batch_size: int = 32
    img_size: int | None = None
    weights: str = "none"
    freeze_base: bool = False
    seed: int = 0
    resume: bool = False
    augment: bool = True
    jpeg_aug: bool = False
    blur_aug: bool = False
    lr: float | None = None
    patience: int = 3  # early stopping on val_loss; 0 disables it
    distribute: str = "none"  # none | mirrored | multi-worker (edge_dfd.train.distribute); batch_size is per replica
    recipe: str = "study"
    init: str | None = None  # deploy: default | imagenet | a .keras file (None: imagenet)
    steps_per_epoch: int | None = None  # deploy: batches per epoch (None: one pass over the train images)
    eval_sample: int | None = None  # valid and test: a stratified sample of this many images each (None: all)

    def __post_init__(self):
        deploy = self.recipe == "deploy"
        if self.arch is None:
            self.arch = "efficientnet_lite0" if deploy else "cnn"
        if self.img_size is None:
            self.img_size = 224 if deploy else DEFAULT_INPUT_SIZE
        if deploy and self.init is None:
            self.init = "imagenet"
        if self.lr is None:  # deploy: a trained detector (--init default / PATH) is fine-tuned 10x gentler
            self.lr = (1e-4 if self.init == "imagenet" else 1e-5) if deploy else 1e-3
        if isinstance(self.data, (list, tuple)):
            self.data = [str(d) for d in self.data] if len(self.data) != 1 else str(self.data[0])

    @property
    def data_dirs(self) -> list[Path]:
        return [Path(d) for d in (self.data if isinstance(self.data, list) else [self.data])]

    def resolved_data(self) -> str | list[str]:
        dirs = [str(d.resolve()) for d in self.data_dirs]
        return dirs[0] if len(dirs) == 1 else dirs

    def validate(self) -> None:
        bad = []
        if self.recipe not in RECIPES:
            bad.append(f"recipe={self.recipe!r} (expected {' or '.join(RECIPES)})")
        if self.eval_sample is not None and self.eval_sample < 2:
            bad.append(f"eval_sample={self.eval_sample} (expected >= 2: a real and a fake image)")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            bad.append(f"steps_per_epoch={self.steps_per_epoch} (expected >= 1)")
        if self.recipe != "deploy" and (self.init is not None or self.steps_per_epoch is not None):
            bad.append("init / steps_per_epoch belong to the deploy recipe (the study recipe uses --weights)")
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

