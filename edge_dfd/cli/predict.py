"""``edge-dfd predict``: P(fake) and a verdict for image files, folders, globs or a 140k CSV."""

from __future__ import annotations

import click

from edge_dfd.cli.escalate import escalate_options
from edge_dfd.cli.options import options_from
from edge_dfd.runtime.options import PredictOptions


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@options_from(PredictOptions)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar (it is drawn on stderr when stderr is a terminal; otherwise one line every ~10 s).")
@escalate_options
def cmd(inputs, model, format, threads, batch_size, provider, out, as_json, quiet, escalate, escalate_fraction,
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

    backend = load_model(model, format=format, threads=threads or os.cpu_count(), provider=provider)
    from edge_dfd.cli.escalate import wrap  # --escalate: a cascade, rows get a "stage" column

    backend = wrap(backend, escalate, escalate_fraction, calib_data, threads or os.cpu_count())
    run_predict(backend, inputs, out=out, batch_size=batch_size, as_json=as_json)
