"""LiteRT (TFLite) exports, all from the call's one SavedModel (``TFLiteConverter.from_saved_model``).

* ``tflite-fp32``    plain conversion.
* ``tflite-fp16``    ``optimizations=[DEFAULT]`` + float16 weights (runs as fp32 on CPUs without fp16).
* ``tflite-int8``    full-integer (``TFLITE_BUILTINS_INT8``) calibrated on ``ctx.calib``; float32 in/out.
* ``tflite-int8-io`` the same with a **uint8 input** meaning raw pixels, and float32 output. The input's
  quantisation must be scale 1 or 1/255 with zero point 0 (raw pixels go straight in); the representative
  set always spans 0..255 so an input that is not folded into a Rescaling gets exactly scale 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_dfd.core.errors import ConversionError, require
from edge_dfd.core.fsutil import atomic_write_bytes
from edge_dfd.core.util import first_line
from edge_dfd.export.routes import ExportContext, register


def _converter(ctx: ExportContext):
    tf = require("tensorflow", "TFLite conversion")
    return tf, tf.lite.TFLiteConverter.from_saved_model(str(ctx.saved_model()))


def _convert(conv, name: str) -> bytes:
    try:
        return conv.convert()
    except Exception as exc:  # the MLIR converter raises ConverterError, RuntimeError, ValueError...
        raise ConversionError(f"{name} conversion failed: {first_line(exc, 300)}") from None


def _representative(ctx: ExportContext, name: str):
    images = ctx.require_calib(name)
    # Two synthetic extremes first, so the input range is always exactly 0..255 (uint8 input scale 1).
    size = ctx.input_size
    extremes = [np.zeros((1, size, size, 3), np.float32), np.full((1, size, size, 3), 255.0, np.float32)]

    def gen():
        from edge_dfd.core import progress

        for x in extremes:
            yield [x]
        for img in progress.iterate(images, desc=f"{name}: calibrating", unit="img", leave=False):
            yield [img[None].astype(np.float32)]

    return gen


@register("tflite-fp32")
def tflite_fp32(ctx: ExportContext, out: Path) -> None:
    _, conv = _converter(ctx)
    atomic_write_bytes(out, _convert(conv, "tflite-fp32"))


@register("tflite-fp16")
def tflite_fp16(ctx: ExportContext, out: Path) -> None:
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    atomic_write_bytes(out, _convert(conv, "tflite-fp16"))


def _int8(ctx: ExportContext, name: str, uint8_input: bool) -> bytes:
    tf, conv = _converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(ctx, name)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if uint8_input:
        conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.float32
    return _convert(conv, name)


@register("tflite-int8")
def tflite_int8(ctx: ExportContext, out: Path) -> None:
    atomic_write_bytes(out, _int8(ctx, "tflite-int8", uint8_input=False))


@register("tflite-int8-io")
def tflite_int8_io(ctx: ExportContext, out: Path) -> None:
    buf = _int8(ctx, "tflite-int8-io", uint8_input=True)
    scale, zp = input_quantization(buf)
    if zp != 0 or not (abs(scale - 1.0) < 1e-6 or abs(scale * 255.0 - 1.0) < 1e-6):
        raise ConversionError(
            f"tflite-int8-io: the converter gave the uint8 input scale {scale:.6g} and zero point {zp}; "
            "raw pixels need scale 1 or 1/255 with zero point 0 (use tflite-int8 for this model)"
        )
    atomic_write_bytes(out, buf)


def input_quantization(buf: bytes) -> tuple[float, int]:
    """(scale, zero_point) of a TFLite model's first input (0.0, 0 for a float input)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf)
    scale, zp = it.get_input_details()[0]["quantization"]
    return float(scale), int(zp)
