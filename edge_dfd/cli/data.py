"""``edge-dfd data DIR``: validate a dataset folder and print its per-split, per-class counts."""

from __future__ import annotations

import json

import click


@click.command("data")
@click.argument("data_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON on stdout.")
def cmd(data_dir, as_json):
    """Validate DIR (140k CSV layout or DIR/<split>/{real,fake}/) and print per-split counts.

    The first problem found (bad CSV header, labels, missing or escaping image paths, ...) is reported in
    one line naming the file and rows, and the exit code is then 1; fix it and run again to find the next.
    """
    from edge_dfd.images import data

    ds = data.load_dataset(data_dir)
    if as_json:
        out = {
            "data": str(click.format_filename(data_dir)),
            "layout": data.detect_layout(data_dir),
            "splits": {s: {**data.class_counts(r), "total": len(r)} for s, r in ds.items()},
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"{data_dir}: {data.detect_layout(data_dir)} layout, valid")
        click.echo(data.summarize(ds))
