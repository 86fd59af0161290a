"""``edge-dfd evaluate``: accuracy, AUC, AP, EER, per-class report and confusion matrix for any model file."""

from __future__ import annotations

import click


@click.command("evaluate")
@click.argument("model", metavar="MODEL")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset folder (140k CSV layout or DIR/<split>/{real,fake}/).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for report.json, report.txt, confusion_matrix.png [default: eval/<model>_<split>].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Inference threads (default: all cores).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--provider", default=None, help="ONNX execution provider (default CPUExecutionProvider).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def cmd(model, data_dir, split, out_dir, threads, batch_size, provider, as_json):
    """Evaluate MODEL (.keras, .tflite, .onnx or 'default') on one split of a dataset.

    The positive class is 'fake'; precision / recall / F1 at the top level are the fake class's.
    """
    import json
    import os

    from edge_dfd.evaluate import evaluate
    from edge_dfd.metrics import report_text

    rep = evaluate(model, data_dir, split, out_dir=out_dir, threads=threads or os.cpu_count(),
                   provider=provider, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
    else:
        click.echo(report_text(rep, rep["title"]), nl=False)
    click.echo(f"wrote {rep['out_dir']}/report.json, report.txt, confusion_matrix.png", err=True)
