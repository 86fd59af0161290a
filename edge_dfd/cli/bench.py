"""``edge-dfd bench``: the latency / accuracy / size / memory of every format, side by side, in one run."""

from __future__ import annotations

import click

from edge_dfd.bench.options import BenchOptions
from edge_dfd.cli.escalate import escalate_options
from edge_dfd.cli.options import options_from


@click.command("bench")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@options_from(BenchOptions)
@click.option("--json", "as_json", is_flag=True, help='Print {"machine": ..., "rows": [...]} on stdout.')
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars (drawn on stderr when stderr is a terminal: one per format and phase plus the "
                   "count of formats; otherwise one line every ~10 s).")
@escalate_options
def cmd(models, data, split, sample, seed, formats, threads, warmup, runs, floor, robustness, provider, out, plot,
        as_json, quiet, escalate, escalate_fraction, calib_data):
    """Measure MODEL... (.keras: converted to --formats, cached; .tflite/.onnx: as they are; a folder: every
    model file of an `edge-dfd convert` output; 'default' / 'ten-pass': the bundled files) or, with no MODEL,
    the bundled default model in every format: size, latency, throughput, memory, and accuracy, balanced
    accuracy, ROC AUC with 95% intervals on the bundled evaluation sample (or --data), the paired difference
    against the source .keras (else the fp32 file) and the latency/accuracy Pareto front, plus the bundled
    files' release-time figures. Writes bench.json/.csv/.md and pareto.png. Exit code 3 when --floor is not
    met. Progress (rate, ETA) goes to stderr.

    --escalate MODEL adds the cascade curve (docs/cascade.md), an extra pass after the per-format one: the first
    MODEL's tflite-int8 file (else its first non-Keras file; with no MODEL the bundled default's tflite-int8) alone,
    MODEL alone and the cascade at F = 0.1, 0.2, 0.3, 0.5 (and --escalate-fraction), each measured on the same
    images: accuracy and AUC with 95% intervals against mean ms per face, in the table, bench.json ("cascade"),
    bench.md and cascade.png (beside the Pareto plot).
    """
    if data is None and split != "test":  # the bundled evaluation sample is a test split only
        raise click.UsageError(f"--split {split} applies to --data; the bundled evaluation sample is a test split")
    from edge_dfd.cli.escalate import resolve

    fraction, calib = resolve(escalate, escalate_fraction, calib_data)
    import json

    from edge_dfd.core import progress

    progress.set_quiet(quiet)
    from edge_dfd.bench import (
        BenchRequest,
        check_floor,
        check_measured,
        format_table,
        run_bench,
        write_results,
    )

    result = run_bench(BenchRequest(models=tuple(models), data=data, split=split, formats=formats, threads=threads,
                                    warmup=warmup, runs=runs, floor=floor, robustness=robustness, out_dir=out,
                                    provider=provider, sample=sample, seed=seed, escalate=escalate,
                                    escalate_fraction=fraction if escalate else None,
                                    calib_data=tuple(calib) if calib else None))
    paths = write_results(result, out, plot=plot)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        click.echo(format_table(result), err=True, nl=False)
    else:
        click.echo(format_table(result), nl=False)
    click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
    check_measured(result)
    if result.cascade and "error" in result.cascade:
        from edge_dfd.core.errors import EdgeDFDError

        raise EdgeDFDError(f"--escalate {escalate}: cascade curve not measured: {result.cascade['error']}")
    check_floor(result, floor)
