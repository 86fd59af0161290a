"""edge-dfd predict: generated images incl. unreadable ones, folders/globs/CSV, atomic --out files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from runtime_models import build_tiny_models
from synth import synth_face, write_jpeg

from edge_dfd.runtime.predict import collect_inputs


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    for i in range(6):
        write_jpeg(d / ("sub" if i % 2 else "") / f"{'fake' if i % 2 else 'real'}{i}.jpg", synth_face(i % 2 == 1, 64, 50 + i))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (d / "empty.png").write_bytes(b"")
    (d / "notes.txt").write_text("ignored: not an image suffix")
    return d


def test_predict_folder_with_unreadable_files(models, folder, tmp_path, cli_run):
    out = tmp_path / "res.csv"
    code, stdout, stderr = cli_run("predict", "--model", models["tflite-int8"], folder, "--out", out,
                                   "--batch-size", "4")
    assert code == 0, stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and len(stdout.strip().splitlines()) == 6
    by = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    for name, r in by.items():
        p = float(r["p_fake"])
        assert 0.0 <= p <= 1.0 and r["threshold"] == "0.5"
        assert r["verdict"] == ("fake" if p >= 0.5 else "real") == ("fake" if name.startswith("fake") else "real")
    assert "broken.jpg" in stderr and "empty.png" in stderr and "notes.txt" not in stderr
    assert "6 images: 3 fake, 3 real; 2 unreadable" in stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".res.csv")]  # no temp file left


def test_predict_json_glob_missing_and_jsonl(models, folder, tmp_path, cli_run):
    out = tmp_path / "res.jsonl"
    code, stdout, stderr = cli_run("predict", "-m", models["onnx"], str(folder / "sub" / "*.jpg"),
                                   tmp_path / "nope.jpg", "--json", "--out", out)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["summary"]["images"] == 3 and doc["summary"]["fake"] == 3 and doc["summary"]["unreadable"] == 1
    assert doc["summary"]["errors"][0]["reason"] == "file not found"
    assert all(r["verdict"] == "fake" and r["p_fake"] > 0.5 for r in doc["results"])
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["p_fake"] for x in lines] == [r["p_fake"] for r in doc["results"]]


def test_predict_csv_matches_runtime(models, tiny140k, cli_run):
    from edge_dfd.images.data import load_split
    from edge_dfd.images.preprocess import load_image
    from edge_dfd.runtime import load_model

    code, stdout, stderr = cli_run("predict", "-m", models["tflite-fp32"], tiny140k / "test.csv", "--json")
    assert code == 0, stderr
    res = json.loads(stdout)["results"]
    recs = load_split(tiny140k, "test")
    assert [r["path"] for r in res] == [str(r.path) for r in recs]
    det = load_model(models["tflite-fp32"])
    p = det.predict(np.stack([load_image(r.path, det.input_size) for r in recs]))
    np.testing.assert_allclose([r["p_fake"] for r in res], p, atol=1e-5)
    assert {r["label"] for r in res} == {"real", "fake"}
    acc = np.mean([(r["verdict"] == r["label"]) for r in res])
    assert acc == 1.0


def test_vanishing_file_is_skipped(models, folder, monkeypatch):
    from edge_dfd.runtime import load_model
    from edge_dfd.runtime import predict as pred

    items, _ = collect_inputs([folder])
    victim = next(i.path for i in items if i.path.endswith("real0.jpg"))
    real_load = pred.load_image

    def flaky(path, size):
        if path == victim:
            import os

            os.unlink(path)  # disappears between listing and decoding
        return real_load(path, size)

    monkeypatch.setattr(pred, "load_image", flaky)
    errors = []
    got = list(pred.predict_items(load_model(build_tiny_models()["onnx"]), items, batch_size=3, on_error=errors.append))
    assert victim in [e.path for e in errors] and all(i.path != victim for i, _ in got)
    assert len(got) == 6 - 1  # 6 good images, one vanished; broken.jpg and empty.png reported too
    assert len(errors) == 3


def test_no_images_is_an_error(models, tmp_path, cli_run):
    code, _, stderr = cli_run("predict", "-m", models["onnx"], tmp_path / "missing_dir_or_file")
    assert code == 1 and "no images to classify" in stderr


def test_bad_out_suffix(models, folder, tmp_path, cli_run):
    code, _, stderr = cli_run("predict", "-m", models["onnx"], folder, "--out", tmp_path / "r.txt")
    assert code == 1 and ".csv or .jsonl" in stderr


def test_predict_all_unreadable_fails_without_output(models, folder, tmp_path, cli_run):
    """Every input unreadable: nothing was classified, so exit 1 with one line naming a file, and no --out file."""
    out = tmp_path / "res.csv"
    code, stdout, stderr = cli_run("predict", "--model", models["tflite-int8"], folder / "broken.jpg",
                                   folder / "empty.png", "--out", out)
    assert code == 1 and stdout.strip() == ""
    last = stderr.strip().splitlines()[-1]
    assert "none of the 2 input image(s) could be read" in last and "empty.png" in last
    assert "Traceback" not in stderr and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".res.csv")]
