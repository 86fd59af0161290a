"""The settings owned by the runtime layer (``edge_dfd.core.options``): the model choice shared by the commands
that run a model, ``edge-dfd predict``'s, and the ``--escalate`` cascade's (predict, evaluate, scan, bench, live)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_dfd.core.formats import FORMATS
from edge_dfd.core.options import setting

DEFAULT_FRACTION = 0.2  # --escalate: expected share of faces sent to the second model

MODEL_HELP = ("Model file (.keras/.tflite/.onnx), 'default' (the bundled single-pass detector) or 'ten-pass' "
              "(the previous ten-pass one).")
PROVIDER_HELP = "ONNX execution provider (default CPUExecutionProvider)."


@dataclass
class EscalateSettings:
    """``--escalate MODEL`` (a Cascade: ``edge_dfd.runtime.cascade.load_cascade``). ``escalate_fraction`` None:
    ``DEFAULT_FRACTION`` (None on the command line tells "not given" from "given without --escalate")."""

    escalate: str | None = setting(None, metavar="MODEL",
                                   help="Second, stronger model ('ten-pass' or a model file) for the faces the first "
                                        "model is least sure about (docs/cascade.md); each result says which stage "
                                        "decided.")
    escalate_fraction: float | None = setting(None, range=(0, 1), kind="float", metavar="F",
                                              help="Expected share of faces sent to the --escalate model, 0..1 "
                                                   f"[default: {DEFAULT_FRACTION}].")
    calib_data: list = setting([], multiple=True, kind="dir", metavar="DIR",
                               help="Dataset folder(s) whose valid split calibrates the --escalate pair (needed once "
                                    "for a pair other than default -> ten-pass; cached, see docs/cascade.md).")


@dataclass
class PredictOptions:
    """``edge-dfd predict``: which model and how to run it (``load_model``, ``run_predict``); with ``EscalateSettings``."""

    model: str = setting("default", short="-m", help=MODEL_HELP)
    format: str | None = setting(None, choices=FORMATS,
                                 help="Format of the bundled model to use with --model default or ten-pass (ten-pass "
                                      "ships tflite-int8 only).")
    threads: int | None = setting(None, range=(1, None), kind="int", help="Inference threads (default: all cores).")
    batch_size: int = setting(32, range=(1, None))
    provider: str | None = setting(None, help=PROVIDER_HELP)
    out: str | None = setting(None, kind="file",
                              help="Also write the results to a .csv or .jsonl file (written atomically).")
