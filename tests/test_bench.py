"""edge-dfd bench: JSON keys and sanity, accuracy == evaluate's, --floor exit code, the no-argument path
(accuracy on the bundled evaluation sample: tests/test_bench_sample.py)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest
from procs import no_tf_env
from runtime_models import build_tiny_models

from edge_dfd.bench import PERTURBATIONS

ROW_KEYS = {"format", "status", "bytes", "accuracy", "auc", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
            "images_per_s", "peak_rss_mb", "balanced_accuracy", "ap", "eer", "precision", "recall", "f1",
            "preprocess_ms", "load_ms", "first_inference_ms"}
FAST = ("--runs", "20", "--warmup", "2")


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


@pytest.fixture(scope="module")
def zoo_dir(models, tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    for name, fname in (("keras", "detector.keras"), ("tflite-int8", "detector_int8.tflite"), ("onnx", "detector.onnx")):
        shutil.copy(models[name], d / fname)
    return d


def test_bench_json_rows_and_accuracy_equals_evaluate(models, tiny140k, tmp_path, cli_run):
    from edge_dfd.bench.evaluate import evaluate

    out = tmp_path / "b"
    code, stdout, stderr = cli_run("bench", models["tflite-int8"], models["onnx"], "--data", tiny140k,
                                   "--out", out, "--json", "--robustness", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert {"cpu", "cpu_flags", "usable_cores", "threads", "os", "python", "versions"} <= set(doc["machine"])
    assert doc["machine"]["threads"] == 2 and "onnxruntime" in doc["machine"]["versions"]
    rows = doc["rows"]
    assert [r["format"] for r in rows] == ["tflite-int8", "onnx"]
    for r, name in zip(rows, ["tflite-int8", "onnx"]):
        assert ROW_KEYS <= set(r) and r["status"] == "ok", r
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p90"] <= r["latency_ms_p99"]
        assert r["bytes"] == models[name].stat().st_size and r["n"] == 16
        assert r["images_per_s"] > 0 and r["peak_rss_mb"] > r["baseline_rss_mb"] > 10 and r["load_ms"] > 0
        ev = evaluate(models[name], tiny140k, "test", write=False, threads=2)
        assert r["accuracy"] == ev["accuracy"] and r["auc"] == ev["auc"] and r["eer"] == ev["eer"]
        assert set(r["robustness"]) == set(PERTURBATIONS)
        assert all(0.0 <= v["accuracy"] <= 1.0 for v in r["robustness"].values())
    assert rows[1]["provider"] == "CPUExecutionProvider"
    csv_rows = list(csv.DictReader((out / "bench.csv").open()))
    assert [c["format"] for c in csv_rows] == ["tflite-int8", "onnx"] and "rob_jpeg50_acc" in csv_rows[0]
    md = (out / "bench.md").read_text()
    assert "| format |" in md and "Machine:" in md and "jpeg30" in md
    assert json.loads((out / "bench.json").read_text())["rows"] == rows
    assert (out / "pareto.png").stat().st_size > 1000
    assert "robustness" in stderr  # the table went to stderr with --json


@pytest.mark.slow
def test_floor_exit_code(models, tiny140k, tmp_path, cli_run):
    flipped = tmp_path / "flipped"
    shutil.copytree(tiny140k, flipped)
    lines = (flipped / "test.csv").read_text().splitlines()
    out = [lines[0]]
    for ln in lines[1:]:
        parts = ln.split(",")
        parts[3] = "0" if parts[3] == "1" else "1"
        parts[4] = "fake" if parts[4] == "real" else "real"
        out.append(",".join(parts))
    (flipped / "test.csv").write_text("\n".join(out) + "\n")
    code, stdout, stderr = cli_run("bench", models["onnx"], "--data", flipped, "--floor", "0.5",
                                   "--out", tmp_path / "b", "--json", *FAST)
    assert code == 3, stderr
    assert json.loads(stdout)["rows"][0]["status"] == "below floor"
    assert "accuracy below the floor 0.5" in stderr and "onnx=0.0000" in stderr
    code, _, _ = cli_run("bench", models["onnx"], "--data", tiny140k, "--floor", "0.9", "--out", tmp_path / "c", *FAST)
    assert code == 0
    # without --data the floor applies to the bundled evaluation sample (the tiny model is near chance on faces)
    code, stdout, stderr = cli_run("bench", models["onnx"], "--floor", "0.9", "--out", tmp_path / "d", "--json",
                                   *FAST)
    assert code == 3 and "accuracy below the floor 0.9" in stderr
    assert json.loads(stdout)["rows"][0]["n"] == 660


@pytest.mark.slow
def test_no_arguments_measures_the_bundled_model(zoo_dir, tmp_path, cli_run, monkeypatch):
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(zoo_dir))
    code, stdout, stderr = cli_run("bench", "--out", tmp_path / "b", *FAST)
    assert code == 0, stderr
    assert "accuracy on 660 labelled images of the bundled evaluation sample" in stdout and "--data DIR" in stdout
    doc = json.loads((tmp_path / "b" / "bench.json").read_text())
    rows = {r["format"]: r for r in doc["rows"]}
    assert list(rows) == ["keras", "tflite-int8", "onnx"]
    assert all(r["status"] == "ok" and r["n"] == 660 and r["latency_ms_p50"] > 0 for r in rows.values())
    # the source .keras is the paired reference; the onnx export gives its verdicts
    assert all(r["reference"] == "keras" for r in rows.values()) and rows["keras"]["acc_diff"] == 0.0
    assert rows["onnx"]["accuracy"] == rows["keras"]["accuracy"] and rows["onnx"]["acc_diff"] == 0.0
    assert rows["tflite-int8"]["acc_diff"] == pytest.approx(rows["tflite-int8"]["accuracy"]
                                                            - rows["keras"]["accuracy"], abs=1e-12)
    assert rows["keras"]["agreement"] == 1.0 and rows["keras"]["max_abs_diff"] == 0.0
    assert rows["onnx"]["max_abs_diff"] < 1e-4 and rows["onnx"]["agreement"] == 1.0
    assert rows["tflite-int8"]["max_abs_diff"] < 0.3 and rows["tflite-int8"]["agreement"] >= 0.9
    assert rows["keras"]["peak_rss_mb"] > rows["tflite-int8"]["peak_rss_mb"]  # TensorFlow only in its own process
    # the bundled model's lighter defaults (3-minute budget): 32 probe inputs; --runs given here wins
    assert doc["settings"]["probe_inputs"] == 32 and doc["settings"]["runs"] == 20


@pytest.mark.slow
def test_no_arguments_without_tensorflow(zoo_dir, tmp_path):
    env = no_tf_env(tmp_path)
    env["EDGE_DFD_DEFAULT_MODEL_DIR"] = str(zoo_dir)
    proc = subprocess.run([sys.executable, "-m", "edge_dfd", "bench", "--json", "--out", str(tmp_path / "b"), *FAST],
                          capture_output=True, text=True, env=env, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["format"]: r for r in json.loads(proc.stdout)["rows"]}
    assert rows["keras"]["status"] == "skipped: TensorFlow not installed"
    assert rows["tflite-int8"]["status"] == "ok" and rows["onnx"]["status"] == "ok"
    assert rows["onnx"]["agreement"] is None  # no Keras reference without TensorFlow
    assert rows["onnx"]["reference"] == "onnx" and rows["tflite-int8"]["reference"] == "onnx"  # the fp32 file


@pytest.mark.slow
def test_bench_converts_a_keras_model_and_caches(models, tiny140k, tmp_path, cli_run):
    out = tmp_path / "b"
    args = ("bench", models["keras"], "--data", tiny140k, "--formats", "keras,tflite-fp32,onnx", "--out", out,
            "--json", *FAST)
    code, stdout, stderr = cli_run(*args)
    assert code == 0, stderr
    rows = {r["format"]: r for r in json.loads(stdout)["rows"]}
    assert list(rows) == ["keras", "tflite-fp32", "onnx"] and all(r["status"] == "ok" for r in rows.values())
    assert rows["onnx"]["accuracy"] == rows["keras"]["accuracy"] and rows["onnx"]["max_abs_diff"] < 1e-4
    # the second run reuses the cached conversions (the keras row is left out: its measuring process would only
    # import TensorFlow again)
    code, stdout, stderr = cli_run(*[a if a != "keras,tflite-fp32,onnx" else "tflite-fp32,onnx" for a in args])
    assert code == 0 and "converting" not in stderr
    assert [r["format"] for r in json.loads(stdout)["rows"]] == ["tflite-fp32", "onnx"]
