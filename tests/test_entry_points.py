"""One way in, one log, one data path (docs/DESIGN.md, "Entry points"):

- every ``python -m edge_dfd.<x>`` works (``--help``: exit 0, a usage text, no traceback), and no other module of
  the package has a ``__main__`` (the bench worker is started with ``python -c``, not as an entry point);
- ``edge_dfd.core.progress.log`` is the only log helper: no other module of edge_dfd/, benchmarks/ or tools/
  defines a ``log`` / ``_log`` of its own;
- ``benchmarks.common`` is the only place that resolves the shared data sets (``$EDGE_DFD_SHARED_DATA`` or
  ../shared/data); the package never does."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edge_dfd"
# python -m X -> what it is (docs/DESIGN.md lists the same)
ENTRIES = {
    "edge_dfd": "the edge-dfd command",
    "edge_dfd.runtime.zoo": "check / rewrite the bundled model's manifest",
    "edge_dfd.runtime.calibrate": "rewrite the bundled cascade calibration tables",
    "edge_dfd.images.align": "measure / check the face TEMPLATE",
}
LOG_OWNER = "edge_dfd/core/progress.py"
SHARED_OWNER = "benchmarks/common.py"


def _py_files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _is_main_guard(node) -> bool:
    """``if __name__ == "__main__":``"""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators))


def package_entries() -> set[str]:
    """Every module of edge_dfd/ that ``python -m`` can run: a ``__main__.py`` (its package) or a module with a
    ``__main__`` guard."""
    out = set()
    for path in _py_files("edge_dfd"):
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name == "__main__.py":
            out.add(mod.rsplit(".", 1)[0])
        elif any(_is_main_guard(n) for n in ast.parse(path.read_text()).body):
            out.add(mod)
    return out


def test_no_other_python_m_entry_exists():
    assert package_entries() == set(ENTRIES)
    assert not (PKG / "bench" / "__main__.py").exists()


@pytest.mark.parametrize("module", sorted(ENTRIES))
def test_python_m_help_works(module):
    res = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr + res.stdout and "Warning" not in res.stderr, res.stderr
    assert res.stdout.lower().startswith("usage:") and "--help" in res.stdout, res.stdout[:300]


def test_bench_is_not_a_python_m_entry():
    """The old worker entry is gone: ``python -m edge_dfd.bench`` says so in one line instead of a traceback."""
    res = subprocess.run([sys.executable, "-m", "edge_dfd.bench"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "is a package and cannot be directly executed" in res.stderr and res.stderr.count("\n") == 1


def test_one_log_helper():
    """No module defines its own ``log`` / ``_log`` (function or module-level name): they all take
    ``edge_dfd.core.progress.log`` (stderr, above progress bars, ``HH:MM:SS`` with ``set_log_stamp``)."""
    own = []
    for path in _py_files("edge_dfd", "benchmarks", "tools"):
        rel = str(path.relative_to(ROOT))
        if rel == LOG_OWNER:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ("log", "_log"):
                own.append(f"{rel}:{node.lineno} def {node.name}")
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AnnAssign, ast.AugAssign)) else []
            own += [f"{rel}:{node.lineno} {t.id} = ..." for t in targets
                    if isinstance(t, ast.Name) and t.id in ("log", "_log")]
    assert not own, own


def test_the_log_helper_writes_one_stderr_line(capsys, monkeypatch):
    from edge_dfd.core import progress

    monkeypatch.setattr(progress, "_stamp", False)
    progress.log("wrote", Path("a/b.json"), 3)
    assert capsys.readouterr() == ("", "wrote a/b.json 3\n")
    progress.set_log_stamp(True)
    progress.log("step", 1)
    out, err = capsys.readouterr()
    assert out == "" and err[2] == err[5] == ":" and err[8:] == " step 1\n" and err[:8].replace(":", "").isdigit()


def _resolves_shared_data(path: Path) -> list[int]:
    """Lines that read ``$EDGE_DFD_SHARED_DATA`` (os.environ.get / os.getenv / os.environ[...] read) or build a
    ``... / "shared"`` path."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and node.args[0].value == "EDGE_DFD_SHARED_DATA":
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and isinstance(node.slice, ast.Constant) and node.slice.value == "EDGE_DFD_SHARED_DATA":
            lines.append(node.lineno)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                and isinstance(node.right.value, str) and node.right.value.strip("/").startswith("shared"):
            lines.append(node.lineno)
    return lines


def test_one_place_resolves_the_shared_data():
    where = {str(p.relative_to(ROOT)): n for p in _py_files("edge_dfd", "benchmarks", "tools", "tests")
             if (n := _resolves_shared_data(p))}
    assert list(where) == [SHARED_OWNER], where


def test_the_resolver_follows_the_environment(tmp_path):
    code = "from benchmarks.common import FACES140K, SHARED, TPDNE128; print(SHARED, FACES140K, TPDNE128)"
    env_run = lambda env: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: E731
                                         timeout=120, cwd=ROOT, env=env).stdout.split()
    env = {k: v for k, v in os.environ.items() if k != "EDGE_DFD_SHARED_DATA"}
    beside = os.path.join(ROOT.parent, "shared", "data")  # ../shared/data beside the repository
    assert env_run(env) == [beside, os.path.join(beside, "faces140k-sample"), os.path.join(beside, "ffhq-tpdne-128")]
    assert env_run({**env, "EDGE_DFD_SHARED_DATA": str(tmp_path)})[0] == str(tmp_path)
