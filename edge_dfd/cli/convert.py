"""`edge-dfd convert`: a thin layer over ``edge_dfd.convert.convert_model``."""

from __future__ import annotations

import json
import os

import click

from edge_dfd.formats import DEFAULT_OPSET, EXPORT_FORMATS, ONNX_OPSETS


@click.command("convert")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("--formats", "formats", default="all", show_default=True,
              help=f"'all' or a comma list: {', '.join(EXPORT_FORMATS)}.")
@click.option("--calib-data", type=click.Path(path_type=str), default=None,
              help="Dataset folder whose valid split calibrates int8 and verifies every export "
                   "[default: the data folder recorded in the model by `edge-dfd train`].")
@click.option("--calib-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Class-stratified calibration images (int8 formats).")
@click.option("--verify-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Validation images (not used for calibration) each export is checked on.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Output folder [default: next to MODEL; exports/default for 'default'].")
@click.option("--opset", type=click.IntRange(ONNX_OPSETS.start, ONNX_OPSETS.stop - 1), default=DEFAULT_OPSET,
              show_default=True, help="ONNX opset.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against the Keras model.")
@click.option("--keep-threshold", is_flag=True,
              help="Give int8 files the Keras threshold as is [default: re-match it on the calibration images "
                   "(at least 50) so the int8 verdicts reproduce the Keras ones].")
@click.option("--unsafe", is_flag=True, help="Allow Lambda layers (runs code stored in the file: trusted files only).")
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars for reading, calibration and verification (drawn on stderr when stderr is a "
                   "terminal; otherwise one line every ~10 s).")
def cmd(model, formats, calib_data, calib_size, verify_size, out_dir, opset, no_verify, keep_threshold, unsafe,
        as_json, quiet):
    """Export MODEL.keras ('default': the bundled source model) to verified TFLite and ONNX files that carry
    their own metadata.

    Each file is checked against the Keras model right after it is written: float files must match it
    numerically; int8 files must keep its verdicts (agreement, upper 95 % bound), accuracy and ROC AUC (no
    significant drop beyond the format's tolerance) and not collapse to one class; max / mean |dP| are
    reported. A failed check exits 3 with the numbers.
    Progress (rate, ETA) goes to stderr.
    """
    from edge_dfd import progress
    from edge_dfd.convert import convert_model, raise_for_failures
    from edge_dfd.formats import parse_formats

    progress.set_quiet(quiet)
    parse_formats(formats)  # unknown names fail before TensorFlow is imported
    results = convert_model(model, formats, out_dir=out_dir, calib_data=calib_data, calib_size=calib_size,
                            verify_size=verify_size, verify=not no_verify, opset=opset, unsafe=unsafe,
                            match_threshold=not keep_threshold,
                            progress=progress.echo)
    click.echo(summary_table(results), err=True)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    raise_for_failures(results)
    folder = os.path.dirname(results[0].path) if results else "."
    click.echo(f"next: edge-dfd bench {folder or '.'}", err=True)


def summary_table(results) -> str:
    """Format, file, size MB, max |dp|, agreement, accuracy delta, seconds, status."""

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = f"{'format':<15}{'file':<28}{'MB':>8}{'max|dp|':>10}{'agree':>8}{'dacc':>8}{'thresh':>8}{'s':>7}  status"
    lines = [head, "-" * len(head)]
    for r in results:
        dacc = None if r.accuracy_export is None or r.accuracy_keras is None else r.accuracy_export - r.accuracy_keras
        lines.append(
            f"{r.format:<15}{os.path.basename(r.path):<28}{r.bytes / 1e6:>8.2f}{num(r.max_abs_diff, '.2e'):>10}"
            f"{num(r.agreement, '.3f'):>8}{num(dacc, '+.3f'):>8}{num(r.threshold, '.4f'):>8}{r.seconds:>7.1f}  {'ok' if r.ok else 'FAIL'}"
        )
    return "\n".join(lines)
