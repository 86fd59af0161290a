"""Benchmarks in a fresh clone (issue 29): each `python -m benchmarks.X` runs on what ships or stops with ONE line
naming what it needs and how to give it (benchmarks.common.need*), and never replaces committed results with an
empty or partial table (benchmarks.common.write_results)."""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import common

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "common", "synth", "mjpeg_server", "web_attack",  # libraries, no CLI
                                   "live_scenes", "live_fidelity", "live_speed",  # parts of benchmarks.live
                                   "quality_features", "quality_heads", "quality_ship", "quality_card",  # of .quality
                                   "arm64_root"))  # of benchmarks.arm64_emulated


def test_every_benchmark_is_listed():
    assert {"convert", "quality", "overhead", "bench_archs", "distribute", "live", "soak_live", "arm64_emulated",
            "install_size", "onnx_int8_variants"} <= set(MODULES)


def test_need_prints_one_line_and_exits_1(capsys):
    common.need(True, "x", "y")
    with pytest.raises(SystemExit) as e:
        common.need(False, "the thing", "give --thing")
    assert e.value.code == 1
    assert capsys.readouterr().err == "error: this benchmark needs the thing; give --thing\n"
    with pytest.raises(SystemExit):
        common.need_data(REPO / "no-such-set", flag="--data")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-set has none); give --data DIR (140k layout) or set EDGE_DFD_SHARED_DATA" in err
    with pytest.raises(SystemExit):
        common.need_module("no_such_module_xyz")
    assert "needs the Python package no_such_module_xyz; pip install -e '.[bench]'" in capsys.readouterr().err


def test_write_results_only_when_complete(tmp_path, capsys):
    table = tmp_path / "t.md"
    table.write_text("committed table\n")
    assert common.write_results({table: "", tmp_path / "t.json": {}}, complete=False) == []
    assert table.read_text() == "committed table\n" and not (tmp_path / "t.json").exists()
    assert "wrote nothing" in capsys.readouterr().err
    assert common.write_results({table: "new\n", tmp_path / "t.json": {"a": 1}}) == [table, tmp_path / "t.json"]
    assert table.read_text() == "new\n" and (tmp_path / "t.json").read_text() == '{\n  "a": 1\n}\n'


@pytest.mark.parametrize("name", MODULES)
def test_help(name, capsys):
    mod = importlib.import_module(f"benchmarks.{name}")
    with pytest.raises(SystemExit) as e:
        mod.main(["--help"])
    assert e.value.code == 0 and "usage:" in capsys.readouterr().out


def _fresh(*args, cwd=REPO):
    env = {**os.environ, "EDGE_DFD_SHARED_DATA": str(REPO / "no-shared-data-here"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args,needle", [
    (("benchmarks.quality", "features"), "needs labelled images with a train split"),
    (("benchmarks.live",), "needs labelled images with a test split"),
])
def test_fresh_clone_stops_with_one_line(args, needle):
    res = _fresh(*args)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: python -m {args[0]} {needle}"), res.stderr
    assert "EDGE_DFD_SHARED_DATA" in lines[0]


def test_convert_sweep_without_data_keeps_the_committed_tables(tmp_path):
    """`--archs "" --sweep-sizes 25,100` in a fresh clone: one line naming --calib-data (the bundled
    detector.keras exists), and convert.json / convert.md are left exactly as committed."""
    for f in ("convert.json", "convert.md"):
        shutil.copy(REPO / "benchmarks" / "results" / f, tmp_path / f)
    before = {f: (tmp_path / f).read_bytes() for f in ("convert.json", "convert.md")}
    res = _fresh("benchmarks.convert", "--archs", "", "--sweep-sizes", "25,100", "--out", str(tmp_path))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "needs labelled images with valid and test splits for the calibration sweep" in lines[0]
    assert "give --calib-data DIR" in lines[0] and "missing" not in lines[0]
    assert {f: (tmp_path / f).read_bytes() for f in before} == before
    assert "## Calibration-size sweep" in before["convert.md"].decode()


def test_overhead_defaults_to_the_bundled_files():
    from benchmarks.overhead import default_models

    models = default_models()
    assert models and all(m.is_file() and m.suffix in (".tflite", ".onnx") for m in models)


def test_documented_benchmark_options_exist(capsys):
    """Every `python -m benchmarks.X --option` in README.md, docs/ and examples/ is an option of X (its --help)."""
    from docblocks import all_commands

    helps, problems = {}, []
    for cmd in all_commands():
        if cmd.argv[:2] != ["python", "-m"] or not cmd.argv[2].startswith("benchmarks.") or len(cmd.argv) < 4:
            continue
        name = cmd.argv[2]
        if name not in helps:
            with pytest.raises(SystemExit):
                importlib.import_module(name).main(["--help"])
            helps[name] = capsys.readouterr().out
        for opt in (a.split("=")[0] for a in cmd.argv[3:] if a.startswith("--")):
            if not re.search(rf"(^|[\s\[,]){re.escape(opt)}\b", helps[name]):
                problems.append(f"{cmd.where}: `{name}` has no option {opt}")
    assert helps and not problems, "\n".join(problems)


def test_bench_archs_keeps_the_rows_of_archs_not_run(tmp_path):
    """`python -m benchmarks.bench_archs --archs cnn` keeps every other arch's committed rows (written back intact)."""
    import json

    from benchmarks.bench_archs import arch_of, earlier_rows
    from edge_dfd.bench import BenchResult, write_results

    committed = json.loads((REPO / "benchmarks" / "results" / "bench_archs.json").read_text())
    kept = earlier_rows(REPO / "benchmarks" / "results" / "bench_archs.json", ["cnn"])
    others = [r for r in committed["rows"] if arch_of(r["model"]) != "cnn"]
    assert arch_of("mobilenet_v3_small_256.keras") == "mobilenet_v3_small" and arch_of("xception_int8.tflite") == "xception"
    assert 0 < len(kept) == len(others) < len(committed["rows"])
    write_results(BenchResult(committed["machine"], kept, [], committed["settings"]), tmp_path, stem="b", plot=None)
    again = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(r["model"], r["format"], r["latency_ms_p50"]) for r in again] == \
        [(r["model"], r["format"], r["latency_ms_p50"]) for r in others]
