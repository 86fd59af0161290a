"""Runtime backends: parity of every format with Keras, batching, metadata, errors, and no TensorFlow import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from procs import no_tf_env
from runtime_models import SIZE, build_tiny_models, train_images

from edge_dfd.core.errors import ModelError
from edge_dfd.core.formats import FORMATS
from edge_dfd.runtime import load_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


@pytest.fixture(scope="module")
def images():
    x, y = train_images(24, seed=7)  # not the training images
    return x, y


@pytest.fixture(scope="module")
def keras_p(models, images):
    return load_model(models["keras"]).predict(images[0])


def test_every_format_has_a_parity_test(models):
    assert set(models) == set(FORMATS)


@pytest.mark.parametrize("name", list(FORMATS))
def test_parity_with_keras(models, images, keras_p, name):
    fmt = FORMATS[name]
    det = load_model(models[name], threads=2)
    assert det.format == name and det.input_size == SIZE and det.threshold == 0.5
    p = det.predict(images[0])
    assert p.dtype == np.float32 and p.shape == (len(images[0]),)
    np.testing.assert_allclose(p, keras_p, atol=max(fmt.max_abs_diff, 1e-5))
    assert np.abs(p - keras_p).mean() <= max(fmt.mean_abs_diff, 1e-6)
    assert ((p >= 0.5) == (keras_p >= 0.5)).mean() >= fmt.min_agreement
    # the tiny model separates the generated classes: probabilities are spread, not constant
    assert p[images[1] == 1].mean() > 0.5 > p[images[1] == 0].mean()


@pytest.mark.parametrize("name", ["tflite-fp32", "tflite-int8-io", "onnx"])
def test_batch_sizes_agree(models, images, name):
    det = load_model(models[name], threads=1)
    x = images[0]
    whole = det.predict(x)
    one_by_one = np.concatenate([det.predict(x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(one_by_one, whole[:5], atol=1e-5)
    np.testing.assert_allclose(det.predict(x[0]), whole[:1], atol=1e-5)  # a single (S, S, 3) image
    assert det.predict(x[:0]).shape == (0,)


def test_bad_batch_is_a_model_error(models):
    det = load_model(models["tflite-fp32"])
    with pytest.raises(ModelError, match=r"expected \(N, 32, 32, 3\)"):
        det.predict(np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ModelError, match="uint8"):
        det.predict(np.zeros((2, SIZE, SIZE, 3), np.float32))


def test_missing_provider_raises_listing_available(models):
    with pytest.raises(ModelError) as ei:
        load_model(models["onnx"], provider="NoSuchExecutionProvider")
    assert "NoSuchExecutionProvider" in str(ei.value) and "CPUExecutionProvider" in str(ei.value)


def test_provider_is_recorded(models):
    det = load_model(models["onnx"], provider="CPUExecutionProvider", threads=2)
    assert det.provider == "CPUExecutionProvider" and det.describe()["threads"] == 2


def test_file_without_metadata_is_inferred_and_said_once(models, tmp_path, capsys, images, keras_p):
    raw = tmp_path / "plain.tflite"
    # strip the edge-dfd metadata by rewriting the flatbuffer without it
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(models["tflite-int8"].read_bytes()), 0)
    m.metadata = [md for md in (m.metadata or []) if md.name not in ("edge_dfd", b"edge_dfd")]
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    raw.write_bytes(bytes(b.Output()))
    det = load_model(raw)
    load_model(raw)
    err = capsys.readouterr().err
    assert err.count("carries no edge-dfd metadata") == 1
    assert det.meta_inferred and det.format == "tflite-int8" and det.threshold == 0.5 and det.input_size == SIZE
    np.testing.assert_allclose(det.predict(images[0]), keras_p, atol=FORMATS["tflite-int8"].max_abs_diff)


def test_wrong_input_layout_is_a_model_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])  # NCHW
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
    node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)
    node2 = helper.make_node("Unsqueeze", ["y", "one"], ["z"])
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 1])
    g = helper.make_graph([node, node2], "g", [x], [z], initializer=[axes, one])
    p = tmp_path / "nchw.onnx"
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(p))
    with pytest.raises(ModelError, match=r"expected \(N, S, S, 3\)"):
        load_model(p)


@pytest.mark.parametrize("content,match", [(b"", "not a TFLite"), (b"garbage" * 20, "not a TFLite")])
def test_corrupt_tflite(tmp_path, content, match):
    p = tmp_path / "bad.tflite"
    p.write_bytes(content)
    with pytest.raises(ModelError, match=match):
        load_model(p)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ModelError, match="unknown model type"):
        load_model(tmp_path / "m.pt")
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "m.onnx")


def test_default_model_missing_is_clear(tmp_path, monkeypatch):
    from edge_dfd.runtime import zoo

    monkeypatch.setattr(zoo, "DEFAULT_DIR", tmp_path)
    monkeypatch.delenv("EDGE_DFD_DEFAULT_MODEL_DIR", raising=False)
    with pytest.raises(ModelError, match="bundled default model is missing in format 'tflite-fp32'"):
        load_model("default")


def test_default_model_loads_from_zoo(tmp_path, monkeypatch, models):
    from edge_dfd.runtime import zoo

    (tmp_path / "detector_fp32.tflite").write_bytes(models["tflite-fp32"].read_bytes())
    monkeypatch.setattr(zoo, "DEFAULT_DIR", tmp_path)
    monkeypatch.delenv("EDGE_DFD_DEFAULT_MODEL_DIR", raising=False)
    assert zoo.DEFAULT_FORMAT == "tflite-fp32" and zoo.available_formats() == ["tflite-fp32"]
    det = load_model("default")
    assert det.format == "tflite-fp32" and det.path == tmp_path / "detector_fp32.tflite"
    with pytest.raises(ModelError, match="format 'onnx'"):
        load_model("default", format="onnx")


def test_tflite_and_onnx_paths_never_import_tensorflow(models, tmp_path, images, keras_p):
    np.save(tmp_path / "x.npy", images[0])
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        try:
            import tensorflow  # noqa
            print("BLOCKER FAILED"); sys.exit(1)
        except ImportError:
            pass
        from edge_dfd.runtime import load_model
        x = np.load({str(tmp_path / 'x.npy')!r})
        out = {{}}
        for name, path in {json.dumps({k: str(v) for k, v in models.items() if k != 'keras'})}.items():
            out[name] = load_model(path, threads=1).predict(x).tolist()
        try:
            load_model({str(models['keras'])!r})
        except Exception as exc:
            out["keras_error"] = f"{{type(exc).__name__}}: {{exc}}"
        out["tf_loaded"] = any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=no_tf_env(tmp_path),
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tf_loaded"] is False
    assert out["keras_error"].startswith("MissingDependency") and "pip install" in out["keras_error"]
    for name in models:
        if name != "keras":
            np.testing.assert_allclose(out[name], keras_p, atol=max(FORMATS[name].max_abs_diff, 1e-5))
