"""LiteRT (TFLite) backend on ``ai_edge_litert.interpreter.Interpreter`` with the default XNNPACK delegate.

Never imports TensorFlow. The interpreter is built once; its input tensor is resized when the batch size
changes (models exported with a free batch dimension) or the batch is run image by image (fixed batch-1
models). Integer inputs are quantised and integer outputs dequantised here, with the tensors' own
scale / zero point.
"""

from __future__ import annotations

import numpy as np

from edge_dfd.core.errors import ModelError, require
from edge_dfd.core.formats import FORMATS, format_of_file
from edge_dfd.core.meta import tflite_meta_from_bytes
from edge_dfd.core.tfquiet import LITERT_NOISE, filtered_stderr
from edge_dfd.core.util import first_line
from edge_dfd.runtime.base import Backend, check_input_shape, check_output_shape

_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.uint8): "uint8", np.dtype(np.int8): "int8"}


class TFLiteBackend(Backend):
    runtime = "tflite"

    def __init__(self, path, threads: int | None = None, meta=None):
        super().__init__(path, threads, meta)
        interp_mod = require("ai_edge_litert.interpreter", "running .tflite models")
        where = str(self.path)
        try:
            buf = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{where}: cannot read ({exc.strerror or exc})") from None
        meta = tflite_meta_from_bytes(buf, where)  # ModelError if not a TFLite flatbuffer
        try:
            with filtered_stderr(LITERT_NOISE):  # its "Created ... XNNPACK delegate" INFO line, on every load
                self.interpreter = interp_mod.Interpreter(model_content=buf, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{where}: LiteRT cannot load this model ({first_line(exc)})") from None
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{where}: model has {len(ins)} inputs / {len(outs)} outputs, expected 1 / 1")
        self._in, self._out = ins[0], outs[0]
        size = check_input_shape(self._in["shape"], where)
        check_output_shape(self._out["shape"], where)
        in_dtype = np.dtype(self._in["dtype"])
        if in_dtype not in _DTYPES or np.dtype(self._out["dtype"]) not in _DTYPES:
            raise ModelError(
                f"{where}: model input/output types are {in_dtype}/{np.dtype(self._out['dtype'])}, "
                "expected float32, uint8 or int8"
            )
        sig = self._in.get("shape_signature", self._in["shape"])
        self._free_batch = len(sig) == 4 and int(sig[0]) == -1
        self._batch = int(self._in["shape"][0])
        self._in_q = _qparams(self._in)
        self._out_q = _qparams(self._out)
        guess = format_of_file(self.path)
        if guess is None or guess.runtime != "tflite":
            guess = FORMATS["tflite-fp32"]
        if in_dtype == np.uint8:
            guess = FORMATS["tflite-int8-io"]
        elif guess.name == "tflite-fp32" and self._has_int8_tensors():
            guess = FORMATS["tflite-int8"]
        self._resolve_meta(meta, size, "uint8" if in_dtype == np.uint8 else "float32", guess)
        self.provider = "XNNPACK" if threads is None else f"XNNPACK ({threads} threads)"

    def _has_int8_tensors(self) -> bool:
        return any(np.dtype(t["dtype"]) == np.int8 for t in self.interpreter.get_tensor_details())

    # ------------------------------------------------------------- inference

    def _run(self, x: np.ndarray) -> np.ndarray:
        x = self._quantize(x)
        n = x.shape[0]
        if self._free_batch or n == self._batch:
            if n != self._batch:
                self._resize(n)
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i : i + 1]) for i in range(n)])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        it.set_tensor(self._in["index"], x)
        it.invoke()
        y = it.get_tensor(self._out["index"])
        if self._out_q is not None:
            scale, zp = self._out_q
            y = (y.astype(np.float32) - zp) * scale
        return y.reshape(-1)

    def _resize(self, n: int) -> None:
        s = self.input_size
        try:
            self.interpreter.resize_tensor_input(self._in["index"], [n, s, s, 3], strict=True)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: cannot resize the input to batch {n} ({exc})") from None
        self._batch = n

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._in["dtype"])
        if dtype == np.float32:
            return x.astype(np.float32)
        if self._in_q is None:
            return x.astype(dtype)
        scale, zp = self._in_q
        if dtype == np.uint8 and zp == 0 and (abs(scale - 1.0) < 1e-6 or abs(scale * 255.0 - 1.0) < 1e-6):
            # raw pixels straight in: scale 1 (the input is the 0..255 pixel) or 1/255 (the converter
            # folded the model's Rescaling(1/255) into the input quantisation)
            return x
        info = np.iinfo(dtype)
        q = np.round(x.astype(np.float32) / scale + zp)
        return np.clip(q, info.min, info.max).astype(dtype)


def _qparams(detail) -> tuple[float, int] | None:
    """(scale, zero_point) of an integer tensor, None for float tensors."""
    if np.dtype(detail["dtype"]) == np.float32:
        return None
    scale, zp = detail.get("quantization", (0.0, 0))
    if not scale:
        return None
    return float(scale), int(zp)
