"""Runtime backends: one interface (``Backend``) over Keras, LiteRT (TFLite) and onnxruntime.

    from edge_dfd.runtime import load_model
    det = load_model("model_int8.tflite", threads=2)
    p_fake = det.predict(batch_uint8_rgb)          # (N, S, S, 3) uint8 RGB -> (N,) float32

``runtime.tflite`` and ``runtime.onnx`` never import TensorFlow; only ``runtime.keras`` does.
"""

from __future__ import annotations

from pathlib import Path

from edge_dfd.core.errors import ModelError
from edge_dfd.core.formats import FORMATS, RUNTIME_OF_SUFFIX, SUFFIXES, get_format, runtime_of_file
from edge_dfd.runtime.base import Backend

__all__ = ["BACKENDS", "RUNTIME_OF_SUFFIX", "Backend", "load_model", "resolve_model"]

# Format.runtime -> (module, class) of its backend, imported only when used (tflite / onnx never import TF)
BACKENDS = {"keras": ("edge_dfd.runtime.keras", "KerasBackend"), "tflite": ("edge_dfd.runtime.tflite", "TFLiteBackend"),
            "onnx": ("edge_dfd.runtime.onnx", "ONNXBackend")}


def resolve_model(spec, format: str | None = None) -> Path:
    """A model spec (path, "default" or another bundled name such as "ten-pass") -> an existing model file
    path; ModelError otherwise."""
    from edge_dfd.runtime import zoo

    if zoo.is_bundled_name(spec):
        return zoo.bundled_path(str(spec), format)
    p = Path(spec).expanduser()
    suffix = p.suffix.lower()
    if suffix not in RUNTIME_OF_SUFFIX:
        raise ModelError(f"{p}: unknown model type '{p.suffix}' (expected {', '.join(SUFFIXES)}, 'default' "
                         f"or one of: {', '.join(zoo.NAMED)})")
    if not p.exists():
        raise ModelError(f"{p}: model file not found")
    if not p.is_file():
        raise ModelError(f"{p}: is not a file")
    if format is not None:
        want = get_format(format)
        if want.suffix != suffix:
            raise ModelError(f"{p}: --format {want.name} expects a {want.suffix} file, got '{p.suffix}'")
    return p


def load_model(spec="default", format: str | None = None, threads: int | None = None,
               provider: str | None = None, meta=None) -> Backend:
    """Load a model file (``.keras``, ``.tflite``, ``.onnx``) or the bundled ``"default"`` model.

    ``format`` picks the bundled model's format (default ``edge_dfd.runtime.zoo.DEFAULT_FORMAT``) and, for a
    path, must agree with the file's suffix. ``threads`` sets the runtime's intra-op threads.
    ``provider`` is an onnxruntime execution provider (ONNX only; a missing one is a ModelError).
    ``meta`` (a ``ModelMeta``) is used instead of the file's own metadata (``edge-dfd convert`` verifies an
    export before it writes the file's final metadata). The backend is the FORMATS table's runtime of the suffix.
    """
    import importlib

    path = resolve_model(spec, format)
    runtime = runtime_of_file(path)
    if threads is not None and int(threads) < 1:
        raise ModelError(f"threads={threads}: expected a positive integer")
    if provider is not None and runtime != "onnx":
        raise ModelError(f"{path.name}: --provider applies to ONNX models only (this is a {runtime} model)")
    module, name = BACKENDS[runtime]
    cls = getattr(importlib.import_module(module), name)
    if runtime == "onnx":
        return cls(path, threads, provider, meta=meta)
    return cls(path, threads, meta=meta)


def runtime_of(format_name: str) -> str:
    return FORMATS[format_name].runtime
