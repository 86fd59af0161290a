"""``edge-dfd bench``: the latency / accuracy / size / memory of every format, side by side, in one run."""

from __future__ import annotations

import click

from edge_dfd.bench.result import DEFAULT_MODEL_RUNS, DEFAULT_OUT, DEFAULT_RUNS, DEFAULT_THREADS, DEFAULT_WARMUP
from edge_dfd.cli.escalate import escalate_options
from edge_dfd.images.perturb import PERTURBATIONS


@click.command("bench")
@click.argument("models", nargs=-1, metavar="[MODEL]...")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Labelled images (140k layout or DIR/<split>/{real,fake}/) to measure accuracy, AUC, ... on, "
                   "instead of the bundled evaluation sample (660 images).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "valid", "test"]))
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="Measure accuracy on a class-stratified sample of N images of --data (reproducible with --seed; "
                   "the same images for every format; the bundled sample without --data), e.g. 2000 to compare "
                   "formats in minutes. The accuracy's 95% interval says how far it can be from the whole split's.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --sample draw.")
@click.option("--formats", "--format", "formats", default="all", show_default=True,
              help="Formats to measure, 'all' or a comma list: those a .keras MODEL is converted to, or the files "
                   "of a bundled model ('default', 'ten-pass') or a convert output FOLDER to measure.")
@click.option("--threads", type=click.IntRange(min=1), default=DEFAULT_THREADS, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=DEFAULT_WARMUP, show_default=True)
@click.option("--runs", type=click.IntRange(min=1), default=None,
              help=f"Timed batch-1 runs per format [default: {DEFAULT_RUNS}; {DEFAULT_MODEL_RUNS} for the bundled model "
                   "when no MODEL is given].")
@click.option("--floor", type=click.FloatRange(0, 1), default=None,
              help="Exit with code 3 if any format's accuracy is below this (a CI gate).")
@click.option("--robustness", is_flag=True,
              help="Also accuracy/AUC under each perturbation of edge_dfd.images.perturb: " + ", ".join(PERTURBATIONS)
                   + ".")
@click.option("--provider", default=None, help="ONNX execution provider (default CPUExecutionProvider).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=DEFAULT_OUT, show_default=True,
              help="Folder for bench.json/.csv/.md, pareto.png and the conversion cache.")
@click.option("--json", "as_json", is_flag=True, help='Print {"machine": ..., "rows": [...]} on stdout.')
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Pareto plot file [default: OUT/pareto.png].")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars (drawn on stderr when stderr is a terminal: one per format and phase plus the "
                   "count of formats; otherwise one line every ~10 s).")
@escalate_options
def cmd(models, data_dir, split, sample, seed, formats, threads, warmup, runs, floor, robustness, provider, out_dir,
        as_json, plot, quiet, escalate, escalate_fraction, calib_data):
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
    if data_dir is None and split != "test":  # the bundled evaluation sample is a test split only
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

    result = run_bench(BenchRequest(models=tuple(models), data=data_dir, split=split, formats=formats, threads=threads,
                                    warmup=warmup, runs=runs, floor=floor, robustness=robustness, out_dir=out_dir,
                                    provider=provider, sample=sample, seed=seed, escalate=escalate,
                                    escalate_fraction=fraction if escalate else None,
                                    calib_data=tuple(calib) if calib else None))
    paths = write_results(result, out_dir, plot=plot)
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
