"""Guarantee: a bad model file (empty, truncated, another format under a model suffix, an unknown suffix,
a folder, missing, or a real model with the wrong input shape / type / outputs) is one line naming the file,
exit 1, no traceback, in every command that loads models: predict, evaluate, bench, live and convert.
"""

from __future__ import annotations

import pytest
from hostile import (
    SIZE,
    assert_clean_failure,
    cached,
    cli_subprocess,
    good_jpeg,
    tiny_keras,
    tiny_onnx,
    tiny_tflite,
    write_dataset,
    write_good,
    write_video,
)


def _no_tf_models(d):
    """name -> (path, phrase of the error). Built without TensorFlow."""
    good = tiny_onnx(d / "good.onnx")
    gb = good.read_bytes()
    jpg = good_jpeg()
    raw = {"empty.onnx": b"", "empty.tflite": b"", "empty.keras": b"", "truncated.onnx": gb[: len(gb) // 2],
           "jpeg_named.onnx": jpg, "jpeg_named.tflite": jpg, "jpeg_named.keras": jpg, "text.onnx": b"hello\n" * 9,
           "model.pt": gb, "model.h5": gb, "tfl3_magic_only.tflite": b"\x18\x00\x00\x00TFL3" + b"\x00" * 40}
    for name, data in raw.items():
        (d / name).write_bytes(data)
    (d / "folder.onnx").mkdir()
    nchw = ("N", 3, SIZE, SIZE)
    wrong = {"nchw.onnx": {"shape": nchw}, "nchw_no_meta.onnx": {"shape": nchw, "meta": None},
             "not_square.onnx": {"shape": ("N", SIZE, 16, 3)}, "gray_input.onnx": {"shape": ("N", SIZE, SIZE, 1)},
             "double_input.onnx": {"elem": "DOUBLE"}, "int64_input.onnx": {"elem": "INT64"},
             "two_inputs.onnx": {"inputs": 2}, "two_outputs.onnx": {"outputs": 2},
             "two_columns.onnx": {"out_width": 2}}
    for name, kw in wrong.items():
        tiny_onnx(d / name, **kw)
    cannot = "load"  # "onnxruntime cannot load this model" / "not a loadable ONNX model"
    phrases = {"empty.onnx": cannot, "empty.tflite": "not a TFLite flatbuffer", "empty.keras": "Keras 3 .keras",
               "truncated.onnx": cannot, "jpeg_named.onnx": cannot, "jpeg_named.tflite": "not a TFLite flatbuffer",
               "jpeg_named.keras": "Keras 3 .keras", "text.onnx": cannot, "model.pt": "unknown model type '.pt'",
               "model.h5": "unknown model type '.h5'", "tfl3_magic_only.tflite": "LiteRT cannot load",
               "folder.onnx": "", "absent.onnx": "not found",
               "nchw.onnx": "expected (N, S, S, 3)", "nchw_no_meta.onnx": "expected (N, S, S, 3)",
               "not_square.onnx": "expected (N, S, S, 3)", "gray_input.onnx": "expected (N, S, S, 3)",
               "double_input.onnx": "input type is tensor(double)", "int64_input.onnx": "input type is tensor(int64)",
               "two_inputs.onnx": "2 inputs", "two_outputs.onnx": "2 outputs", "two_columns.onnx": "expected (N, 1)"}
    return {name: (d / name, phrase) for name, phrase in phrases.items()}


def _tf_models(d):
    """TFLite / Keras files with the wrong input, and truncated ones (needs TensorFlow)."""
    good_tfl = tiny_tflite(d / "good.tflite")
    gray_tfl = tiny_tflite(d / "gray_input.tflite", shape=(1, SIZE, SIZE, 1))
    int_tfl = tiny_tflite(d / "int32_input.tflite", dtype="int32")
    good_keras = tiny_keras(d / "good.keras")
    gray_keras = tiny_keras(d / "gray_input.keras", channels=1)
    tb, kb = good_tfl.read_bytes(), good_keras.read_bytes()
    (d / "truncated.tflite").write_bytes(tb[: len(tb) // 2])
    (d / "truncated.keras").write_bytes(kb[: len(kb) // 2])
    return {
        "good.tflite": (good_tfl, None), "good.keras": (good_keras, None),
        "gray_input.tflite": (gray_tfl, "expected (N, S, S, 3)"),
        "int32_input.tflite": (int_tfl, "int32"),
        "gray_input.keras": (gray_keras, "S, S, 3)"),
        "truncated.tflite": (d / "truncated.tflite", ""),
        "truncated.keras": (d / "truncated.keras", "not a Keras 3 .keras file"),
    }


NO_TF = ["empty.onnx", "empty.tflite", "empty.keras", "truncated.onnx", "jpeg_named.onnx", "jpeg_named.tflite",
         "jpeg_named.keras", "text.onnx", "model.pt", "model.h5", "tfl3_magic_only.tflite", "folder.onnx",
         "absent.onnx", "nchw.onnx", "nchw_no_meta.onnx", "not_square.onnx", "gray_input.onnx",
         "double_input.onnx", "int64_input.onnx", "two_inputs.onnx", "two_outputs.onnx", "two_columns.onnx"]
WITH_TF = ["gray_input.tflite", "int32_input.tflite", "gray_input.keras", "truncated.tflite", "truncated.keras"]
# a Keras model that loads makes bench start a TensorFlow process (~5 s): the full suite checks it
WITH_TF_PARAMS = [pytest.param(n, marks=pytest.mark.slow) if n == "gray_input.keras" else n for n in WITH_TF]


@pytest.fixture(scope="module")
def no_tf():
    return cached("bad_models", _no_tf_models)


@pytest.fixture(scope="module")
def with_tf():
    pytest.importorskip("tensorflow")
    return cached("bad_tf_models", _tf_models)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    return {"imgs": write_good(d / "imgs", 2)[0].parent, "ds": write_dataset(d / "ds", per_class=2),
            "video": write_video(d / "clip.avi")}


def _every_command(cli_run, model, inputs, tmp_path):
    """Run predict, evaluate, bench and live on ``model``; yield (verb, code, stdout, stderr)."""
    runs = {
        "predict": ("predict", "--model", model, inputs["imgs"]),
        "evaluate": ("evaluate", model, "--data", inputs["ds"], "--out", tmp_path / "ev"),
        "bench": ("bench", model, "--runs", "2", "--warmup", "0", "--out", tmp_path / "b"),
        "live": ("live", "--model", model, "--faces", "none", "--source", inputs["video"], "--max-frames", "2"),
    }
    for verb, args in runs.items():
        yield (verb, *cli_run(*args))


@pytest.mark.parametrize("name", NO_TF)
def test_bad_model_in_every_command(name, no_tf, inputs, tmp_path, cli_run):
    path, phrase = no_tf[name]
    for verb, code, out, err in _every_command(cli_run, path, inputs, tmp_path):
        assert_clean_failure(code, err, 1, "error: ", str(path), phrase)
        assert out == "" or verb == "bench", (verb, out)
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("name", WITH_TF_PARAMS)
def test_bad_tflite_and_keras_in_every_command(name, with_tf, inputs, tmp_path, cli_run):
    path, phrase = with_tf[name]
    for _verb, code, _out, err in _every_command(cli_run, path, inputs, tmp_path):
        assert_clean_failure(code, err, 1, str(path), phrase)


def test_good_models_of_the_same_builders_work(no_tf, with_tf, inputs, tmp_path, cli_run):
    """Control: the builders make working models, so the failures above are the damage, not the builder."""
    import json

    for path in (no_tf["nchw.onnx"][0].parent / "good.onnx", with_tf["good.tflite"][0], with_tf["good.keras"][0]):
        code, out, err = cli_run("predict", "--model", path, inputs["imgs"], "--json")
        assert code == 0, err
        ps = [r["p_fake"] for r in json.loads(out)["results"]]
        assert len(ps) == 2 and all(0.0 < p < 1.0 for p in ps)


@pytest.mark.parametrize("name", ["empty.keras", "jpeg_named.keras", "truncated.keras", "gray_input.keras",
                                  "good.onnx", "good.tflite", "absent.keras"])
def test_convert_refuses_bad_sources(name, no_tf, with_tf, tmp_path, cli_run):
    models = {**no_tf, **with_tf, "good.onnx": (no_tf["nchw.onnx"][0].parent / "good.onnx", None),
              "absent.keras": (tmp_path / "absent.keras", "not found")}
    path, phrase = models[name]
    out = tmp_path / "out"
    code, _, err = cli_run("convert", path, "--formats", "tflite-fp32", "--out", out)
    assert_clean_failure(code, err, 1, str(path))
    if name.endswith(".keras"):
        assert phrase in err
    else:
        assert "expected a Keras 3 .keras file" in err
    assert not out.exists() or not any(out.iterdir())


def test_bad_model_in_a_real_process(no_tf, inputs):
    path, phrase = no_tf["jpeg_named.tflite"]
    res = cli_subprocess("predict", "--model", path, inputs["imgs"])
    assert_clean_failure(res.returncode, res.stderr, 1, f"error: {path}: {phrase}")
    assert res.stdout == ""


@pytest.mark.parametrize("name, data, phrase", [
    ("garbage.weights.h5", b"garbage" * 10, "weights do not fit arch cnn"),
    ("empty.keras", b"", "weights do not fit arch cnn"),
    ("absent.weights.h5", None, "file not found"),
    ("weights.pt", b"x", "cnn takes a whole-model .keras or .weights.h5 file"),
])
def test_train_with_bad_weights_file(name, data, phrase, inputs, tmp_path, cli_run):
    pytest.importorskip("tensorflow")
    weights = tmp_path / name
    if data is not None:
        weights.write_bytes(data)
    code, _, err = cli_run("train", "--data", inputs["ds"], "--out", tmp_path / "run", "--epochs", "1",
                             "--img-size", "32", "--weights", weights)
    assert_clean_failure(code, err, 1, str(weights), phrase)
    assert not (tmp_path / "run" / "model.keras").exists()
