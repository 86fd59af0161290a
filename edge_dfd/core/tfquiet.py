"""TensorFlow's start-up log noise, silenced in one place (standard library only; imports no TensorFlow).

``install()`` runs first thing in every command (``edge_dfd.cli.main``) and
in ``benchmarks.common`` (every ``python -m benchmarks.X``). Before TensorFlow is imported it

- sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the environment already sets it (C++ INFO and WARNING lines off: oneDNN,
  ``cpu_feature_guard``, tf.data notes; errors stay), inherited by child processes (bench's workers);
- filters stderr (file descriptor 2) only while ``import tensorflow`` runs: TensorFlow 2.21 prints the absl
  "All log messages before absl::InitializeLog()" warning and the oneDNN note while loading its libraries, before
  it reads ``TF_CPP_MIN_LOG_LEVEL``; those lines (``TF_NOISE``) are dropped, any other line is passed on;
- sets the ``tensorflow`` and ``absl`` Python loggers to ERROR once TensorFlow is loaded.

``filtered_stderr(LITERT_NOISE)`` also drops LiteRT's "Created TensorFlow Lite XNNPACK delegate" line where a
.tflite interpreter is built (``edge_dfd.runtime.tflite``).

``EDGE_DFD_DEBUG=1`` turns all of it off (every TensorFlow line comes back, and errors show their traceback).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import tempfile

DEBUG_ENV = "EDGE_DFD_DEBUG"
LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "2"


def debug() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


# start-up lines dropped (substrings); any other line written meanwhile is passed on
TF_NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
            "cpu_feature_guard", "To enable the following instructions:", "rebuild TensorFlow with the appropriate")
LITERT_NOISE = ("Created TensorFlow Lite XNNPACK delegate for CPU",)


@contextlib.contextmanager
def filtered_stderr(noise: tuple[str, ...]):
    """Send file descriptor 2 (where C/C++ libraries write, not through sys.stderr) to a temporary file for the
    block, then write back every line that contains none of ``noise``. Nothing is filtered when EDGE_DFD_DEBUG=1."""
    if debug():
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
        held = tempfile.TemporaryFile()
    except OSError:  # no fd 2 (a detached process) or no temporary folder: filter nothing
        yield
        return
    try:
        os.dup2(held.fileno(), 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        held.seek(0)
        kept = [ln for ln in held.read().splitlines(keepends=True)
                if not any(n.encode() in ln for n in noise)]
        held.close()
        if kept:
            with contextlib.suppress(OSError):
                os.write(2, b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader's exec_module with stderr hidden, then hands the module its real loader back."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        with filtered_stderr(TF_NOISE):
            self.loader.exec_module(module)
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _Finder(importlib.abc.MetaPathFinder):
    """Catches the first ``import tensorflow`` (also the one inside ``import keras``); one shot."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Silence TensorFlow's start-up noise for this process and its children (nothing when EDGE_DFD_DEBUG=1)."""
    if debug():
        return
    os.environ.setdefault(LEVEL_ENV, QUIET_LEVEL)
    if "tensorflow" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
