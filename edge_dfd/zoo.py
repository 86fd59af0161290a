"""The bundled default model: ``edge_dfd/assets/default/detector<tag><suffix>`` per format, plus MODEL_CARD.md.

``--model default`` (predict, live) loads ``DEFAULT_FORMAT``; ``edge-dfd bench`` with no arguments
measures every format present.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_dfd.errors import ModelError
from edge_dfd.formats import FORMATS, get_format

DEFAULT_DIR = Path(__file__).parent / "assets" / "default"
STEM = "detector"
DEFAULT_FORMAT = "tflite-fp32"  # what `--model default` loads in predict / live: exact vs Keras; int8 is not faster on x86 without VNNI (use --format tflite-int8 on Arm)
MODEL_CARD = "MODEL_CARD.md"


def default_dir() -> Path:
    """Folder of the bundled model; ``EDGE_DFD_DEFAULT_MODEL_DIR`` points it elsewhere (your own model set)."""
    return Path(os.environ.get("EDGE_DFD_DEFAULT_MODEL_DIR") or DEFAULT_DIR)


def default_path(format: str | None = None) -> Path:
    """Path of the bundled model in ``format`` (default ``DEFAULT_FORMAT``); ModelError if it is missing."""
    fmt = get_format(format or DEFAULT_FORMAT)
    p = default_dir() / fmt.filename(STEM)
    if not p.is_file():
        have = available_formats()
        listed = ", ".join(have) if have else "none"
        raise ModelError(
            f"the bundled default model is missing in format '{fmt.name}' ({p} not found; "
            f"bundled formats: {listed}). Pass a model file with --model PATH"
        )
    return p


def available_formats() -> list[str]:
    """Names of the formats whose bundled file exists, in FORMATS order."""
    d = default_dir()
    return [name for name, f in FORMATS.items() if (d / f.filename(STEM)).is_file()]


def model_card() -> Path | None:
    p = default_dir() / MODEL_CARD
    return p if p.is_file() else None
