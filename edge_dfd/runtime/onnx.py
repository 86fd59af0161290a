"""ONNX backend on onnxruntime. Never imports TensorFlow.

``threads`` sets ``intra_op_num_threads``; ``provider`` picks the execution provider (default
``CPUExecutionProvider``). A provider that is not available is an error listing the available ones:
never a silent fallback, because a benchmark that quietly ran elsewhere would lie. ``provider`` records
the provider the session actually uses.

``onnx-int8-arm`` files carry full 8-bit weights, which onnxruntime's u8 x s8 kernels on x86 CPUs without VNNI
saturate (16-bit pair sums). On such a CPU the session runs with QDQ fusion off: QuantizeLinear /
DequantizeLinear in float around float kernels, i.e. the same quantised arithmetic at float speed, so the
verdicts match what an ARM64 or VNNI CPU computes with its int8 kernels (``qdq_in_float``; one note on stderr).
``EDGE_DFD_ONNX_QDQ=int8`` forces the int8 kernels, ``=float`` the float path, for any ONNX file.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from edge_dfd.core.errors import ModelError, require
from edge_dfd.core.formats import FORMATS, format_of_file
from edge_dfd.core.meta import onnx_meta_from_session
from edge_dfd.core.util import first_line
from edge_dfd.runtime.base import Backend, check_input_shape, check_output_shape

DEFAULT_PROVIDER = "CPUExecutionProvider"
FULL_RANGE_FORMATS = ("onnx-int8-arm",)  # weights at the full int8 range: need 32-bit int8 accumulation
QDQ_ENV = "EDGE_DFD_ONNX_QDQ"
QDQ_IN_FLOAT = ("session.disable_quant_qdq", "1")  # session config entry: QDQ fusion off, Q/DQ + float kernels
_noted: set[str] = set()
_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


def available_providers() -> list[str]:
    ort = require("onnxruntime", "running .onnx models")
    return list(ort.get_available_providers())


class ONNXBackend(Backend):
    runtime = "onnx"

    def __init__(self, path, threads: int | None = None, provider: str | None = None, meta=None):
        super().__init__(path, threads, meta)
        ort = require("onnxruntime", "running .onnx models")
        where = str(self.path)
        want = provider or DEFAULT_PROVIDER
        avail = list(ort.get_available_providers())
        if want not in avail:
            raise ModelError(
                f"ONNX execution provider '{want}' is not available in this onnxruntime; available: {', '.join(avail)}"
            )
        self.qdq_in_float = False
        self.session = self._session(ort, want, qdq_in_float=False)
        used = self.session.get_providers()
        if not used or used[0] != want:
            raise ModelError(f"{where}: asked for provider '{want}' but the session uses {used}")
        self.provider = used[0]
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"{where}: model has {len(ins)} inputs / {len(outs)} outputs, expected 1 / 1")
        self._in_name, self._out_name = ins[0].name, outs[0].name
        if ins[0].type not in _TYPES:
            raise ModelError(f"{where}: model input type is {ins[0].type}, expected float or uint8 tensor")
        self._in_dtype = _TYPES[ins[0].type]
        size = check_input_shape(ins[0].shape, where)
        check_output_shape(outs[0].shape, where)
        batch = ins[0].shape[0]
        self._fixed_batch = int(batch) if isinstance(batch, (int, np.integer)) and batch > 0 else None
        guess = format_of_file(self.path)
        if guess is None or guess.runtime != "onnx":
            guess = FORMATS["onnx"]
        in_dtype = "uint8" if self._in_dtype == np.uint8 else "float32"
        self._resolve_meta(onnx_meta_from_session(self.session, where), size, in_dtype, guess)
        if want == DEFAULT_PROVIDER and self._wants_qdq_in_float():
            self.session = self._session(ort, want, qdq_in_float=True)
            self.qdq_in_float = True

    def _session(self, ort, provider: str, qdq_in_float: bool):
        opts = ort.SessionOptions()
        if self.threads is not None:
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if qdq_in_float:
            opts.add_session_config_entry(*QDQ_IN_FLOAT)
        try:
            return ort.InferenceSession(str(self.path), sess_options=opts, providers=[provider])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            msg = first_line(exc)
            raise ModelError(f"{self.path}: onnxruntime cannot load this model ({msg})") from None

    def _wants_qdq_in_float(self) -> bool:
        from edge_dfd.core.machine import int8_saturates

        force = os.environ.get(QDQ_ENV, "").strip().lower()
        if force not in ("", "int8", "float"):
            raise ModelError(f"{QDQ_ENV}={force!r}: expected 'int8' or 'float'")
        if force:
            return force == "float"
        if self.fmt.name not in FULL_RANGE_FORMATS or not int8_saturates():
            return False
        if str(self.path) not in _noted:
            _noted.add(str(self.path))
            print(f"note: {self.path.name} has full 8-bit weights, which this CPU's int8 kernels (x86 without VNNI) "
                  "would saturate; running its quantised graph in float instead (close to ARM64 / VNNI int8: 98 % same verdicts "
                  "in benchmarks/results/arm64_emulated.md; not int8 speed; the onnx-int8 file runs int8 here)", file=sys.stderr)
        return True

    def describe(self) -> dict:
        d = super().describe()
        d["qdq_in_float"] = self.qdq_in_float
        return d

    def _run(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(self._in_dtype, copy=False)
        if self._fixed_batch is not None and x.shape[0] != self._fixed_batch:
            if self._fixed_batch != 1:
                raise ModelError(f"{self.path}: model has a fixed batch size {self._fixed_batch}")
            return np.concatenate([self._invoke(x[i : i + 1]) for i in range(x.shape[0])])
        return self._invoke(x)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self._out_name], {self._in_name: x})[0], dtype=np.float32).reshape(-1)
