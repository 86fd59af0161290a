"""User-facing errors. The CLI prints ``error: <message>`` for these and exits with ``exit_code``.

Exit codes (documented in the README): 0 ok, 1 error, 2 usage error (click), 3 quality gate failed
(``bench --floor``, ``convert`` verification), 4 ``convert``: a quantised file not shown worse but not proven
within the margin either ("unproven"; files written), 130 interrupted; ``live`` stopped by SIGTERM / SIGHUP: 143 / 129.
"""

from __future__ import annotations

import importlib


class EdgeDFDError(Exception):
    """An error caused by the user's input or environment, reported in one line without a traceback."""

    exit_code = 1


class UsageError(EdgeDFDError):
    """An option value that can only be judged once the data is read (e.g. ``--sample`` larger than the split)."""

    exit_code = 2


class DataError(EdgeDFDError):
    """Bad dataset layout, CSV contents or image files."""


class ImageError(DataError):
    """One image could not be read. Batch commands skip and report these."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelError(EdgeDFDError):
    """A model file that cannot be loaded or is not what was expected."""


class ConversionError(EdgeDFDError):
    """An export failed."""


class VerificationError(ConversionError):
    """An exported model disagrees with its source beyond its format's tolerance."""

    exit_code = 3


class UnprovenError(ConversionError):
    """A quantised export is not shown worse than its source, but its verification images cannot show it is within
    the non-inferiority margin either (``edge_dfd.export.gate.judge``); the file is written."""

    exit_code = 4


class QualityGateError(EdgeDFDError):
    """A measured quality is below the requested floor."""

    exit_code = 3


class MissingDependency(EdgeDFDError):
    """An optional dependency is not installed."""


_EXTRA_FOR = {
    "tensorflow": "train",
    "keras": "train",
    "tf2onnx": "train",
    "onnx": "train",
    "torch": "port",
    "picamera2": None,
}


def require(module: str, purpose: str):
    """Import ``module`` or raise MissingDependency naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_FOR.get(top)
        how = f"pip install 'edge-dfd[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependency(f"{purpose} requires {top} ({exc}); install it with {how}") from None
