"""The import rules of docs/DESIGN.md, checked on the source (every import statement, also inside functions):
the runtime side never imports TensorFlow or the converters; benchmarks/ and tools/ are `python -m` modules that
never edit sys.path and never import from tests/; no module grows past the size one can hold
(400 lines in edge_dfd/, 500 in benchmarks/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edge_dfd"
# the layers, bottom up: a module imports only from its own folder or a folder of a lower rank (docs/DESIGN.md).
# train, export and video stand side by side (none imports another); cli is the top.
LAYERS = {"core": 0, "images": 1, "modelling": 2, "runtime": 3, "train": 4, "export": 4, "video": 4, "bench": 5,
          "cli": 6}
# modules that run on a Raspberry Pi install (no TensorFlow, no converters): every import statement is checked.
# runtime/keras.py is the .keras backend (TensorFlow, imported only when a .keras file is loaded).
RUNTIME_SIDE = sorted(str(p.relative_to(PKG)) for layer in ("core", "images", "runtime", "video")
                      for p in (PKG / layer).glob("*.py") if p.name != "keras.py" or layer != "runtime")
HEAVY = ("tensorflow", "keras", "tf2onnx", "edge_dfd.export", "edge_dfd.train", "edge_dfd.modelling",
         "sklearn", "scipy", "matplotlib")
# core/report.py draws the optional PNG plots (the [plots] extra): matplotlib inside that one function only
ALLOWED = {"core/report.py": {"matplotlib", "matplotlib.pyplot"}}
MAX_LINES = {"edge_dfd": 400, "benchmarks": 500}  # the most lines a module of each folder may have


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
    bad = sorted(m for m in imports(path) - ALLOWED.get(rel, set())
                 if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not bad, f"{rel} imports {bad}"


TEST_MODULES = {p.stem for p in (ROOT / "tests").glob("*.py")}  # conftest, the helpers and the test modules


def test_scripts_do_not_edit_sys_path_or_import_tests():
    bad = []
    for folder in ("benchmarks", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            if "sys.path.insert" in text or "sys.path.append" in text:
                bad.append(f"{rel}: edits sys.path")
            mods = imports(path)
            if any(m == "tests" or m.startswith("tests.") or m.split(".")[0] in TEST_MODULES for m in mods):
                bad.append(f"{rel}: imports from tests/")
    assert not bad, bad


@pytest.mark.parametrize("folder", sorted(MAX_LINES))
def test_modules_fit_in_a_head(folder):
    paths = sorted((ROOT / folder).rglob("*.py"))
    assert paths, folder
    big = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES[folder]}
    assert not big, f"over {MAX_LINES[folder]} lines: {big}"


def _edge_imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "edge_dfd" else [])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for m in names:
            if m.startswith("edge_dfd.") and m.split(".")[1] in LAYERS:
                yield node.lineno, m


def test_every_module_sits_in_a_layer_folder():
    loose = sorted(p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, f"modules outside the layer folders: {loose}"
    folders = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert folders == sorted(LAYERS), folders


def test_layers_import_only_downward():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if len(rel.parts) < 2:
            continue
        own = rel.parts[0]
        for line, mod in _edge_imports(path):
            to = mod.split(".")[1]
            if to != own and LAYERS[to] >= LAYERS[own]:
                bad.append(f"edge_dfd/{rel}:{line} ({own}) imports {mod} ({to})")
    assert not bad, bad


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The direction test can fail: a core module that imports the video layer is named."""
    fake = tmp_path / "edge_dfd"
    (fake / "core").mkdir(parents=True)
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "x.py").write_text("from edge_dfd.video.pipeline import LivePipeline\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    with pytest.raises(AssertionError, match=r"core/x.py:1 \(core\) imports edge_dfd.video.pipeline"):
        test_layers_import_only_downward()


@pytest.mark.parametrize("module", ["edge_dfd.runtime", "edge_dfd.video", "edge_dfd.bench.plan",
                                    "edge_dfd.bench.report", "edge_dfd.bench.worker", "edge_dfd.bench.curve",
                                    "edge_dfd.bench.evaluate", "edge_dfd.cli"])
def test_runtime_video_and_bench_import_without_tensorflow(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'tf2onnx')); print(heavy); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"import {module} pulled in {r.stdout.strip()} {r.stderr[-500:]}"


def cross_test_imports(folder: Path) -> list[str]:
    """'file:line imports test_x' for every import of a test module by another file of the tests folder (shared
    helpers live in conftest.py or a helper module such as tests/stubs.py, never in a test module)."""
    tests = {p.stem for p in folder.glob("test_*.py")}
    bad = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] in tests or name.startswith("tests.test_"):
                    bad.append(f"{path.name}:{node.lineno} imports {name}")
    return bad


def test_test_modules_do_not_import_each_other(tmp_path):
    assert not cross_test_imports(ROOT / "tests"), cross_test_imports(ROOT / "tests")
    # the check can fail: a module-level and a function-level import of another test module are both named
    (tmp_path / "test_a.py").write_text("X = 1\n")
    (tmp_path / "test_b.py").write_text("import os\nfrom test_a import X\n\ndef f():\n    import test_a\n")
    (tmp_path / "helper.py").write_text("from test_a import X\n")
    assert cross_test_imports(tmp_path) == ["helper.py:1 imports test_a", "test_b.py:2 imports test_a",
                                            "test_b.py:5 imports test_a"]
