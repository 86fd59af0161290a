"""The bench's typed boundaries: what ``run_bench`` is asked (``BenchRequest``), what one measuring process is
asked (``BenchJob``) and what it hands back (``Measurement``), and the wire format between the two processes.

Across the process boundary each dataclass travels as one JSON object, ``{"kind": <class name>, "version":
WIRE_VERSION, <every field>}`` (``to_wire``), and is read back strictly (``from_wire``): a wrong kind or version,
an unknown or a missing field, or a field of the wrong type is ONE ``EdgeDFDError`` line naming what is wrong,
never a KeyError deep inside the worker. The field types are the annotations below (JSON lists become tuples
where a tuple is annotated)."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from edge_dfd.bench.result import DEFAULT_THREADS, DEFAULT_WARMUP
from edge_dfd.core.errors import EdgeDFDError

__all__ = ["WIRE_VERSION", "BenchJob", "BenchRequest", "Measurement", "from_wire", "to_wire"]

WIRE_VERSION = 1  # bump when a field of BenchJob or Measurement changes meaning


@dataclass(frozen=True)
class BenchRequest:
    """One ``run_bench`` call (``edge-dfd bench``'s options; the docstring of ``run_bench`` says what each does).

    ``runs`` / ``probes`` None: 100 / 64, or ``DEFAULT_MODEL_RUNS`` / ``DEFAULT_MODEL_PROBES`` with no model."""

    models: tuple = ()
    data: str | Path | None = None
    split: str = "test"
    formats: str | None = "all"
    threads: int = DEFAULT_THREADS
    warmup: int = DEFAULT_WARMUP
    runs: int | None = None
    floor: float | None = None
    robustness: bool = False
    out_dir: str | Path | None = None
    provider: str | None = None
    probes: int | None = None
    sample: int | None = None
    seed: int = 0
    escalate: str | None = None
    escalate_fraction: float | None = None
    calib_data: tuple | None = None
    convert_kwargs: dict | None = None  # to edge_dfd.export.convert.convert_model (e.g. calib_size, verify_size)


@dataclass(frozen=True)
class BenchJob:
    """What ONE measuring process is asked to measure: one model file (``worker.measure``)."""

    path: str
    threads: int
    warmup: int
    runs: int
    records: tuple[tuple[str, int], ...] = ()  # (image path, label) in the 140k convention: 0 = fake, 1 = real
    probe_npy: str | None = None  # generated probe inputs (exact arrays: agreement between formats)
    probe_files: tuple[str, ...] = ()  # the same probes as PNG files (end-to-end throughput when no records)
    robustness: bool = False
    provider: str | None = None  # onnx execution provider (None for every other runtime)


@dataclass(frozen=True)
class Measurement:
    """What a measuring process hands back. ``ok`` False: ``error`` says why, nothing else is set.

    The parent (``plan``) turns it into a ``BenchRow``: the accuracy fields from ``p_records`` against the
    labels, the agreement from ``probe_p``. Times in ms, memory in MB (definitions: ``edge_dfd.bench``)."""

    ok: bool
    error: str | None = None
    format: str | None = None
    runtime: str | None = None
    provider: str | None = None
    qdq_in_float: bool = False
    threshold: float | None = None
    load_ms: float | None = None
    baseline_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    preprocess_ms: float | None = None
    first_inference_ms: float | None = None
    latency: dict[str, float] | None = None  # "p50", "p90", "p99", "mean" of the batch-1 loop
    images_per_s: float | None = None
    skipped_images: int | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (image, why) of the records that could not be read
    p_records: tuple[float | None, ...] | None = None  # P(fake) per job record, in order (None: skipped)
    probe_p: tuple[float, ...] | None = None  # P(fake) per probe input
    robustness: dict | None = field(default=None)  # perturbation -> {"accuracy", "auc"}

    @classmethod
    def failed(cls, error: str) -> Measurement:
        return cls(ok=False, error=error)


def to_wire(obj) -> str:
    """``obj`` (a BenchJob or a Measurement) as one JSON text, tagged with its kind and ``WIRE_VERSION``."""
    return json.dumps({"kind": type(obj).__name__, "version": WIRE_VERSION, **asdict(obj)})


def from_wire(cls, text: str, where: str = "payload"):
    """The ``cls`` instance that ``to_wire`` wrote as ``text``; EdgeDFDError (one line, naming ``where``) when
    the text is not exactly that: not JSON, another kind or version, unknown / missing / mistyped fields."""
    what = f"{where}: malformed {cls.__name__}"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise EdgeDFDError(f"{what} (not JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise EdgeDFDError(f"{what} (a JSON {type(doc).__name__}, not an object)")
    kind, version = doc.pop("kind", None), doc.pop("version", None)
    if kind != cls.__name__ or version != WIRE_VERSION:
        raise EdgeDFDError(f"{what} (kind {kind!r} version {version!r}; expected {cls.__name__!r} version {WIRE_VERSION})")
    specs = {f.name: f for f in fields(cls)}
    unknown = sorted(set(doc) - set(specs))
    missing = sorted(n for n, f in specs.items()
                     if n not in doc and f.default is MISSING and f.default_factory is MISSING)
    if unknown or missing:
        parts = ([f"unknown field(s) {', '.join(unknown)}"] if unknown else []) + \
                ([f"missing field(s) {', '.join(missing)}"] if missing else [])
        raise EdgeDFDError(f"{what} ({'; '.join(parts)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in doc.items():
        ok, values[name] = _coerce(value, hints[name])
        if not ok:
            raise EdgeDFDError(f"{what} (field {name}: {value!r:.60} is not {_type_name(hints[name])})")
    return cls(**values)


def _coerce(value, tp) -> tuple[bool, object]:
    """(whether ``value``, decoded from JSON, is of type ``tp``; the value with lists turned into tuples where
    ``tp`` says tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            ok, v = _coerce(value, a)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if tp in (dict, list, tuple) or origin in (dict, list, tuple):
        base = origin or tp
        if base is dict:
            if not isinstance(value, dict):
                return False, value
            if args and not all(isinstance(k, str) and _coerce(v, args[1])[0] for k, v in value.items()):
                return False, value
            return True, value
        if not isinstance(value, (list, tuple)):
            return False, value
        if not args:
            return True, tuple(value) if base is tuple else list(value)
        elem = [args[0]] * len(value) if (base is list or args[-1] is Ellipsis) else list(args)
        if len(elem) != len(value):
            return False, value
        out = []
        for v, t in zip(value, elem):
            ok, cv = _coerce(v, t)
            if not ok:
                return False, value
            out.append(cv)
        return True, tuple(out) if base is tuple else out
    return False, value  # an annotation this wire format does not carry


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace("NoneType", "None")
