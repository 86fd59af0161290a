"""Small helpers every module would otherwise write again (standard library only).

The other shared helpers have their owners: ``edge_dfd.core.machine.versions`` (package versions),
``edge_dfd.bench.latency_ms`` (the batch-1 latency loop), ``edge_dfd.core.fsutil`` (atomic writes).
"""

from __future__ import annotations

import csv
import difflib
from pathlib import Path


def first_line(exc: BaseException, limit: int = 200, empty: str | None = None) -> str:
    """The first line of an exception's message, at most ``limit`` characters, for one-line errors; for an
    empty message ``empty``, or the exception's type name when ``empty`` is None."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__[:limit] if empty is None else empty
    return text.splitlines()[0][:limit]


def did_you_mean(name: str, choices) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices`` to ``name`` (difflib), or "" when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def read_csv_rows(path, limit: int | None = None) -> list[dict]:
    """A CSV file with a header row as a list of dicts (at most ``limit`` rows). Plain reading: the validated
    140k split reader is ``edge_dfd.images.data.load_split``."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f)
        return [r for i, r in zip(range(limit), rows)] if limit is not None else list(rows)
