"""The ``--escalate`` options shared by predict, evaluate, scan and live (not a verb: ``COMMANDS`` does not list
it). ``escalate_options`` adds them to a click command; ``wrap`` turns the loaded backend into a cascade
(``edge_dfd.runtime.cascade``) before any work starts."""

from __future__ import annotations

import click

from edge_dfd.cli.options import options_from
from edge_dfd.runtime.options import DEFAULT_FRACTION, EscalateSettings

# --escalate MODEL, --escalate-fraction F, --calib-data DIR (keyword arguments escalate, escalate_fraction,
# calib_data), owned by edge_dfd.runtime.options.EscalateSettings
escalate_options = options_from(EscalateSettings)


def resolve(escalate, escalate_fraction, calib_data) -> tuple[float, list | None]:
    """(fraction, calibration folders or None) for --escalate; a fraction or --calib-data without --escalate is a
    usage error."""
    if escalate is None and (escalate_fraction is not None or calib_data):
        raise click.UsageError("--escalate-fraction and --calib-data need --escalate MODEL")
    return (DEFAULT_FRACTION if escalate_fraction is None else escalate_fraction), (list(calib_data) or None)


def wrap(backend, escalate, escalate_fraction, calib_data, threads=None):
    """``backend`` itself without --escalate, else the calibrated Cascade (``load_cascade``)."""
    fraction, calib = resolve(escalate, escalate_fraction, calib_data)
    if escalate is None:
        return backend
    from edge_dfd.core import progress
    from edge_dfd.runtime.cascade import load_cascade

    return load_cascade(backend, escalate, fraction, calib_data=calib, threads=threads, log=progress.echo)
