"""``edge-dfd train``: train a detector and write a run folder (see edge_dfd.train)."""

from __future__ import annotations

import click

from edge_dfd.core.meta import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from edge_dfd.modelling.models import ARCHS, DEFAULT_INPUT_SIZE  # light: no TensorFlow import (keras is lazy)


@click.command("train")
@click.option("--data", "data_dirs", required=True, multiple=True, type=click.Path(file_okay=False),
              help="Dataset folder: 140k layout ({train,valid,test}.csv) or DIR/<split>/{real,fake}/. Repeatable: "
                   "--recipe deploy samples the folders equally, study concatenates them.")
@click.option("--recipe", default="study", show_default=True, type=click.Choice(["study", "deploy"]),
              help="study: the report's models (cnn, xception, inception_resnet_v2, ...) with its augmentation. "
                   "deploy: the bundled default's recipe (single-pass efficientnet_lite0 or mobilenet_v2, multi-depth "
                   "head, deployment augmentation with live-style face crops, epoch and threshold chosen on valid "
                   "as-is and perturbed); see docs/train.md.")
@click.option("--arch", default=None, type=click.Choice(list(ARCHS)),
              help="Architecture (see the README's train section). Default: cnn (study), efficientnet_lite0 (deploy).")
@click.option("--epochs", default=7, show_default=True, type=click.IntRange(min=1), help="Maximum epochs.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Batch per replica; with --distribute the global batch is this x replicas.")
@click.option("--img-size", default=None, type=click.IntRange(MIN_INPUT_SIZE, MAX_INPUT_SIZE),
              help=f"Square input size in pixels. Default: {DEFAULT_INPUT_SIZE} (study), 224 (deploy).")
@click.option("--weights", default="none", show_default=True,
              help="Study recipe: none, imagenet or a local weights file. imagenet is offline for "
                   + ", ".join(a for a, s in ARCHS.items() if s.pretrained == "bundled")
                   + " (the weights ship in the source tree) and a keras.applications download (needs internet) "
                   "for " + ", ".join(a for a, s in ARCHS.items() if s.pretrained == "imagenet-download") + ".")
@click.option("--init", default=None,
              help="Deploy recipe: starting weights - default (fine-tune the bundled detector), imagenet "
                   "(bundled ported weights; offline) or a .keras file of the same architecture and input size. "
                   "Default: imagenet.")
@click.option("--steps-per-epoch", default=None, type=click.IntRange(min=1),
              help="Deploy recipe: batches per epoch (default: one pass over the train images).")
@click.option("--eval-sample", default=None, type=click.IntRange(min=2), metavar="N",
              help="Valid and test: a stratified, seeded sample of N images of each --data folder (default: all; "
                   "a CPU run on the full 140k set spends most of its time on 20k valid + 20k test images).")
@click.option("--freeze-base/--no-freeze-base", default=False, show_default=True,
              help="Freeze the pretrained base (train the head only).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last complete epoch.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="The study's rotation/flip/shear/zoom/shift augmentation (input pipeline only).")
@click.option("--jpeg-aug/--no-jpeg-aug", default=False, show_default=True,
              help="Random JPEG re-encoding (quality 40-95) of half the training images.")
@click.option("--blur-aug/--no-blur-aug", default=False, show_default=True,
              help="Random Gaussian blur of half the training images.")
@click.option("--lr", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate. Default: 1e-3 (study, Adam); deploy (AdamW with warm-up and cosine decay): "
                   "1e-4 from --init imagenet, 1e-5 from a trained detector (--init default / PATH).")
@click.option("--patience", default=3, show_default=True, type=click.IntRange(min=0),
              help="Early-stopping patience on val_loss (0 = off).")
@click.option("--distribute", default="none", show_default=True,
              type=click.Choice(["none", "mirrored", "multi-worker"]),
              help="tf.distribute: mirrored = all local GPUs; multi-worker = the cluster in $TF_CONFIG "
                   "(README: distributed).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar within each epoch (drawn on stderr when stderr is a terminal; otherwise one "
                   "line every ~10 s). The per-epoch line stays.")
@click.pass_context
def cmd(ctx, data_dirs, recipe, arch, epochs, batch_size, img_size, weights, init, steps_per_epoch, eval_sample,
        freeze_base,
        seed, out_dir, resume, augment, jpeg_aug, blur_aug, lr, patience, distribute, as_json, quiet):
    """Train a detector (output P(fake)) and write model.keras, history.csv, curves.png,
    confusion_matrix.png, report.json/.txt (test split) and config.json into --out.
    Each epoch's steps show as a progress bar (rate, ETA) on stderr.

    --recipe deploy trains the bundled default's recipe (see docs/train.md), e.g.
    edge-dfd train --recipe deploy --init default --data DATA --out runs/deploy"""
    import json

    from click.core import ParameterSource

    from edge_dfd.core import progress
    from edge_dfd.train import TrainConfig, train

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
    res = train(TrainConfig(data=list(data_dirs), out=out_dir, arch=arch, epochs=epochs, batch_size=batch_size,
                            img_size=img_size, weights=weights, freeze_base=freeze_base, seed=seed, resume=resume,
                            augment=augment, jpeg_aug=jpeg_aug, blur_aug=blur_aug, lr=lr, patience=patience,
                            distribute=distribute, recipe=recipe, init=init, steps_per_epoch=steps_per_epoch,
                            eval_sample=eval_sample))
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        click.echo(res.model_path)
