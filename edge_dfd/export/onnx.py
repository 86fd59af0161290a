"""ONNX exports from the call's one SavedModel (tf2onnx), the route that works for every architecture
(``from_function`` / Keras's own ONNX export break on EfficientNet's Normalization constants).

* ``onnx``       float32, opset ``ctx.opset`` (default 15; tf2onnx 1.17 supports 11..18).
* ``onnx-int8``  ``onnxruntime.quantization.quantize_static``: QDQ, per-channel int8 weights, uint8
  activations, 7-bit weight range (``reduce_range``: x86 CPUs without VNNI saturate the u8 x s8 products
  otherwise; on the bundled model it lifted test accuracy from 0.65 to 0.86 on an AVX2 machine) for
  every weight except depthwise convolutions, which keep the full 8-bit range (their kernels accumulate
  in 32 bits, so they cannot saturate, and 9-tap filters are the layers that lose most from a lost bit:
  on the bundled model mean |dP| vs fp32 fell from 0.091 to 0.057 (140k valid) and 0.043 to 0.029
  (tpdne valid), at the same speed within this VM's noise), MinMax calibration over ``ctx.calib`` (real validation images), after
  ``quant_pre_process`` (shape inference without sympy). ``quantize_dynamic`` is not offered: it is
  slower than fp32 for convolutions on CPU. Compared with what else static quantisation offers (per-tensor
  weights, QOperator, Entropy / Percentile calibration, the head and / or the first convolution in float) on the
  bundled model, judged by the convert gate's loss bounds, none beats this recipe
  (``python -m benchmarks.onnx_int8_variants``, benchmarks/results/onnx_int8_variants.md).
* ``onnx-int8-arm``  the same with every weight at the full 8-bit range, for CPUs whose int8 kernels cannot
  saturate (ARM64 such as a Raspberry Pi, x86 with AVX512-VNNI / AVX-VNNI). On the bundled model its
  non-saturating result is within a point of fp32 (mean |dP| 0.025 / 0.019 vs 0.057 / 0.029 for
  ``onnx-int8``). On x86 without VNNI it would saturate, so ``edge_dfd.runtime.onnx`` runs it there with
  onnxruntime's QDQ fusion off (Quantize/DequantizeLinear + float kernels: the same arithmetic, float speed).
"""

from __future__ import annotations

from pathlib import Path

from edge_dfd.core.errors import ConversionError, require
from edge_dfd.core.fsutil import atomic_path
from edge_dfd.core.util import first_line
from edge_dfd.export.routes import ONNX_OPSETS, ExportContext, register


def check_opset(opset: int) -> int:
    if int(opset) not in ONNX_OPSETS:
        raise ConversionError(
            f"--opset {opset} is not supported (tf2onnx supports {ONNX_OPSETS.start}..{ONNX_OPSETS.stop - 1})"
        )
    return int(opset)


def _export_fp32(ctx: ExportContext, out: Path) -> None:
    require("tensorflow", "ONNX conversion")
    tf2onnx = require("tf2onnx", "ONNX conversion")
    onnx = require("onnx", "ONNX conversion")
    from tf2onnx import tf_loader

    opset = check_opset(ctx.opset)
    _quiet()
    try:
        graph_def, inputs, outputs, tensors_to_rename = tf_loader.from_saved_model(
            str(ctx.saved_model()), None, None, signatures=["serving_default"], return_tensors_to_rename=True
        )
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, name=ctx.model.name, input_names=inputs, output_names=outputs, opset=opset,
            tensors_to_rename=tensors_to_rename,
        )
    except ConversionError:
        raise
    except Exception as exc:  # tf2onnx raises ValueError, KeyError, RuntimeError...
        raise ConversionError(f"onnx conversion failed: {first_line(exc, 300)}") from None
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))


def _quiet() -> None:
    """tf2onnx logs recoverable optimizer failures as tracebacks, TF logs v1 deprecations: keep stderr clean."""
    import logging

    for name in ("tf2onnx", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)


def onnx_fp32_path(ctx: ExportContext) -> Path:
    """The call's fp32 ONNX file (written once into the temp folder, reused by onnx-int8)."""
    if ctx._onnx_fp32 is None:
        p = ctx.tmp / "model_fp32.onnx"
        _export_fp32(ctx, p)
        ctx._onnx_fp32 = p
    return ctx._onnx_fp32


@register("onnx")
def onnx_fp32(ctx: ExportContext, out: Path) -> None:
    import shutil

    src = onnx_fp32_path(ctx)
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)


class _Reader:
    """onnxruntime CalibrationDataReader over the calibration images, one image per batch."""

    def __init__(self, input_name: str, ctx: ExportContext, desc: str = "calibrating"):
        self.name, self.ctx, self.desc = input_name, ctx, desc
        self.it = iter(ctx.calib_batches(desc=desc))

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x}

    def rewind(self):
        self.it = iter(self.ctx.calib_batches(desc=self.desc))


@register("onnx-int8")
def onnx_int8(ctx: ExportContext, out: Path) -> None:
    _quantize(ctx, out, "onnx-int8", full_range=False)


@register("onnx-int8-arm")
def onnx_int8_arm(ctx: ExportContext, out: Path) -> None:
    _quantize(ctx, out, "onnx-int8-arm", full_range=True)


def _quantize(ctx: ExportContext, out: Path, name: str, full_range: bool) -> None:
    """QDQ int8 of the call's fp32 ONNX file. ``full_range``: every weight uses the full int8 range (for
    CPUs whose int8 kernels accumulate in 32 bits: ARM64, x86 with VNNI); else 7 bits except depthwise."""
    ctx.require_calib(name)
    q = require("onnxruntime.quantization", "ONNX int8 quantisation")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    ort = require("onnxruntime", "ONNX int8 quantisation")
    src = onnx_fp32_path(ctx)
    pre = ctx.tmp / "model_pre.onnx"
    try:
        if not pre.is_file():  # shared by onnx-int8 and onnx-int8-arm in one call
            with atomic_path(pre) as tmp:
                quant_pre_process(str(src), str(tmp), skip_symbolic_shape=True)
        name_in = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        extra = {} if full_range else {"TensorQuantOverrides": full_range_depthwise(pre)}
        with atomic_path(out) as tmp:
            q.quantize_static(
                str(pre), str(tmp), _Reader(name_in, ctx, f"{name}: calibrating"),
                quant_format=q.QuantFormat.QDQ, per_channel=True,
                activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                calibrate_method=q.CalibrationMethod.MinMax, reduce_range=not full_range,
                extra_options=extra,
            )
    except ConversionError:
        raise
    except Exception as exc:  # onnxruntime.quantization raises many types
        raise ConversionError(f"{name} quantisation failed: {first_line(exc, 300)}") from None


def depthwise_weights(model) -> dict[str, int]:
    """{weight initializer name: output channels} of the depthwise Conv nodes (group == out channels > 1)."""
    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in inits:
            continue
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        channels = int(inits[n.input[1]].dims[0])
        if group > 1 and group == channels:
            out[n.input[1]] = channels
    return out


def range_overrides(weights: dict[str, int], reduce_range: bool) -> dict:
    """TensorQuantOverrides setting ``reduce_range`` for per-channel weights {name: output channels}: one dict per
    output channel, the first naming the axis (what onnxruntime requires)."""
    return {w: [{"reduce_range": reduce_range, "axis": 0}] + [{"reduce_range": reduce_range}] * (c - 1)
            for w, c in weights.items()}


def full_range_depthwise(path) -> dict:
    """TensorQuantOverrides giving depthwise weights the full int8 range while ``reduce_range`` holds for the rest."""
    import onnx

    return range_overrides(depthwise_weights(onnx.load(str(path), load_external_data=False)), False)
