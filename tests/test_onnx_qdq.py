"""onnx-int8-arm (full 8-bit weights) on CPUs whose int8 kernels saturate: detection and the float QDQ path.

onnxruntime's u8 x s8 kernels on x86 without VNNI add pairs of products in 16 bits (VPMADDUBSW): two products of
255 x 127 overflow it. ARM64 and VNNI CPUs accumulate in 32 bits. ``edge_dfd.runtime.onnx`` runs full-range files
with QDQ fusion off on saturating CPUs, which computes the same quantised arithmetic in float.
"""

from __future__ import annotations

import numpy as np
import pytest
from runtime_models import build_tiny_models, train_images

from edge_dfd.core import machine
from edge_dfd.core.errors import ModelError
from edge_dfd.runtime import load_model


@pytest.mark.parametrize("arch, flags, saturates", [
    ("x86_64", "sse4_2 avx avx2 fma", True),
    ("x86_64", "avx2 avx512f avx512_vnni", False),
    ("AMD64", "avx2 avx_vnni", False),
    ("aarch64", "fp asimd evtstrm", False),
    ("armv7l", "half thumb neon", False),
])
def test_int8_saturates_from_cpu_flags(monkeypatch, arch, flags, saturates):
    monkeypatch.setattr(machine.platform, "machine", lambda: arch)
    monkeypatch.setattr(machine, "_cpuinfo", lambda: {"flags": flags})
    assert machine.int8_saturates() is saturates


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


def _load(path, monkeypatch, saturates: bool, env: str | None = None):
    monkeypatch.setattr(machine, "int8_saturates", lambda: saturates)
    if env is None:
        monkeypatch.delenv("EDGE_DFD_ONNX_QDQ", raising=False)
    else:
        monkeypatch.setenv("EDGE_DFD_ONNX_QDQ", env)
    return load_model(path, threads=1)


def test_full_range_file_runs_in_float_only_where_int8_saturates(models, monkeypatch, capsys):
    from edge_dfd.runtime import onnx as onnx_runtime

    monkeypatch.setattr(onnx_runtime, "_noted", set())  # other tests may have loaded the file already
    x, y = train_images(16, seed=11)
    keras_p = load_model(models["keras"]).predict(x)
    det = _load(models["onnx-int8-arm"], monkeypatch, saturates=True)
    assert det.qdq_in_float and det.describe()["qdq_in_float"] is True
    assert "would saturate" in capsys.readouterr().err
    p_float = det.predict(x)
    np.testing.assert_allclose(p_float, keras_p, atol=0.06)  # quantised, and close to Keras
    assert np.abs(p_float - keras_p).max() > 1e-6  # ... but still the quantised model, not the float one
    _load(models["onnx-int8-arm"], monkeypatch, saturates=True)
    assert capsys.readouterr().err == ""  # the note is said once per file
    det = _load(models["onnx-int8-arm"], monkeypatch, saturates=False)
    assert not det.qdq_in_float
    np.testing.assert_allclose(det.predict(x), p_float, atol=0.02)  # no saturation on the tiny model's weights
    assert not _load(models["onnx-int8"], monkeypatch, saturates=True).qdq_in_float  # 7-bit file: int8 kernels
    assert not _load(models["onnx-int8-arm"], monkeypatch, saturates=True, env="int8").qdq_in_float
    assert _load(models["onnx-int8"], monkeypatch, saturates=False, env="float").qdq_in_float
    with pytest.raises(ModelError, match="EDGE_DFD_ONNX_QDQ='fast': expected 'int8' or 'float'"):
        _load(models["onnx-int8"], monkeypatch, saturates=False, env="fast")


def _saturating_conv(path) -> None:
    """y = Conv1x1(x) with 4 input channels, u8 activations (scale 1, zero point 0) and int8 weights of 127:
    for x = 255 every pair of products is 64,770, above the 32,767 a 16-bit pair sum holds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 4, 1, 1), 127, np.int8), "w_q")
    inits = [w, numpy_helper.from_array(np.array(1.0, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.uint8), "zp_u8"),
             numpy_helper.from_array(np.array(0, np.int8), "zp_s8"),
             numpy_helper.from_array(np.array(1024.0, np.float32), "s_out")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "zp_u8"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "zp_u8"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "s", "zp_s8"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "s_out", "zp_u8"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "s_out", "zp_u8"], ["y"])]
    g = helper.make_graph(nodes, "sat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]), str(path))


@pytest.mark.skipif(not machine.int8_saturates(), reason="this CPU's int8 kernels do not saturate (ARM64 or VNNI)")
def test_this_cpu_saturates_and_the_float_path_does_not(tmp_path):
    """The premise, measured: on this CPU the fused int8 Conv returns the saturated sum; the session option
    the runtime uses gives the exact one (4 x 255 x 127 = 129,540, i.e. 126.5 steps of 1024)."""
    import onnxruntime as ort

    from edge_dfd.runtime.onnx import QDQ_IN_FLOAT

    path = tmp_path / "sat.onnx"
    _saturating_conv(path)
    x = {"x": np.full((1, 4, 1, 1), 255, np.float32)}

    def run(qdq_in_float: bool) -> float:
        o = ort.SessionOptions()
        if qdq_in_float:
            o.add_session_config_entry(*QDQ_IN_FLOAT)
        return float(ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"]).run(None, x)[0].item())

    exact = 4 * 255 * 127
    assert abs(run(True) - exact) <= 1024  # one output step
    assert run(False) <= 2 * 32767 + 1024  # two saturated pair sums
