"""``edge-dfd train``: train a detector and write a run folder (see edge_dfd.train)."""

from __future__ import annotations

import click

from edge_dfd.cli.options import options_from
from edge_dfd.train.config import TrainConfig  # light: no TensorFlow import (keras is lazy)


@click.command("train")
@options_from(TrainConfig)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar within each epoch (drawn on stderr when stderr is a terminal; otherwise one "
                   "line every ~10 s). The per-epoch line stays.")
@click.pass_context
def cmd(ctx, as_json, quiet, **settings):
    """Train a detector (output P(fake)) and write model.keras, history.csv, curves.png,
    confusion_matrix.png, report.json/.txt (test split) and config.json into --out.
    Each epoch's steps show as a progress bar (rate, ETA) on stderr.

    --recipe deploy trains the bundled default's recipe (see docs/train.md), e.g.
    edge-dfd train --recipe deploy --init default --data DATA --out runs/deploy"""
    import json

    from click.core import ParameterSource

    from edge_dfd.core import progress
    from edge_dfd.train import train

    recipe = settings["recipe"]
    given = {p for p in ("weights", "freeze_base", "augment", "jpeg_aug", "blur_aug", "init", "steps_per_epoch")
             if ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE}
    study_only = sorted(given & {"weights", "freeze_base", "augment", "jpeg_aug", "blur_aug"})
    if recipe == "deploy" and study_only:
        opts = ", ".join("--" + p.replace("_", "-") for p in study_only)
        raise click.UsageError(f"{opts}: study-recipe option(s); --recipe deploy uses --init and its own "
                               f"deployment augmentation")
    if recipe == "study" and given & {"init", "steps_per_epoch"}:
        opts = ", ".join("--" + p.replace("_", "-") for p in sorted(given & {"init", "steps_per_epoch"}))
        raise click.UsageError(f"{opts}: deploy-recipe option(s); add --recipe deploy (the study recipe uses "
                               f"--weights)")
    progress.set_quiet(quiet)
    res = train(TrainConfig(**{**settings, "data": list(settings["data"])}))
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        click.echo(res.model_path)
