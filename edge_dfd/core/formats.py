"""ONE table of model formats, keyed by name. The CLI choices, converters, bench and tests loop over it.

Adding a format = one row here + one converter function registered in ``edge_dfd.export.routes``.

What ``edge-dfd convert`` checks against the source Keras model on its verification images
(``edge_dfd.export.gate.problems``):

* float formats (not ``quantized``): numeric parity, a bug check - max / mean |delta P(fake)| within
  ``max_abs_diff`` / ``mean_abs_diff`` and verdict agreement >= ``min_agreement``;
* integer formats: what users see, in two steps. *Shown worse* (status "failed", exit 3): verdict agreement
  whose upper 95 % bound is below ``min_agreement``, a significant (sign test / DeLong, p < 0.05) loss of
  accuracy or ROC AUC larger than ``max_accuracy_drop`` / ``max_auc_drop``, a collapse to one class, or a
  systematic shift of the probabilities (median |dP| above ``max_median_abs_diff``). *Shown no worse* (status
  "ok"): the one-sided upper 95 % bounds of the paired accuracy loss and ROC AUC loss against the source are both
  within the non-inferiority margin (``NONINFERIORITY_MARGIN``, = ``max_accuracy_drop`` / ``max_auc_drop``).
  Neither: "unproven" (exit 4, file written). Their max / mean |dP| are reported, not gated (one outlier image
  must not fail a file that gives the same answers).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_dfd.core.errors import EdgeDFDError, ModelError
from edge_dfd.core.util import did_you_mean


@dataclass(frozen=True)
class Format:
    name: str  # CLI value, e.g. "tflite-int8"
    suffix: str  # file suffix
    tag: str  # file-name tag: <stem><tag><suffix>
    runtime: str  # "keras" | "tflite" | "onnx"
    input_dtype: str  # "float32" (raw 0..255 pixel values) or "uint8"
    quantized: bool
    max_abs_diff: float  # allowed max |dp| vs Keras on the verification set
    mean_abs_diff: float  # allowed mean |dp|
    min_agreement: float  # allowed fraction of identical verdicts at the model's threshold (int8: upper 95 % bound)
    description: str
    max_accuracy_drop: float = 0.0  # int8: the margin: a significant larger loss fails; "ok" needs its bound within
    max_auc_drop: float = 0.0  # int8: the same for ROC AUC
    max_median_abs_diff: float = 1.0  # int8: the typical |dP| (robust to outliers): a broken calibration

    def filename(self, stem: str) -> str:
        return f"{stem}{self.tag}{self.suffix}"


# The non-inferiority margin of quantised files (the one owner): "ok" needs the one-sided upper 95 % bounds of the
# paired accuracy and ROC AUC losses against the source model within it; a significant larger loss fails.
NONINFERIORITY_MARGIN = 0.03
VERIFY_N = 2000  # `convert`: default labelled verification images (all of the valid split when it has fewer)
CALIB_N = 200  # `convert`: default calibration images
# int8 rows: max / mean |dP| are reported only; the gate is agreement (upper 95 % bound >= 0.90) and accuracy / AUC
INT8_GATE = {"max_accuracy_drop": NONINFERIORITY_MARGIN, "max_auc_drop": NONINFERIORITY_MARGIN,
             "max_median_abs_diff": 0.10}

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("keras", ".keras", "", "keras", "float32", False, 0.0, 0.0, 1.0, "Keras 3 source model"),
        Format("tflite-fp32", ".tflite", "_fp32", "tflite", "float32", False, 1e-4, 1e-5, 1.0, "LiteRT float32"),
        # fp16 weight rounding moves a confident fine-tuned model's logit by ~0.1: up to ~0.03 in p near 0.5
        Format("tflite-fp16", ".tflite", "_fp16", "tflite", "float32", False, 5e-2, 2e-3, 0.98, "LiteRT float16 weights"),
        Format("tflite-int8", ".tflite", "_int8", "tflite", "float32", True, 0.30, 0.05, 0.90,
               "LiteRT full-integer int8, float32 input/output", **INT8_GATE),
        Format("tflite-int8-io", ".tflite", "_int8io", "tflite", "uint8", True, 0.30, 0.05, 0.90,
               "LiteRT full-integer int8, uint8 input (raw pixels straight in)", **INT8_GATE),
        Format("onnx", ".onnx", "", "onnx", "float32", False, 1e-4, 1e-5, 1.0, "ONNX float32"),
        Format("onnx-int8", ".onnx", "_int8", "onnx", "float32", True, 0.30, 0.05, 0.90,
               "ONNX static QDQ int8, per-channel, calibrated; 7-bit weights (safe on every CPU)", **INT8_GATE),
        Format("onnx-int8-arm", ".onnx", "_int8arm", "onnx", "float32", True, 0.30, 0.05, 0.90,
               "ONNX static QDQ int8, full 8-bit weights: for ARM64 and x86 with VNNI (run in float elsewhere)", **INT8_GATE),
    )
}

EXPORT_FORMATS = tuple(n for n in FORMATS if n != "keras")
RUNTIME_OF_SUFFIX = {f.suffix: f.runtime for f in FORMATS.values()}  # {".keras": "keras", ".tflite": ..., ".onnx": ...}
SUFFIXES = tuple(RUNTIME_OF_SUFFIX)
DEFAULT_OPSET = 15  # ONNX opset of `edge-dfd convert` (the converters and the CLI option)
ONNX_OPSETS = range(11, 19)  # tf2onnx 1.17: 11..18 work; 19/20 "not supported yet"


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise EdgeDFDError(_unknown(name)) from None


def parse_formats(spec: str | None, allow_keras: bool = False) -> list[Format]:
    """'all' or 'a,b,c' -> list of Format, in table order; one-line error with suggestions otherwise."""
    allowed = [n for n in FORMATS if allow_keras or n != "keras"]
    if spec is None or spec.strip().lower() in ("", "all"):
        return [FORMATS[n] for n in allowed]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise EdgeDFDError(f"no format names in {spec!r}. Valid formats: {', '.join(allowed)}, or 'all'.")
    bad = [n for n in names if n not in allowed]
    if bad:
        raise EdgeDFDError(_unknown(bad[0], allowed))
    return [FORMATS[n] for n in allowed if n in names]


def _unknown(name: str, allowed=None) -> str:
    allowed = list(allowed or FORMATS)
    return f"unknown format '{name}'.{did_you_mean(name, allowed)} Valid formats: {', '.join(allowed)}, or 'all'."


def format_of_file(path) -> Format | None:
    """Best guess of a file's format from its name (metadata, when present, is authoritative): the row whose
    tag and suffix end the name, else the first row with that suffix; None for a suffix no format has."""
    from pathlib import Path

    p = Path(path)
    name = p.name
    for f in FORMATS.values():
        if f.tag and name.endswith(f.tag + f.suffix):
            return f
    return next((f for f in FORMATS.values() if f.suffix == p.suffix.lower()), None)


def runtime_of_file(path) -> str:
    """The runtime (``Format.runtime``) that loads ``path``, from its suffix through FORMATS; a one-line
    ModelError naming the file and the accepted suffixes otherwise."""
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix not in RUNTIME_OF_SUFFIX:
        raise ModelError(f"{path}: unknown model type '{Path(path).suffix}' (expected {', '.join(SUFFIXES)})")
    return RUNTIME_OF_SUFFIX[suffix]
