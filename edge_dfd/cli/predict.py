"""``edge-dfd predict``: P(fake) and a verdict for image files, folders, globs or a 140k CSV."""

from __future__ import annotations

import click

from edge_dfd.cli.escalate import escalate_options
from edge_dfd.core.formats import FORMATS


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--model", "-m", default="default", show_default=True,
              help="Model file (.keras/.tflite/.onnx), 'default' (the bundled single-pass detector) or 'ten-pass' (the previous ten-pass one).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
              help="Format of the bundled model to use with --model default or ten-pass (ten-pass ships "
                   "tflite-int8 only).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads (default: all cores).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--provider", default=None, help="ONNX execution provider (default CPUExecutionProvider).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Also write the results to a .csv or .jsonl file (written atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar (it is drawn on stderr when stderr is a terminal; otherwise one line every ~10 s).")
@escalate_options
def cmd(inputs, model, fmt, threads, batch_size, provider, out, as_json, quiet, escalate, escalate_fraction,
        calib_data):
    """Classify INPUT... (files, folders searched recursively, globs like 'faces/**/*.jpg', or a 140k
    split CSV such as data/test.csv). Prints P(fake), the verdict at the model's threshold and the path
    per image; unreadable images are listed on stderr and skipped. A summary and the progress
    (rate, ETA) go to stderr.
    """
    import os

    from edge_dfd.core import progress
    from edge_dfd.runtime.predict import run_predict

    progress.set_quiet(quiet)
    from edge_dfd.runtime import load_model

    backend = load_model(model, format=fmt, threads=threads or os.cpu_count(), provider=provider)
    from edge_dfd.cli.escalate import wrap  # --escalate: a cascade, rows get a "stage" column

    backend = wrap(backend, escalate, escalate_fraction, calib_data, threads or os.cpu_count())
    run_predict(backend, inputs, out=out, batch_size=batch_size, as_json=as_json)
