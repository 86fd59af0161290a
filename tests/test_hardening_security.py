"""Guarantee: hostile files cannot run code or reach outside the dataset.

* Keras models load in safe mode: a model that needs arbitrary code (a Lambda layer, a custom class from
  a module that is not Keras) is refused with a message saying so; only ``convert --unsafe`` lifts the
  Lambda restriction. Nothing is unpickled and no module named by a file is imported.
* Dataset image paths cannot escape the dataset root: absolute paths, ``..`` and symlinks (to files or
  folders outside) are refused, in the CSV layout and the folder layout.
* Model metadata is parsed as data with a 1 MiB limit; malformed metadata is an error naming the file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hostile import (
    IMAGES_SUBDIR,
    assert_clean_failure,
    cached,
    good_jpeg,
    read_rows,
    replace_keras_member,
    tiny_keras,
    tiny_onnx,
    tiny_tflite,
    write_csv,
    write_dataset,
    write_good,
)

from edge_dfd.core.errors import DataError
from edge_dfd.core.meta import MAX_META_BYTES
from edge_dfd.images import data

PKG = Path(__file__).resolve().parents[1] / "edge_dfd"


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    return write_good(tmp_path_factory.mktemp("imgs") / "imgs", 2)[0].parent


# ---------------------------------------------------------------- code in model files


def _tf_models(d):
    return {"lambda": tiny_keras(d / "lambda.keras", lambda_layer=True), "good": tiny_keras(d / "good.keras"),
            "tflite": tiny_tflite(d / "good.tflite")}


@pytest.fixture(scope="module")
def tf_models():
    pytest.importorskip("tensorflow")
    return cached("security_models", _tf_models)


def test_lambda_model_is_refused_without_unsafe(tf_models, imgs, tmp_path, cli_run):
    lam = tf_models["lambda"]
    for args in (("predict", "--model", lam, imgs), ("convert", lam, "--formats", "tflite-fp32", "--out", tmp_path)):
        code, _, err = cli_run(*args)
        assert_clean_failure(code, err, 1, str(lam), "arbitrary code", "Lambda layer 'code_lambda'", "--unsafe")
    assert not list(tmp_path.glob("*.tflite"))


@pytest.mark.slow  # a conversion: its worker pays TensorFlow's converter start-up
def test_convert_unsafe_is_explicit_and_works(tf_models, tmp_path, cli_run):
    code, out, err = cli_run("convert", tf_models["lambda"], "--formats", "tflite-fp32", "--out", tmp_path,
                             "--unsafe", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["ok"] and row["max_abs_diff"] < 1e-4 and (tmp_path / "lambda_fp32.tflite").is_file()


def test_custom_class_from_a_foreign_module_is_never_imported(tf_models, imgs, tmp_path, cli_run, monkeypatch):
    """A .keras config naming a layer class in module 'hostile_payload': refused, and that module never runs."""
    marker = tmp_path / "payload_ran"
    (tmp_path / "hostile_payload.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\nclass Payload: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    good = tf_models["good"]
    import zipfile

    with zipfile.ZipFile(good) as z:
        config = json.loads(z.read("config.json"))
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    dense.update(module="hostile_payload", class_name="Payload", registered_name="hostile_payload>Payload")
    evil = replace_keras_member(good, tmp_path / "evil.keras", "config.json", json.dumps(config).encode())
    for args in (("predict", "--model", evil, imgs), ("convert", evil, "--formats", "tflite-fp32", "--out", tmp_path)):
        code, _, err = cli_run(*args)
        assert_clean_failure(code, err, 1, str(evil), "not part of Keras", "Payload")
    assert not marker.exists(), "a module named inside the model file was imported"


BANNED = re.compile(r"\bpickle\b|allow_pickle\s*=\s*True|torch\.load|safe_mode\s*=\s*False|\beval\(|\bexec\(|"
                    r"yaml\.load\(|\bmarshal\b|\bshelve\b")


def test_nothing_is_unpickled_or_evaluated():
    hits = [f"{p.relative_to(PKG)}:{i}: {line.strip()}" for p in PKG.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if BANNED.search(line)]
    assert hits == []


# ---------------------------------------------------------------- dataset paths


@pytest.fixture
def ds(tmp_path):
    return write_dataset(tmp_path / "ds", per_class=3, splits=("test",))


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.jpg").write_bytes(good_jpeg(seed=99))
    return d


def _set_path(ds, row: int, rel: str):
    rows = read_rows(ds / "test.csv")
    rows[row][5] = rel
    write_csv(ds / "test.csv", rows)


@pytest.mark.parametrize("rel, phrase", [
    ("/etc/passwd", "absolute path"),
    ("{outside}/secret.jpg", "absolute path"),
    ("../../outside/secret.jpg", "contains '..'"),
    ("test/real/../../../../outside/secret.jpg", "contains '..'"),
    ("..\\..\\outside\\secret.jpg", "contains '..'"),
    ("C:\\Windows\\win.ini", "absolute path"),
    ("\\\\server\\share\\x.jpg", "absolute path"),
])
def test_csv_paths_cannot_escape(rel, phrase, ds, outside, cli_run):
    _set_path(ds, 1, rel.format(outside=outside))
    code, _, err = cli_run("data", ds)
    assert_clean_failure(code, err, 1, str(ds / "test.csv"), "unsafe image path", phrase, "line 2")


def test_symlinked_file_escaping_is_refused(ds, outside, tmp_path, cli_run):
    link = ds / IMAGES_SUBDIR / "test" / "real" / "link.jpg"
    link.symlink_to(outside / "secret.jpg")
    _set_path(ds, 1, "test/real/link.jpg")
    code, _, err = cli_run("data", ds)
    assert_clean_failure(code, err, 1, "escapes the dataset folder (symlink)", "test/real/link.jpg")
    model = tiny_onnx(tmp_path / "m.onnx")
    code, _, err = cli_run("evaluate", model, "--data", ds, "--out", tmp_path / "ev")
    assert_clean_failure(code, err, 1, "escapes the dataset folder")
    assert not (tmp_path / "ev").exists()


def test_symlinked_folder_escaping_is_refused(ds, outside, cli_run):
    (ds / IMAGES_SUBDIR / "test" / "evil").symlink_to(outside, target_is_directory=True)
    _set_path(ds, 1, "test/evil/secret.jpg")
    with pytest.raises(DataError, match="escapes the dataset folder"):
        data.load_split(ds, "test")


def test_symlink_inside_the_dataset_is_fine(ds):
    real = min((ds / IMAGES_SUBDIR / "test" / "real").glob("*.jpg"))
    (ds / IMAGES_SUBDIR / "test" / "alias.jpg").symlink_to(real)
    rows = read_rows(ds / "test.csv")
    rows.append([str(len(rows) - 1), "x", "x", "1", "real", "test/alias.jpg"])
    write_csv(ds / "test.csv", rows)
    assert len(data.load_split(ds, "test")) == 7


def test_folder_layout_symlinks_cannot_escape(tmp_path, outside, cli_run):
    root = tmp_path / "folder_ds"
    write_good(root / "test" / "real", 2)
    write_good(root / "test" / "fake", 2, seed=10)
    (root / "test" / "fake" / "stolen.jpg").symlink_to(outside / "secret.jpg")
    code, _, err = cli_run("data", root)
    assert_clean_failure(code, err, 1, "escapes the dataset folder", "fake/stolen.jpg")


# ---------------------------------------------------------------- metadata


BAD_META = {
    "oversized": ('{"input_size": 32, "extra": {"pad": "' + "x" * (MAX_META_BYTES + 10) + '"}}', "above the"),
    "not_json": ("{input_size: 32", "not valid JSON"),
    "not_an_object": ("[32, 0.5]", "must be a JSON object"),
    "deeply_nested": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "wrong_types": ('{"input_size": "32", "threshold": "high"}', "input_size='32'"),
    "format_is_a_list": ('{"input_size": 32, "format": ["onnx"]}', "format=['onnx'] (expected a string)"),
    "training_not_object": ('{"input_size": 32, "training": "data"}', "training='data' (expected a JSON object)"),
    "threshold_out_of_range": ('{"input_size": 32, "threshold": 7}', "threshold=7"),
    "not_utf8": (b'{"input_size": 32, "arch": "\xff\xfe"}', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(k for k, v in BAD_META.items() if isinstance(v[0], str)))
def test_malformed_onnx_metadata(case, tmp_path, imgs, cli_run):
    raw, phrase = BAD_META[case]  # (ONNX metadata_props are protobuf strings: always UTF-8)
    model = tiny_onnx(tmp_path / "m.onnx", meta=raw)
    for args in (("predict", "--model", model, imgs), ("bench", model, "--runs", "2", "--out", tmp_path / "b")):
        code, _, err = cli_run(*args)
        assert_clean_failure(code, err, 1, str(model), phrase)
        assert len(err.strip().splitlines()[-1]) < 600  # one line, not the 1 MiB document echoed back


@pytest.mark.parametrize("case", ["oversized", "not_json", "deeply_nested", "not_utf8", "format_is_a_list"])
def test_malformed_tflite_and_keras_metadata(case, tf_models, tmp_path, imgs, cli_run):
    from edge_dfd.core.meta import KERAS_MEMBER, tflite_with_meta

    raw, phrase = BAD_META[case]
    raw = raw if isinstance(raw, bytes) else raw.encode()
    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(tflite_with_meta(tf_models["tflite"].read_bytes(), raw))
    ker = replace_keras_member(tf_models["good"], tmp_path / "m.keras", KERAS_MEMBER, raw)
    for model in (tfl, ker):
        code, _, err = cli_run("predict", "--model", model, imgs)
        assert_clean_failure(code, err, 1, str(model))
        assert phrase in err or (case == "oversized" and "above the" in err), err


def test_metadata_is_checked_against_the_model(tmp_path, imgs, cli_run):
    """Metadata that lies about the input size is caught against the real model, not trusted."""
    model = tiny_onnx(tmp_path / "m.onnx", meta='{"input_size": 224}')
    code, _, err = cli_run("predict", "--model", model, imgs)
    assert_clean_failure(code, err, 1, str(model), "input_size=224", "32x32")
    assert os.path.getsize(model) < 10_000
