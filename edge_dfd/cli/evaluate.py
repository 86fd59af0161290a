"""``edge-dfd evaluate``: accuracy, AUC, AP, EER, per-class report and confusion matrix for any model file."""

from __future__ import annotations

import click

from edge_dfd.bench.options import EvaluateOptions
from edge_dfd.cli.escalate import escalate_options
from edge_dfd.cli.options import options_from


@click.command("evaluate")
@click.argument("model", metavar="MODEL")
@options_from(EvaluateOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar (it is drawn on stderr when stderr is a terminal; otherwise one line every ~10 s).")
@escalate_options
def cmd(model, data, format, split, out, threads, batch_size, provider, sample, seed, as_json, quiet, escalate,
        escalate_fraction, calib_data):
    """Evaluate MODEL (.keras, .tflite, .onnx, 'default' or 'ten-pass') on one split of a dataset, or with
    no --data on the bundled evaluation sample (per-set figures in the JSON's by_set).

    The positive class is 'fake'; precision / recall / F1 at the top level are the fake class's.
    The accuracy comes with its 95% Wilson interval (accuracy_ci95). Progress goes to stderr.
    """
    if data is None and split != "test":  # the bundled evaluation sample is a test split only
        raise click.UsageError(f"--split {split} applies to --data; the bundled evaluation sample is a test split")
    import json
    import os

    from edge_dfd.bench.evaluate import evaluate
    from edge_dfd.cli.escalate import resolve
    from edge_dfd.core import progress
    from edge_dfd.core.metrics import report_text

    fraction, calib = resolve(escalate, escalate_fraction, calib_data)
    progress.set_quiet(quiet)
    rep = evaluate(model, data, split, out_dir=out, threads=threads or os.cpu_count(), format=format,
                   provider=provider, batch_size=batch_size, sample=sample, seed=seed,
                   escalate=escalate, escalate_fraction=fraction, calib_data=calib)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
    else:
        click.echo(report_text(rep, rep["title"]), nl=False)
        for name, r in (rep.get("by_set") or {}).items():  # the bundled sample's two sets
            auc = "n/a" if r["auc"] is None else f"{r['auc']:.4f}"
            click.echo(f"  {name:<12} accuracy {r['accuracy']:.4f}  ROC AUC {auc}  (n={r['n']})")
    click.echo(f"wrote {rep['out_dir']}/" + ", ".join(rep["files"]), err=True)
