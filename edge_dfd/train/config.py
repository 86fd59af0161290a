"""Training settings and result: ``TrainConfig`` (validated), ``RunResult``, the augmentation constants."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.core.meta import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from edge_dfd.core.options import setting
from edge_dfd.modelling.models import ARCHS, DEFAULT_INPUT_SIZE

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
DISTRIBUTE = ("none", "mirrored", "multi-worker")  # edge_dfd.train.distribute
# what arch / img_size / lr left None become, per recipe; deploy's lr from a trained detector (--init default /
# PATH) is FINETUNE_LR: fine-tuned 10x gentler than from imagenet
RECIPE_DEFAULTS = {"study": {"arch": "cnn", "img_size": DEFAULT_INPUT_SIZE, "lr": 1e-3},
                   "deploy": {"arch": "efficientnet_lite0", "img_size": 224, "lr": 1e-4}}
FINETUNE_LR = 1e-5


def _per_recipe(key: str) -> str:
    return ", ".join(f"{v[key]} ({r})" for r, v in RECIPE_DEFAULTS.items())


def _lr(v: float) -> str:
    return f"{v:.0e}".replace("e-0", "e-")  # 1e-3


def _weights_help() -> str:
    from edge_dfd.modelling.models import ARCHS

    def names(kind):
        return ", ".join(a for a, s in ARCHS.items() if s.pretrained == kind)

    return ("Study recipe: none, imagenet or a local weights file. imagenet is offline for " + names("bundled")
            + " (the weights ship in the source tree) and a keras.applications download (needs internet) for "
            + names("imagenet-download") + ".")


@dataclass
class TrainConfig:
    """``data`` is one dataset folder or a list of them (sampled equally by the deploy recipe, concatenated by
    study). ``arch`` / ``img_size`` / ``lr`` left None take the recipe's defaults (``RECIPE_DEFAULTS``).
    Every field is an ``edge-dfd train`` option (``edge_dfd.core.options.setting``: its default, help and choices)."""

    data: str | list = setting(required=True, multiple=True, kind="dir",
                               help="Dataset folder: 140k layout ({train,valid,test}.csv) or DIR/<split>/{real,fake}/. "
                                    "Repeatable: --recipe deploy samples the folders equally, study concatenates them.")
    out: str = setting(required=True, kind="dir", help="Run folder to write.")
    recipe: str = setting("study", choices=RECIPES,
                          help="study: the report's models (cnn, xception, inception_resnet_v2, ...) with its "
                               "augmentation. deploy: the bundled default's recipe (single-pass efficientnet_lite0 or "
                               "mobilenet_v2, multi-depth head, deployment augmentation with live-style face crops, "
                               "epoch and threshold chosen on valid as-is and perturbed); see docs/train.md.")
    arch: str | None = setting(None, choices=ARCHS,
                               help="Architecture (see the README's train section). Default: " + _per_recipe("arch")
                                    + ".")
    epochs: int = setting(7, range=(1, None), help="Maximum epochs.")
    batch_size: int = setting(32, range=(1, None),
                              help="Batch per replica; with --distribute the global batch is this x replicas.")
    img_size: int | None = setting(None, range=(MIN_INPUT_SIZE, MAX_INPUT_SIZE), kind="int",
                                   help="Square input size in pixels. Default: " + _per_recipe("img_size") + ".")
    weights: str = setting("none", help=_weights_help())
    init: str | None = setting(None, help="Deploy recipe: starting weights - default (fine-tune the bundled detector), "
                                          "imagenet (bundled ported weights; offline) or a .keras file of the same "
                                          "architecture and input size. Default: imagenet.")
    steps_per_epoch: int | None = setting(None, range=(1, None), kind="int",
                                          help="Deploy recipe: batches per epoch (default: one pass over the train "
                                               "images).")
    eval_sample: int | None = setting(None, range=(2, None), kind="int", metavar="N",
                                      help="Valid and test: a stratified, seeded sample of N images of each --data "
                                           "folder (default: all; a CPU run on the full 140k set spends most of its "
                                           "time on 20k valid + 20k test images).")

    freeze_base: bool = setting(False, flag="--freeze-base/--no-freeze-base",
                                help="Freeze the pretrained base (train the head only).")
    seed: int = setting(0)
    resume: bool = setting(False, flag=True,
                           help="Continue an interrupted run in --out from its last complete epoch.")
    augment: bool = setting(True, flag="--augment/--no-augment",
                            help="The study's rotation/flip/shear/zoom/shift augmentation (input pipeline only).")
    jpeg_aug: bool = setting(False, flag="--jpeg-aug/--no-jpeg-aug",
                             help=f"Random JPEG re-encoding (quality {JPEG_QUALITY[0]}-{JPEG_QUALITY[1]}) of half the "
                                  "training images.")
    blur_aug: bool = setting(False, flag="--blur-aug/--no-blur-aug",
                             help="Random Gaussian blur of half the training images.")
    lr: float | None = setting(None, range=(0, None), min_open=True, kind="float",
                               help=f"Peak learning rate. Default: {_lr(RECIPE_DEFAULTS['study']['lr'])} (study, Adam); "
                                    f"deploy (AdamW with warm-up and cosine decay): "
                                    f"{_lr(RECIPE_DEFAULTS['deploy']['lr'])} from --init imagenet, {_lr(FINETUNE_LR)} from a "
                                    "trained detector (--init default / PATH).")
    patience: int = setting(3, range=(0, None), help="Early-stopping patience on val_loss (0 = off).")
    distribute: str = setting("none", choices=DISTRIBUTE,
                              help="tf.distribute: mirrored = all local GPUs; multi-worker = the cluster in $TF_CONFIG "
                                   "(README: distributed).")  # batch_size is per replica

    def __post_init__(self):
        deploy = self.recipe == "deploy"
        fill = RECIPE_DEFAULTS.get(self.recipe, RECIPE_DEFAULTS["study"])
        if self.arch is None:
            self.arch = fill["arch"]
        if self.img_size is None:
            self.img_size = fill["img_size"]
        if deploy and self.init is None:
            self.init = "imagenet"
        if self.lr is None:  # deploy: a trained detector (--init default / PATH) is fine-tuned 10x gentler
            self.lr = fill["lr"] if not deploy or self.init == "imagenet" else FINETUNE_LR
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
        if self.distribute not in DISTRIBUTE:
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

