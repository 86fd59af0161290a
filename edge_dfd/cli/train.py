"""``edge-dfd train``: train a detector and write a run folder (see edge_dfd.train)."""

from __future__ import annotations

import click

from edge_dfd.models import (  # light: no TensorFlow import (keras is imported lazily)
    ARCHS,
    DEFAULT_INPUT_SIZE,
    MAX_INPUT_SIZE,
    MIN_INPUT_SIZE,
)


@click.command("train")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset folder: 140k layout ({train,valid,test}.csv) or DIR/<split>/{real,fake}/.")
@click.option("--arch", default="cnn", show_default=True, type=click.Choice(list(ARCHS)),
              help="Architecture (see the README's train section).")
@click.option("--epochs", default=7, show_default=True, type=click.IntRange(min=1), help="Maximum epochs.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Batch per replica; with --distribute the global batch is this x replicas.")
@click.option("--img-size", default=DEFAULT_INPUT_SIZE, show_default=True,
              type=click.IntRange(MIN_INPUT_SIZE, MAX_INPUT_SIZE),
              help="Square input size in pixels.")
@click.option("--weights", default="none", show_default=True,
              help="none, imagenet or a local weights file. imagenet is offline for "
                   + ", ".join(a for a, s in ARCHS.items() if s.pretrained == "bundled")
                   + " (the weights ship in the source tree) and a keras.applications download (needs internet) "
                   "for " + ", ".join(a for a, s in ARCHS.items() if s.pretrained == "imagenet-download") + ".")
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
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Adam learning rate.")
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
def cmd(data_dir, arch, epochs, batch_size, img_size, weights, freeze_base, seed, out_dir, resume, augment,
        jpeg_aug, blur_aug, lr, patience, distribute, as_json, quiet):
    """Train a detector (output P(fake)) and write model.keras, history.csv, curves.png,
    confusion_matrix.png, report.json/.txt (test split) and config.json into --out.
    Each epoch's steps show as a progress bar (rate, ETA) on stderr."""
    import json

    from edge_dfd import progress
    from edge_dfd.train import TrainConfig, train

    progress.set_quiet(quiet)
    res = train(TrainConfig(data=data_dir, out=out_dir, arch=arch, epochs=epochs, batch_size=batch_size,
                            img_size=img_size, weights=weights, freeze_base=freeze_base, seed=seed, resume=resume,
                            augment=augment, jpeg_aug=jpeg_aug, blur_aug=blur_aug, lr=lr, patience=patience,
                            distribute=distribute))
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        click.echo(res.model_path)
