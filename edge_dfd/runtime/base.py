"""The one runtime interface: a loaded model that maps uint8 RGB face crops to P(fake).

Each backend (``keras``, ``tflite``, ``onnx``) builds its heavy state (model, interpreter, session) once
in ``__init__``; ``predict`` only copies the batch in, runs it and reads the probabilities out.
int8 (de)quantisation lives inside the backends, so callers always pass uint8 pixels and get float32.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import ModelError
from edge_dfd.core.formats import FORMATS, Format
from edge_dfd.core.meta import ModelMeta

_warned: set[str] = set()


class Backend:
    """A loaded detector. Subclasses set ``meta``, ``fmt`` and implement ``_run(batch_uint8)``.

    Attributes:
        path: the model file.
        fmt: the ``edge_dfd.core.formats.Format`` row of the file.
        meta: ``ModelMeta`` read from the file (or inferred from the model when the file carries none).
        meta_inferred: True when ``meta`` was inferred (threshold 0.5).
        threads: intra-op threads requested (None = runtime default).
        provider: the execution provider actually used (ONNX) or a short runtime description.
    """

    runtime = "base"
    fmt: Format
    meta: ModelMeta
    meta_inferred = False
    provider = ""

    def __init__(self, path, threads: int | None = None, meta: ModelMeta | None = None):
        self.path = Path(path)
        self.threads = threads
        self._given_meta = meta  # used instead of the file's (edge-dfd convert, before it writes the file's own)

    # ------------------------------------------------------------- public API

    @property
    def input_size(self) -> int:
        return int(self.meta.input_size)

    @property
    def threshold(self) -> float:
        return float(self.meta.threshold)

    @property
    def format(self) -> str:
        return self.fmt.name

    def predict(self, batch) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB (or one (S, S, 3) image) -> (N,) float32 P(fake)."""
        x = np.asarray(batch)
        if x.ndim == 3:
            x = x[None]
        s = self.input_size
        if x.ndim != 4 or x.shape[1:] != (s, s, 3):
            raise ModelError(
                f"{self.path.name}: input batch has shape {x.shape}, expected (N, {s}, {s}, 3) RGB "
                "(resize with edge_dfd.images.preprocess.prepare_batch)"
            )
        if x.dtype != np.uint8:
            raise ModelError(f"{self.path.name}: input batch dtype is {x.dtype}, expected uint8 pixels 0..255")
        if x.shape[0] == 0:
            return np.zeros((0,), np.float32)
        p = np.asarray(self._run(np.ascontiguousarray(x)), dtype=np.float32).reshape(-1)
        if p.shape[0] != x.shape[0]:
            raise ModelError(f"{self.path.name}: model returned {p.shape[0]} values for {x.shape[0]} images")
        if self.meta.output == "P(real)":
            p = 1.0 - p
        return p

    def verdicts(self, p_fake) -> list[str]:
        """'fake' / 'real' for each probability at the model's threshold."""
        from edge_dfd.core.verdicts import verdict

        return [verdict(v, self.threshold) for v in np.asarray(p_fake).ravel()]

    def describe(self) -> dict:
        """Facts about the loaded model for logs and reports."""
        return {
            "path": str(self.path),
            "format": self.fmt.name,
            "runtime": self.runtime,
            "provider": self.provider,
            "threads": self.threads,
            "input_size": self.input_size,
            "input_dtype": self.meta.input_dtype,
            "threshold": self.threshold,
            "threshold_source": self.meta.threshold_source,
            "meta_inferred": self.meta_inferred,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path.name} format={self.fmt.name} size={self.input_size}>"

    # ------------------------------------------------------------- helpers for subclasses

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _resolve_meta(self, meta: ModelMeta | None, input_size: int, input_dtype: str, fallback: Format) -> None:
        """Use the file's metadata (checked against the model's real input) or infer it and say so once."""
        where = str(self.path)
        meta = self._given_meta or meta
        if meta is None:
            self.meta_inferred = True
            self.fmt = fallback
            self.meta = ModelMeta(
                format=fallback.name,
                input_size=int(input_size),
                input_dtype=input_dtype,
                threshold=0.5,
                threshold_source="default 0.5 (file has no edge-dfd metadata)",
            )
            if where not in _warned:
                _warned.add(where)
                print(
                    f"note: {self.path.name} carries no edge-dfd metadata; using input {input_size}x{input_size} "
                    f"{input_dtype} RGB 0..255 inferred from the model and threshold 0.5",
                    file=sys.stderr,
                )
            return
        if meta.input_size != input_size:
            raise ModelError(
                f"{where}: metadata says input_size={meta.input_size} but the model's input is "
                f"{input_size}x{input_size}"
            )
        if meta.color_order != "RGB":
            raise ModelError(f"{where}: metadata color_order={meta.color_order!r}; edge-dfd models take RGB")
        fmt = FORMATS.get(meta.format)
        if fmt is None or fmt.runtime != fallback.runtime:
            fmt = fallback
        self.fmt = fmt
        self.meta = meta


def check_input_shape(shape, where: str) -> int:
    """(N, S, S, 3) with N free or 1 -> S; anything else is a ModelError."""
    dims = list(shape)
    if len(dims) != 4 or dims[3] != 3 or not isinstance(dims[1], (int, np.integer)) or dims[1] != dims[2] or dims[1] < 1:
        raise ModelError(f"{where}: model input shape is {tuple(dims)}, expected (N, S, S, 3) square RGB")
    return int(dims[1])


def check_output_shape(shape, where: str) -> None:
    dims = list(shape)
    if not (len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)):
        raise ModelError(f"{where}: model output shape is {tuple(dims)}, expected (N, 1) P(fake)")
