"""Training: tf.data input pipeline + Keras fit + the run folder.

``train(TrainConfig(...)) -> RunResult`` writes into ``config.out``::

    model.keras            best epoch (by val_loss), ModelMeta embedded (threshold chosen on `valid`)
    history.csv            one row per epoch, 1..N, rewritten atomically after every epoch
    curves.png             accuracy and loss, train vs validation
    confusion_matrix.png   report.json  report.txt      on the `test` split when present
    config.json            everything needed to reproduce (absolute data path, CSVs used, versions)
    checkpoints/           best.keras + backup/ (keras BackupAndRestore: the --resume state)

Pipeline: (path, y_fake) -> parallel ``tf.numpy_function(edge_dfd.images.preprocess.load_image)`` ->
[JPEG-quality aug] -> float32 -> [blur aug] -> batch -> [the study's random rotation / flip / shear /
zoom / shift as Keras preprocessing layers] -> prefetch. Augmentation runs only in the input
pipeline, never inside the saved model. Unreadable images are skipped and reported.

``distribute="mirrored"|"multi-worker"`` trains on tf.distribute (``edge_dfd.train.distribute``): batch_size is per
replica, each worker reads its shard, and only the chief writes the run folder.

Modules: ``config`` (TrainConfig, RunResult, the augmentation constants), ``pipeline`` (the tf.data input
pipeline), ``keeper`` (history.csv, best checkpoint, early stopping, progress, --resume check, config.json),
``run`` (``train``: prepare -> fit -> finish). The names below are this package's API.
"""

from edge_dfd.train.config import (
    AUG_ROTATION,
    AUG_SHEAR,
    AUG_SHIFT,
    AUG_ZOOM,
    BLUR_SIGMA,
    JPEG_QUALITY,
    MONITOR,
    RESUME_KEYS,
    RunResult,
    TrainConfig,
)
from edge_dfd.train.keeper import check_resume, history_csv, progress_bars, read_history, run_keeper, write_config
from edge_dfd.train.pipeline import SkipLog, augmentation_layers, make_dataset, predict_dataset
from edge_dfd.train.run import build_and_compile, train

__all__ = [
    "AUG_ROTATION", "AUG_SHEAR", "AUG_SHIFT", "AUG_ZOOM", "BLUR_SIGMA", "JPEG_QUALITY", "MONITOR", "RESUME_KEYS",
    "RunResult", "SkipLog", "TrainConfig", "augmentation_layers", "build_and_compile", "check_resume",
    "history_csv", "make_dataset", "predict_dataset", "progress_bars", "read_history", "run_keeper",
    "train", "write_config",
]
