"""The import rules of docs/DESIGN.md, checked on the source (every import statement, also inside functions):
the runtime side never imports TensorFlow or the converters; benchmarks/ and tools/ are `python -m` modules that
never edit sys.path and never import from tests/; no module in edge_dfd/ grows past the size one can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edge_dfd"
# modules that run on a Raspberry Pi install (no TensorFlow, no converters)
RUNTIME_SIDE = ["runtime/__init__.py", "runtime/base.py", "runtime/tflite.py", "runtime/onnx.py", "live/__init__.py",
                "live/app.py", "live/pipeline.py", "live/sources.py", "live/web.py", "live/web_guard.py",
                "live/web_page.py", "faces.py", "align.py",
                "scan.py", "verdicts.py", "util.py", "preprocess.py", "tracking.py", "outputs.py", "health.py",
                "signals.py", "zoo.py", "meta.py", "metrics.py", "formats.py", "perturb.py", "progress.py"]
HEAVY = ("tensorflow", "keras", "tf2onnx", "edge_dfd.converters", "edge_dfd.convert", "edge_dfd.train",
         "sklearn", "scipy", "matplotlib")
MAX_LINES = 450  # "no module over ~400 lines"


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("rel", RUNTIME_SIDE)
def test_runtime_side_never_imports_tensorflow_or_converters(rel):
    path = PKG / rel
    assert path.is_file(), rel
    bad = sorted(m for m in imports(path) if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not bad, f"{rel} imports {bad}"


def test_scripts_do_not_edit_sys_path_or_import_tests():
    bad = []
    for folder in ("benchmarks", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            if "sys.path.insert" in text or "sys.path.append" in text:
                bad.append(f"{rel}: edits sys.path")
            mods = imports(path)
            if any(m == "tests" or m.startswith("tests.") or m in ("conftest", "test_live", "synth") for m in mods):
                bad.append(f"{rel}: imports from tests/")
    assert not bad, bad


def test_modules_fit_in_a_head():
    big = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, big
