"""A module imported on first use: test modules that need TensorFlow / Keras say so without importing it while
pytest collects (each xdist worker would otherwise pay TensorFlow's ~8 s import before running anything)."""

from __future__ import annotations

import importlib
import importlib.util

import pytest


class _Lazy:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("_") or attr == "pytestmark":  # pytest's collection probes these: no reason to import
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)


# the install extra (pyproject.toml) that brings each module the tests import lazily
EXTRAS = {"tensorflow": "train", "keras": "train", "sklearn": "dev"}


def lazy_module(name: str):
    """``name`` as a lazily imported module; the whole test module is skipped (with a reason naming the extra that
    installs it) when it is absent."""
    if importlib.util.find_spec(name) is None:
        extra = EXTRAS.get(name, "train")
        pytest.skip(f"could not import {name!r}: not installed (pip install -e '.[{extra}]')", allow_module_level=True)
    return _Lazy(name)
