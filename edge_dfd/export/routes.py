"""One converter function per export format, registered by the format's name (see ``edge_dfd.core.formats``).

A converter is ``fn(ctx: ExportContext, out_path: Path) -> None``: it writes ``out_path`` (atomically)
and nothing else. ``ExportContext`` holds what every converter of one ``convert`` call shares and builds
once, lazily: the Keras model, ONE SavedModel export (every TFLite and ONNX route starts from it: the
SavedModel route is the one that works for every architecture, EfficientNet included), the calibration
images and the fp32 ONNX file that ``onnx-int8`` quantises.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_dfd.core.errors import ConversionError
from edge_dfd.core.formats import DEFAULT_OPSET, EXPORT_FORMATS, ONNX_OPSETS
from edge_dfd.core.util import first_line

__all__ = ["CONVERTERS", "DEFAULT_OPSET", "ONNX_OPSETS", "ExportContext", "get_converter", "register"]

CONVERTERS: dict[str, Callable] = {}


def register(name: str):
    """Decorator: register ``fn`` as the converter of format ``name`` (a key of FORMATS)."""
    if name not in EXPORT_FORMATS:
        raise ValueError(f"format {name!r} is not in edge_dfd.core.formats.FORMATS")

    def deco(fn):
        CONVERTERS[name] = fn
        return fn

    return deco


@dataclass
class ExportContext:
    """Shared, lazily-built state of one conversion call. Use as a context manager (cleans temp files)."""

    model: object  # keras.Model
    input_size: int
    calib: np.ndarray | None = None  # (N, S, S, 3) uint8 calibration images; None = none available
    opset: int = DEFAULT_OPSET
    _tmp: Path | None = field(default=None, repr=False)
    _saved_model: Path | None = field(default=None, repr=False)
    _onnx_fp32: Path | None = field(default=None, repr=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="edge_dfd_convert_"))
        return self._tmp

    def saved_model(self) -> Path:
        """The Keras model exported once as a SavedModel (``serving_default`` signature)."""
        if self._saved_model is None:
            d = self.tmp / "saved_model"
            try:
                self.model.export(str(d), format="tf_saved_model", verbose=False)
            except Exception as exc:  # TF raises many types while tracing
                raise ConversionError(f"SavedModel export of '{self.model.name}' failed: {first_line(exc, 300)}") from None
            self._saved_model = d
        return self._saved_model

    def require_calib(self, fmt: str) -> np.ndarray:
        if self.calib is None or len(self.calib) == 0:
            raise ConversionError(
                f"{fmt} needs calibration images: pass --calib-data DIR (a dataset folder with a valid split) "
                "or train the model with edge-dfd train so its data folder is recorded"
            )
        return self.calib

    def calib_batches(self, dtype=np.float32, desc: str = "calibrating"):
        """Calibration images one at a time as (1, S, S, 3) arrays of ``dtype`` (raw 0..255 values), with a
        progress bar (the quantiser runs the model on each as it takes it)."""
        from edge_dfd.core import progress

        for img in progress.iterate(self.calib, desc=desc, unit="img", leave=False):
            yield img[None].astype(dtype)


def get_converter(name: str) -> Callable:
    _load_all()
    try:
        return CONVERTERS[name]
    except KeyError:
        raise ConversionError(f"no converter registered for format '{name}'") from None


def _load_all() -> None:
    from edge_dfd.export import onnx, tflite  # noqa: F401  (registers their converters)
