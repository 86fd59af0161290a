"""``edge-dfd convert``'s settings (``edge_dfd.core.options``): each field's default, help and choices, from which
the CLI builds its options; ``convert_model`` shares the defaults (tests/test_options_owner.py compares them)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_dfd.core.formats import CALIB_N, DEFAULT_OPSET, EXPORT_FORMATS, ONNX_OPSETS, VERIFY_N
from edge_dfd.core.options import listing, setting


@dataclass
class ConvertOptions:
    """``edge-dfd convert MODEL`` (``edge_dfd.export.convert.convert_model``)."""

    formats: str = setting("all", help=f"'all' or a comma list: {listing(EXPORT_FORMATS)}.")
    calib_data: str | None = setting(None, kind="path",
                                     help="Dataset folder: its train split calibrates int8 (its valid split when the "
                                          "train split has too few), its valid split verifies every export [default: "
                                          "the data folder recorded in the model by `edge-dfd train`].")
    calib_size: int = setting(CALIB_N, range=(1, None), help="Class-stratified calibration images (int8 formats).")
    verify_size: int = setting(VERIFY_N, range=(1, None), opts=("--verify-n", "--verify-size"),
                               help="Labelled valid-split images (never calibration images) each export is checked "
                                    "on; all of them when the split has fewer (a note says so).")
    out: str | None = setting(None, kind="dir",
                              help="Output folder [default: next to MODEL; exports/default for 'default'].")
    opset: int = setting(DEFAULT_OPSET, range=(ONNX_OPSETS.start, ONNX_OPSETS.stop - 1), help="ONNX opset.")
    no_verify: bool = setting(False, flag=True, help="Skip the parity check against the Keras model.")
    keep_threshold: bool = setting(False, flag=True,
                                   help="Give int8 files the Keras threshold as is [default: re-match it on the "
                                        "calibration images (at least 50) so the int8 verdicts reproduce the Keras "
                                        "ones].")
    unsafe: bool = setting(False, flag=True,
                           help="Allow Lambda layers (runs code stored in the file: trusted files only).")
