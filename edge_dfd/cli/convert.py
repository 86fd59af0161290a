"""`edge-dfd convert`: a thin layer over ``edge_dfd.export.convert.convert_model``."""

from __future__ import annotations

import json
import os

import click

from edge_dfd.cli.options import options_from
from edge_dfd.core.formats import NONINFERIORITY_MARGIN
from edge_dfd.export.options import ConvertOptions


@click.command("convert")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@options_from(ConvertOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the result rows as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bars for reading, calibration and verification (drawn on stderr when stderr is a "
                   "terminal; otherwise one line every ~10 s).")
def cmd(model, formats, calib_data, calib_size, verify_size, out, opset, no_verify, keep_threshold, unsafe,
        as_json, quiet):
    """Export MODEL.keras ('default': the bundled source model) to verified TFLite and ONNX files that carry
    their own metadata.

    Each file is checked against the Keras model right after it is written and gets a status. Float files:
    "ok" when they match it numerically, else "failed". int8 files: "failed" when shown worse (agreement,
    significant accuracy / ROC AUC drop beyond 3 points, collapse to one class, shifted probabilities); "ok"
    only when shown no worse: the one-sided upper 95 % bounds of the paired accuracy loss (Newcombe) and ROC AUC
    loss (DeLong) against the Keras model are both <= 3 points; else "unproven", with the number of verification
    images that would prove it. Exit codes: 0 every file ok, 3 a file failed (files kept), 4 a file unproven and
    none failed (files written). Progress (rate, ETA) goes to stderr.
    """
    from edge_dfd.core import progress
    from edge_dfd.core.formats import parse_formats
    from edge_dfd.export.convert import convert_model, raise_for_failures

    progress.set_quiet(quiet)
    parse_formats(formats)  # unknown names fail before TensorFlow is imported
    results = convert_model(model, formats, out_dir=out, calib_data=calib_data, calib_size=calib_size,
                            verify_size=verify_size, verify=not no_verify, opset=opset, unsafe=unsafe,
                            match_threshold=not keep_threshold,
                            progress=progress.echo)
    click.echo(summary_table(results), err=True)
    for r in results:
        if r.status == "unproven":  # its error ends with edge_dfd.export.gate.needed_text: the images it would need
            click.echo(f"{r.format}: unproven - accuracy loss <= {_pts(r.accuracy_loss_upper95)}, ROC AUC loss <= "
                       f"{_pts(r.auc_loss_upper95)} (one-sided 95 %; margin {_pts(NONINFERIORITY_MARGIN)}); "
                       + (r.error or "").rpartition("; ")[2], err=True)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    folder = os.path.dirname(results[0].path) if results else "."
    if all(r.status in ("ok", "unproven") for r in results):  # every file written and usable
        click.echo(f"next: edge-dfd bench {folder or '.'}", err=True)
    raise_for_failures(results)


def _pts(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} points"


def summary_table(results) -> str:
    """Format, file, size MB, max |dp|, agreement, accuracy delta, the loss bounds, images, seconds, status."""

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = (f"{'format':<15}{'file':<28}{'MB':>8}{'max|dp|':>10}{'agree':>8}{'dacc':>8}{'acc<=':>8}{'auc<=':>8}"
            f"{'n':>6}{'thresh':>8}{'s':>7}  status")
    lines = [head, "-" * len(head)]
    for r in results:
        dacc = None if r.accuracy_export is None or r.accuracy_keras is None else r.accuracy_export - r.accuracy_keras
        lines.append(
            f"{r.format:<15}{os.path.basename(r.path):<28}{r.bytes / 1e6:>8.2f}{num(r.max_abs_diff, '.2e'):>10}"
            f"{num(r.agreement, '.3f'):>8}{num(dacc, '+.3f'):>8}{num(r.accuracy_loss_upper95, '+.3f'):>8}"
            f"{num(r.auc_loss_upper95, '+.3f'):>8}{r.verify_n:>6}{num(r.threshold, '.4f'):>8}{r.seconds:>7.1f}  "
            f"{ {'ok': 'ok', 'unproven': 'UNPROVEN'}.get(r.status, 'FAIL')}"
        )
    lines.append("acc<= / auc<=: one-sided upper 95 % bound of the accuracy / ROC AUC loss against the Keras model "
                 f"(int8: ok needs both <= {NONINFERIORITY_MARGIN:g})")
    return "\n".join(lines)
