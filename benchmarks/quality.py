"""Reproducible recipe for the ten-pass TEACHER detector (issue 6): every approach tried, scored on test.

The bundled default is now the single-pass detector built by ``edge-dfd train --recipe deploy`` (docs/release.md)
from this teacher; this script writes the teacher into runs/teacher/ (its files are also in git history at 5cc5463).

Stages (each cached under runs/cache/, git-ignored; seeds fixed; --budget-min caps each stage's wall time)::

    python -m benchmarks.quality features   # pooled multi-tap features of every crop, both backbones (LiteRT fp32)
    python -m benchmarks.quality heads      # logistic heads on cached features: approaches table, select on valid
    python -m benchmarks.quality ship       # build the chosen Keras model, threshold on valid, export, score
                                            #   every format on test, write edge_dfd/assets/default + results

Training data: the train splits of BOTH shared sets (faces140k-sample: StyleGAN vs FFHQ, 256 px;
ffhq-tpdne-128: StyleGAN2 vs FFHQ, 128 px, upsampled to the model's 256 px input by edge_dfd.images.preprocess).
Selection uses only the valid splits; test splits are scored once per approach for the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.common import SETS
from benchmarks.quality_card import stage_card
from benchmarks.quality_features import SEED, stage_features
from benchmarks.quality_heads import stage_heads
from benchmarks.quality_ship import FINETUNE_DIR, stage_ship
from edge_dfd.core.progress import set_log_stamp
from edge_dfd.modelling.backbones import BACKBONES


def main(argv=None) -> int:
    set_log_stamp(True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["features", "heads", "ship", "card"])
    ap.add_argument("--archs", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    ap.add_argument("--budget-min", type=float, default=20.0, help="wall-time budget of this stage (minutes)")
    ap.add_argument("--approach", default=None, help="ship this approach instead of the one selected on valid")
    ap.add_argument("--finetuned", default=None, metavar="VARIANT",
                    help="ship this variant of a tools/finetune_torch.py run (e.g. mobilenet_v2+efficientnet_lite0)")
    ap.add_argument("--finetuned-dir", type=Path, default=FINETUNE_DIR, help="that run's --out folder")
    ap.add_argument("--only", default=None, metavar="FORMATS",
                    help="ship: re-convert and re-score only these formats of the staged model")
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--verify-size", type=int, default=100)
    ap.add_argument("--remeasure", action="store_true", help="card: measure the per-view latencies again")
    ap.add_argument("--keras-eval", action="store_true", help="also score the .keras model (slow on CPU)")
    args = ap.parse_args(argv)
    if args.stage in ("features", "heads", "ship"):  # a fresh clone has neither set: one line, no traceback
        common.need_data(*SETS.values(), split="train")
        common.need_data(*SETS.values(), split="test")
    if args.stage in ("heads", "ship"):
        common.need_module("sklearn")
    np.random.seed(SEED)
    {"features": stage_features, "heads": stage_heads, "ship": stage_ship, "card": stage_card}[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
