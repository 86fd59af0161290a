"""The runtime install: predict, evaluate, bench and live on .tflite / .onnx without scikit-learn, scipy,
matplotlib, psutil or TensorFlow (a subprocess in which importing them fails), and the plot notes.

pyproject's runtime dependencies are checked too: the slim set is what `pip install edge-dfd` gets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_runtime import blocking_env

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("sklearn", "scipy", "matplotlib", "psutil", "tensorflow", "keras", "tf2onnx", "tf_keras")
NOTE = "not written: plots need matplotlib (pip install 'edge-dfd[plots]')"

def slim_env(tmp_path) -> dict:
    env = blocking_env(tmp_path, HEAVY)
    env.pop("EDGE_DFD_DEFAULT_MODEL_DIR", None)
    return env


def run_cli(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "edge_dfd", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def models():
    from runtime_models import build_tiny_models

    return build_tiny_models()


def test_runtime_dependencies_are_slim():
    import tomllib

    proj = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {d.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip().lower()
             for d in proj["project"]["dependencies"]}
    assert names == {"numpy", "opencv-python-headless", "click", "onnxruntime", "ai-edge-litert", "flatbuffers", "pillow",
                     "tqdm"}  # tqdm: progress bars (already pulled in by ai-edge-litert)
    extras = proj["project"]["optional-dependencies"]
    assert extras["plots"] == ["matplotlib>=3.7"]
    assert any(d.startswith("matplotlib") for d in extras["train"])
    assert any(r.startswith("setuptools>=77") for r in proj["build-system"]["requires"])


def test_modules_import_without_the_removed_packages(tmp_path):
    script = textwrap.dedent("""
        import json, sys
        for name in ("sklearn", "scipy", "matplotlib", "psutil"):
            try:
                __import__(name)
                print("BLOCKER FAILED", name); sys.exit(1)
            except ImportError:
                pass
        import edge_dfd.metrics, edge_dfd.report, edge_dfd.evaluate, edge_dfd.bench, edge_dfd.predict
        import edge_dfd.live, edge_dfd.machine, edge_dfd.zoo, edge_dfd.cli.evaluate, edge_dfd.cli.bench
        from edge_dfd.machine import machine_facts
        from edge_dfd.metrics import binary_report
        rep = binary_report([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5)
        m = machine_facts()
        print(json.dumps({"auc": rep["auc"], "ap": rep["ap"], "eer": rep["eer"], "mem": m["memory_gb"],
                          "loaded": sorted({k.split(".")[0] for k in sys.modules} & set(%r))}))
    """ % (HEAVY,))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=slim_env(tmp_path),
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["auc"] == 0.75 and out["ap"] == pytest.approx(0.8333333333333333) and out["eer"] == 0.5
    assert out["mem"] > 0.1  # from sysconf, not psutil


def _video(path: Path, frames: int = 4) -> Path:
    import cv2
    from synth import synth_face

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 96))
    assert vw.isOpened()
    for i in range(frames):
        vw.write(cv2.cvtColor(synth_face(i % 2 == 1, 96, 50 + i), cv2.COLOR_RGB2BGR))
    vw.release()
    return path


@pytest.mark.parametrize("fmt", ["tflite-int8", "onnx"])
def test_predict_evaluate_bench_live_without_the_removed_packages(models, tiny140k, tmp_path, fmt):
    from edge_dfd.evaluate import evaluate
    from edge_dfd.runtime import load_model

    env = slim_env(tmp_path)
    model = models[fmt]
    ref = evaluate(model, tiny140k, "test", write=False, threads=1)  # in-process, same code and model

    ev = tmp_path / "eval"
    proc = run_cli(env, "evaluate", model, "--data", tiny140k, "--out", ev, "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads((ev / "report.json").read_text())
    assert rep["n"] == ref["n"] == 16
    for k in ("accuracy", "auc", "ap", "eer", "balanced_accuracy", "precision", "recall", "f1"):
        assert rep[k] == pytest.approx(ref[k], abs=1e-9), k
    assert rep["per_class"] == ref["per_class"] and rep["confusion_matrix"] == ref["confusion_matrix"]
    assert not (ev / "confusion_matrix.png").exists() and (ev / "report.txt").is_file()
    notes = [ln for ln in proc.stderr.splitlines() if NOTE in ln]
    assert notes == [f"note: {ev / 'confusion_matrix.png'} {NOTE}"]
    assert f"wrote {ev}/report.json, report.txt" in proc.stderr and "Traceback" not in proc.stderr

    imgs = sorted((tiny140k / "real_vs_fake").rglob("*.jpg"))[:4]
    proc = run_cli(env, "predict", *imgs, "--model", model, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)["results"]
    from edge_dfd.preprocess import load_image

    det = load_model(model)
    want = det.predict(np.stack([load_image(p, det.input_size) for p in imgs]))
    assert [r["path"] for r in rows] == [str(p) for p in imgs]
    np.testing.assert_allclose([r["p_fake"] for r in rows], want, atol=2e-6)

    b = tmp_path / "bench"
    proc = run_cli(env, "bench", model, "--data", tiny140k, "--out", b, "--json", "--runs", "10", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["accuracy"] == pytest.approx(ref["accuracy"])
    assert row["auc"] == pytest.approx(ref["auc"]) and doc["machine"]["memory_gb"] > 0.1
    assert (b / "bench.json").is_file() and not (b / "pareto.png").exists()
    assert [ln for ln in proc.stderr.splitlines() if NOTE in ln] == [f"note: {b / 'pareto.png'} {NOTE}"]

    proc = run_cli(env, "live", "--model", model, "--source", _video(tmp_path / "v.avi"), "--faces", "none",
                   "--max-frames", "3", "--events", "-")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and NOTE not in proc.stderr


def test_plot_functions_note_once_without_matplotlib(tmp_path, monkeypatch, capsys):
    from edge_dfd import report
    from edge_dfd.bench import BenchResult, plot_pareto

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert report.plot_confusion_matrix([[3, 1], [0, 4]], tmp_path / "cm.png") is None
    assert report.plot_curves({"loss": [0.7, 0.5], "val_loss": [0.8, 0.6]}, tmp_path / "curves.png") is None
    res = BenchResult.__new__(BenchResult)
    res.rows = [type("R", (), {"latency_ms_p50": 1.0, "accuracy": 0.9, "agreement": None, "size_mb": 1.0,
                               "model": "m", "format": "onnx"})()]
    assert plot_pareto(res, tmp_path / "pareto.png") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"note: {tmp_path / n} {NOTE}" for n in ("cm.png", "curves.png", "pareto.png")]
    assert not list(tmp_path.glob("*.png"))
    rep = report.write_report(tmp_path / "r", [0, 1, 1], [0.2, 0.7, 0.4], 0.5)
    assert rep["files"] == ["report.json", "report.txt"] and rep["accuracy"] == pytest.approx(2 / 3)
