"""edge-dfd evaluate for every format: same report keys, same numbers as the runtime gives."""

from __future__ import annotations

import json

import pytest
from runtime_models import build_tiny_models

KEYS = {"accuracy", "auc", "ap", "eer", "precision", "recall", "f1", "n", "confusion_matrix", "balanced_accuracy"}


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


@pytest.mark.parametrize("name", ["keras", "tflite-fp16", "tflite-int8-io", "onnx-int8"])
def test_evaluate_every_runtime(models, tiny140k, tmp_path, cli_run, name):
    code, stdout, stderr = cli_run("evaluate", models[name], "--data", tiny140k, "--split", "test",
                                   "--out", tmp_path / "ev", "--json", "--threads", "1")
    assert code == 0, stderr
    rep = json.loads(stdout)
    assert KEYS <= set(rep)
    assert rep["n"] == 16 and rep["format"] == name
    assert rep["accuracy"] == 1.0 and rep["auc"] == 1.0 and rep["confusion_matrix"] == [[8, 0], [0, 8]]
    for f in ("report.json", "report.txt", "confusion_matrix.png"):
        assert (tmp_path / "ev" / f).stat().st_size > 0
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["accuracy"] == rep["accuracy"]


def test_evaluate_text_and_bad_split(models, tiny140k, tmp_path, cli_run):
    code, stdout, _ = cli_run("evaluate", models["onnx"], "--data", tiny140k, "--out", tmp_path / "e")
    assert code == 0 and "accuracy" in stdout and "confusion matrix" in stdout
    code, _, stderr = cli_run("evaluate", models["onnx"], "--data", tmp_path / "nodata")
    assert code == 1 and "error:" in stderr


@pytest.mark.slow
def test_evaluate_without_data_uses_the_bundled_sample(models, tmp_path, cli_run):
    code, stdout, stderr = cli_run("evaluate", models["tflite-int8"], "--out", tmp_path / "e", "--json")
    assert code == 0, stderr
    rep = json.loads(stdout)
    assert rep["n"] == 660 and rep["n_real"] == 325 and rep["n_fake"] == 335 and rep["split"] == "test"
    assert {k: v["n"] for k, v in rep["by_set"].items()} == {"faces140k": 150, "tpdne128": 510}
    n_ok = sum(v["accuracy"] * v["n"] for v in rep["by_set"].values())
    assert n_ok == pytest.approx(rep["accuracy"] * rep["n"])  # the two sets add up to the whole
    assert "bundled evaluation sample" in rep["title"] and "bundled evaluation sample" in stderr
    code, stdout, _ = cli_run("evaluate", models["tflite-int8"], "--sample", "20", "--out", tmp_path / "g")
    assert code == 0 and "on the bundled evaluation sample [test]" in stdout
    assert [ln.split()[0] for ln in stdout.splitlines() if "(n=" in ln and "ROC AUC" in ln] == ["faces140k",
                                                                                               "tpdne128"]
    code, _, stderr = cli_run("evaluate", models["onnx"], "--format", "tflite-int8", "--out", tmp_path / "f")
    assert code == 1 and "--format tflite-int8 expects a .tflite file" in stderr
