"""edge-dfd convert: every format of the table converts, verifies and carries its metadata.

One tiny functional model (32 px), trained for a few steps on generated faces so its outputs are not
all 0.5, is converted to every format ONCE (module fixture); the tests read those files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from runtime_models import SIZE, tiny_model
from synth import make_140k

from edge_dfd.core import formats as formats_mod
from edge_dfd.core.formats import EXPORT_FORMATS, FORMATS

# |dP(fake)| allowed between the Keras model and each export, on the verification images.
PARITY_ATOL = {
    "tflite-fp32": 1e-5,
    "tflite-fp16": 2e-3,
    "tflite-int8": 0.06,
    "tflite-int8-io": 0.06,
    "onnx": 1e-5,
    "onnx-int8": 0.06,
    "onnx-int8-arm": 0.06,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(keras path, data root): a trained tiny model whose metadata records the data folder."""
    from edge_dfd.core.meta import ModelMeta, write_meta

    d = tmp_path_factory.mktemp("convert")
    root = make_140k(d / "data", counts={"train": 8, "valid": 60, "test": 2}, size=SIZE)
    path = d / "tiny.keras"
    tiny_model().save(path)
    write_meta(path, ModelMeta(arch="tiny", input_size=SIZE, threshold=0.6, threshold_source="test",
                               training={"data": str(root)}))
    return path, root


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory):
    """Every export format, converted once with 16 calibration images (the train split) and the default
    verification (all 120 valid images: fewer than 2,000)."""
    from edge_dfd.export.convert import convert_model

    path, _ = tiny
    out = tmp_path_factory.mktemp("exports")
    results = convert_model(path, "all", out_dir=out, calib_size=16)
    return {r.format: r for r in results}


def test_every_format_in_the_table_has_a_test_and_a_converter():
    from edge_dfd.export.routes import CONVERTERS, _load_all

    _load_all()
    assert set(PARITY_ATOL) == set(EXPORT_FORMATS), "add the new format to PARITY_ATOL"
    assert set(CONVERTERS) == set(EXPORT_FORMATS)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_format_converts_verifies_and_matches_keras(fmt, converted, tiny):
    from edge_dfd.export.imagesets import select_images
    from edge_dfd.modelling.kerasio import load_keras
    from edge_dfd.runtime import load_model

    r = converted[fmt]
    assert r.ok and r.status == "ok", r.error
    assert r.verify_n == 120 and r.verify_source.endswith(":valid")
    assert r.bytes > 1000
    assert r.path.endswith(FORMATS[fmt].filename("tiny"))
    # independent parity check on the same verification images, through the public runtime
    path, root = tiny
    _, vset = select_images(root, SIZE, 16, 2000)
    p_keras = np.asarray(load_keras(path)(vset.x.astype("float32"))).ravel()
    assert p_keras.std() > 0.05, "the tiny model must not output a constant"
    p_exp = load_model(r.path).predict(vset.x)
    np.testing.assert_allclose(p_exp, p_keras, atol=PARITY_ATOL[fmt], rtol=0)
    assert r.max_abs_diff == pytest.approx(float(np.abs(p_exp - p_keras).max()), abs=1e-6)
    assert r.max_abs_diff <= FORMATS[fmt].max_abs_diff and r.agreement >= FORMATS[fmt].min_agreement
    assert r.accuracy_keras == 1.0 and r.accuracy_export == 1.0
    # both right on all 120 images: the one-sided 95 % Newcombe bound of the accuracy loss is 1.6449^2 / (120 +
    # 1.6449^2) (the Wilson lower end of 120/120 at 90 %), within the 3-point margin; identical AUCs: bound 0
    assert r.accuracy_loss_upper95 == pytest.approx(1.6449**2 / (120 + 1.6449**2), abs=1e-4)
    assert r.auc_loss_upper95 == pytest.approx(0.0, abs=1e-9) and r.needed_n is None


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_metadata_round_trip(fmt, converted, tiny):
    from edge_dfd.core.fsutil import sha256_file
    from edge_dfd.core.meta import read_meta
    from edge_dfd.runtime import load_model

    path, root = tiny
    meta = read_meta(converted[fmt].path)
    f = FORMATS[fmt]
    assert (meta.format, meta.input_size, meta.input_dtype, meta.color_order) == (fmt, SIZE, f.input_dtype, "RGB")
    assert meta.threshold == 0.6 and meta.arch == "tiny" and meta.output == "P(fake)"
    assert meta.source_sha256 == sha256_file(path)
    assert meta.training["data"] == str(root)
    if f.quantized:
        assert meta.calibration == {"source": f"{root.resolve()}:train", "size": 16}
    else:
        assert meta.calibration is None
    v = meta.verification
    assert v["ok"] is True and v["status"] == "ok" and v["n"] == 120
    assert v["max_abs_diff"] == converted[fmt].max_abs_diff
    backend = load_model(converted[fmt].path)
    assert backend.format == fmt and backend.threshold == 0.6 and not backend.meta_inferred


def test_int8_io_takes_raw_uint8_pixels(converted):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=converted["tflite-int8-io"].path)
    d = it.get_input_details()[0]
    assert d["dtype"] == np.uint8
    scale, zp = d["quantization"]
    assert zp == 0 and (scale == pytest.approx(1 / 255) or scale == pytest.approx(1.0))
    assert it.get_output_details()[0]["dtype"] == np.float32


def test_cli_json_and_next_command(tiny, tmp_path, cli_run):
    path, _ = tiny
    code, out, err = cli_run("convert", path, "--formats", "onnx,tflite-fp32", "--out", tmp_path,
                             "--verify-size", "8", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["format"] for r in rows] == ["tflite-fp32", "onnx"]
    for r in rows:
        assert {"format", "path", "bytes", "max_abs_diff", "agreement", "ok"} <= set(r)
        assert r["ok"] and r["max_abs_diff"] < 1e-5 and r["agreement"] == 1.0
    assert "tiny_fp32.tflite" in err and "max|dp|" in err
    assert f"edge-dfd bench {tmp_path}" in err


@pytest.mark.slow
def test_int8_gate_ok_on_enough_images_unproven_on_60_and_failed_when_broken(tiny, converted, tmp_path, cli_run,
                                                                            monkeypatch):
    """Issue 25 end to end: the same faithful tflite-int8 file (same 16 calibration images) is "ok" on the 120
    verification images (the fixture) and "unproven" on 60, with exit 4, the images it needs, its file written and
    its status in the metadata; a broken one (calibrated on flat grey) fails with exit 3."""
    from edge_dfd.core.meta import read_meta
    from edge_dfd.export import convert, imagesets

    assert converted["tflite-int8"].status == "ok" and converted["tflite-int8"].verify_n == 120
    code, out, err = cli_run("convert", tiny[0], "--formats", "tflite-int8", "--calib-size", "16", "--out",
                             tmp_path / "u", "--verify-n", "60", "--json")
    assert code == 4, err
    (row,) = json.loads(out)
    assert row["status"] == "unproven" and row["ok"] is False and row["verify_n"] == 60
    assert row["accuracy_keras"] == row["accuracy_export"] == 1.0 and row["auc_loss_upper95"] == pytest.approx(0)
    # both right on all 60: the bound is 1.6449^2 / (60 + 1.6449^2) = 0.043 > 0.03; it would take n with
    # 1.6449^2 / (n + 1.6449^2) <= 0.03, i.e. 88 images
    assert row["accuracy_loss_upper95"] == pytest.approx(0.0431, abs=1e-3) and row["needed_n"] == 88
    assert "tflite-int8: unproven - accuracy loss <= 4.3 points, ROC AUC loss <= 0.0 points" in err
    assert "needs about 88 labelled verification images (has 60)" in err and "UNPROVEN" in err
    assert f"next: edge-dfd bench {tmp_path / 'u'}" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: tflite-int8 is not shown worse than the Keras model but not shown within the "
                           "margin on 60 images") and "Traceback" not in err
    meta = read_meta(tmp_path / "u" / "tiny_int8.tflite")
    assert meta.verification["status"] == "unproven" and meta.verification["needed_n"] == 88
    assert "Newcombe" in meta.verification["tolerance"]["noninferiority"]["method"]

    real_select = convert.select_images
    monkeypatch.setattr(convert, "select_images", lambda root, size, c, v: (
        lambda cv: (imagesets.ImageSet(np.full_like(cv[0].x, 128), cv[0].y_fake, cv[0].source), cv[1]))(
        real_select(root, size, c, v)))
    code, out, err = cli_run("convert", tiny[0], "--formats", "onnx-int8", "--calib-size", "16", "--out",
                             tmp_path / "b", "--keep-threshold", "--json")
    assert code == 3, err
    (row,) = json.loads(out)
    assert row["status"] == "failed" and row["verify_n"] == 120 and row["accuracy_export"] == 0.5
    assert "next:" not in err and "FAIL" in err and "status=failed" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("value", ["0", "-3"])
def test_verify_n_must_be_positive(tiny, cli_run, value):
    code, _, err = cli_run("convert", tiny[0], "--verify-n", value)
    assert code == 2 and "--verify-n" in err and value in err


@pytest.mark.slow
def test_no_verify_skips_the_check(tiny, tmp_path):
    from edge_dfd.core.meta import read_meta
    from edge_dfd.export.convert import convert_model

    (r,) = convert_model(tiny[0], "tflite-fp32", out_dir=tmp_path, verify=False)
    assert r.ok and r.max_abs_diff is None and r.verify_n == 0
    assert read_meta(r.path).verification is None


@pytest.mark.slow
def test_verification_failure_exits_3_with_numbers(tiny, tmp_path, cli_run, monkeypatch):
    strict = dataclasses.replace(FORMATS["tflite-fp16"], max_abs_diff=0.0)
    monkeypatch.setitem(formats_mod.FORMATS, "tflite-fp16", strict)
    code, _, err = cli_run("convert", tiny[0], "--formats", "tflite-fp16", "--out", tmp_path, "--verify-size", "8")
    assert code == 3
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: tflite-fp16 disagrees with the Keras model on 8 images: max |dp| ")
    assert "> 0" in line and "Traceback" not in err


def test_collapsed_int8_model_fails():
    from edge_dfd.export.convert import compare, problems

    p_ref = np.array([0.1, 0.9, 0.2, 0.8], np.float32)
    p_exp = np.array([0.55, 0.55, 0.55, 0.55], np.float32)
    nums = compare(p_ref, p_exp, 0.5, np.array([0, 1, 0, 1]))
    assert nums["agreement"] == 0.5 and nums["accuracy_keras"] == 1.0 and nums["accuracy_export"] == 0.5
    bad = problems(dataclasses.replace(FORMATS["onnx-int8"], max_abs_diff=1.0, mean_abs_diff=1.0,
                                       min_agreement=0.0, max_median_abs_diff=1.0), nums)
    assert bad == ["collapsed to one class (every image 'fake')"]


def test_probe_inputs_are_deterministic_and_span_the_range():
    from edge_dfd.export.imagesets import probe_inputs

    a, b = probe_inputs(8, 24, seed=3), probe_inputs(8, 24, seed=3)
    assert a.shape == (8, 24, 24, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert a.min() < 30 and a.max() > 225 and not np.array_equal(a, probe_inputs(8, 24, seed=4))


# ---------------------------------------------------------------- bad input: one line, no traceback


def _one_line_error(code, err, expect_code=1):
    assert code == expect_code, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in err
    return lines[-1]


def test_unknown_format_lists_valid_ones(tiny, cli_run):
    line = _one_line_error(*cli_run("convert", tiny[0], "--formats", "onnx,tflite-int9")[::2])
    assert "unknown format 'tflite-int9'" in line and "Did you mean 'tflite-int8'?" in line
    assert "tflite-fp16" in line and "onnx-int8" in line


@pytest.mark.parametrize("content, expect", [
    (b"", "empty file"),
    (b"hello, not a zip", "not a zip archive"),
])
def test_not_a_keras_model(tmp_path, cli_run, content, expect):
    p = tmp_path / "m.keras"
    p.write_bytes(content)
    assert expect in _one_line_error(*cli_run("convert", p)[::2])


def test_truncated_keras_file(tiny, tmp_path, cli_run):
    p = tmp_path / "cut.keras"
    p.write_bytes(tiny[0].read_bytes()[:3000])
    assert "cut.keras" in _one_line_error(*cli_run("convert", p)[::2])


def test_lambda_layer_refused_in_safe_mode(tmp_path, cli_run):
    import keras

    i = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(i)
    o = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    p = tmp_path / "lam.keras"
    keras.Model(i, o).save(p)
    line = _one_line_error(*cli_run("convert", p, "--formats", "onnx")[::2])
    assert "Lambda layer 'scale'" in line and "--unsafe" in line


def test_calibration_data_without_readable_images(tiny, tmp_path, cli_run):
    root = tmp_path / "broken"
    shutil.copytree(tiny[1], root)
    for jpg in (root / "real_vs_fake").rglob("*.jpg"):
        jpg.write_bytes(b"not an image")
    line = _one_line_error(*cli_run("convert", tiny[0], "--formats", "tflite-int8", "--calib-data", root,
                                    "--out", tmp_path)[::2])
    assert "no readable images" in line and "broken" in line


@pytest.mark.slow
def test_int8_without_any_data_needs_calib_data(tmp_path, cli_run):
    p = tmp_path / "nodata.keras"
    tiny_model().save(p)  # no edge-dfd metadata: no recorded data folder
    line = _one_line_error(*cli_run("convert", p, "--formats", "onnx-int8", "--out", tmp_path)[::2])
    assert "--calib-data" in line and "onnx-int8" in line


@pytest.mark.slow
def test_float_formats_without_data_verify_on_probe_inputs(tmp_path):
    from edge_dfd.core.meta import read_meta
    from edge_dfd.export.convert import convert_model

    p = tmp_path / "nodata.keras"
    tiny_model(1).save(p)
    (r,) = convert_model(p, ["onnx"], out_dir=tmp_path, verify_size=16)
    assert r.ok and r.verify_source == "generated probe inputs" and r.verify_n == 16
    assert r.accuracy_keras is None and r.max_abs_diff < 1e-5
    assert read_meta(r.path).threshold == 0.5


def _max_int_weight(path) -> dict:
    """{"depthwise"/"regular": max |int8 weight|} of a QDQ file's quantised Conv weights."""
    import onnx
    from onnx import numpy_helper

    q = onnx.load(path)
    ints = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    consumer = {n.input[0]: n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in ints}
    conv_of = {i: n for n in q.graph.node if n.op_type == "Conv" for i in n.input}
    groups = {}
    for name, dq in consumer.items():
        conv = conv_of.get(dq.output[0])
        if conv is not None:
            g = next((a.i for a in conv.attribute if a.name == "group"), 1)
            groups["depthwise" if g > 1 else "regular"] = int(np.abs(ints[name]).max())
    return groups


@pytest.mark.slow
def test_onnx_int8_weight_ranges(tiny, tmp_path):
    """onnx-int8: reduce_range (7-bit weights, no u8 x s8 saturation on AVX2) for ordinary convolutions, the full
    int8 range for depthwise ones (32-bit accumulation, and 9-tap filters lose most from a lost bit).
    onnx-int8-arm: the full int8 range everywhere (ARM64 / VNNI kernels accumulate in 32 bits)."""
    import keras
    import onnx

    from edge_dfd.core.meta import ModelMeta, write_meta
    from edge_dfd.export.convert import convert_model
    from edge_dfd.export.onnx import depthwise_weights

    _, root = tiny
    keras.utils.set_random_seed(3)
    i = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(i)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    m = keras.Model(i, keras.layers.Dense(1, activation="sigmoid")(x))
    path = tmp_path / "dw.keras"
    m.save(path)
    write_meta(path, ModelMeta(arch="dw", input_size=SIZE, threshold=0.5, threshold_source="test"))
    r7, r8 = convert_model(path, "onnx-int8,onnx-int8-arm", out_dir=tmp_path, calib_data=root, calib_size=16,
                           verify_size=8)
    for r in (r7, r8):  # untrained: P ~ 0.5, so agreement is moot
        assert r.max_abs_diff is not None and r.max_abs_diff < 0.05, r
    assert _max_int_weight(r7.path) == {"depthwise": 127, "regular": 64}
    assert _max_int_weight(r8.path) == {"depthwise": 127, "regular": 127}
    fp32 = tmp_path / "dw.onnx"
    convert_model(path, "onnx", out_dir=tmp_path, calib_data=root, verify_size=8)
    assert list(depthwise_weights(onnx.load(fp32)).values()) == [8]


def test_matched_threshold_reproduces_the_keras_verdicts():
    from edge_dfd.export.convert import matched_threshold

    rng = np.random.default_rng(0)
    p_ref = rng.uniform(0, 1, 400)
    shifted = np.clip(p_ref - 0.2, 0, 1)  # an export that scores everything 0.2 lower
    t = matched_threshold(p_ref, shifted, 0.5)
    assert 0.29 <= t <= 0.31
    assert ((shifted >= t) == (p_ref >= 0.5)).all()
    assert matched_threshold(p_ref, p_ref, 0.5) == 0.5  # already agreeing: the Keras threshold is kept
    # of the equally good values, the one closest to 0.5 (alpha=1: no significance test)
    t = matched_threshold(p_ref, p_ref + 2e-3, 0.5, alpha=1.0)
    assert 0.5 < t <= 0.5 + 1e-2 and ((p_ref + 2e-3 >= t) == (p_ref >= 0.5)).all()
    # ... but a move that fixes one or two verdicts is noise: the Keras threshold stays
    assert 0 < (((p_ref + 2e-3) >= 0.5) != (p_ref >= 0.5)).sum() <= 2
    assert matched_threshold(p_ref, p_ref + 2e-3, 0.5) == 0.5


def test_sign_test_p():
    from math import comb

    from edge_dfd.export.convert import sign_test_p

    assert sign_test_p(0, 0) == 1.0 and sign_test_p(2, 0) == 0.5 and sign_test_p(5, 0) == 0.0625
    assert sign_test_p(6, 0) == pytest.approx(0.03125) and sign_test_p(0, 6) == pytest.approx(0.03125)
    assert sign_test_p(10, 2) == pytest.approx(2 * sum(comb(12, i) for i in range(10, 13)) / 4096)


@pytest.mark.slow
def test_int8_threshold_is_rematched_and_stored(tiny, tmp_path, monkeypatch):
    """With enough calibration images an int8 file gets its own threshold (in its metadata, used by every runtime),
    chosen on the calibration images; verification then judges the export's verdicts at that threshold."""
    from edge_dfd.core.meta import read_meta
    from edge_dfd.export import convert, imagesets
    from edge_dfd.modelling.kerasio import load_keras
    from edge_dfd.runtime import load_model

    path, root = tiny
    monkeypatch.setattr(convert, "MATCH_MIN_IMAGES", 1)
    p_keras = np.asarray(load_keras(path)(imagesets.select_images(root, SIZE, 16, 8)[0].x.astype("float32"))).ravel()
    # a Keras threshold sitting among the calibration scores, so a shifted int8 score could flip verdicts
    t_keras = float(np.sort(p_keras)[8] - 1e-4)
    out = tmp_path / "m"
    out.mkdir()
    shutil.copy(path, out / "tiny.keras")
    from edge_dfd.core.meta import write_meta

    meta = read_meta(path)
    meta.threshold = t_keras
    write_meta(out / "tiny.keras", meta)
    (r,) = convert.convert_model(out / "tiny.keras", "tflite-int8", calib_size=16, verify_size=8)
    m = read_meta(r.path)
    calib = imagesets.select_images(root, SIZE, 16, 8)[0]
    p_int8 = load_model(r.path).predict(calib.x)
    want = p_keras >= t_keras
    assert ((p_int8 >= m.threshold) == want).mean() >= ((p_int8 >= t_keras) == want).mean()
    assert r.threshold == m.threshold == load_model(r.path).threshold
    assert m.verification["export_threshold"] == m.threshold and m.verification["threshold"] == t_keras
    if m.threshold != t_keras:
        assert m.extra["threshold_match"]["agreement_after"] >= m.extra["threshold_match"]["agreement_before"]
        assert "re-matched" in m.threshold_source


# ---------------------------------------------------------------- the gate (issue 15: an honest convert gate)


def _gate(fmt_name, p_ref, p_exp, y, threshold=0.5):
    from edge_dfd.export.convert import compare, problems

    nums = compare(np.asarray(p_ref, np.float32), np.asarray(p_exp, np.float32), threshold, np.asarray(y))
    return nums, problems(FORMATS[fmt_name], nums)


def _scores(n=76, seed=0):
    """Keras-like scores: every image on the right side of 0.5 (Keras accuracy 1.0), well away from it."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    p = np.where(y == 1, rng.uniform(0.7, 0.95, n), rng.uniform(0.05, 0.3, n))
    return y, p


def _flip(p_ref, idx):
    """The export's verdict flips on ``idx``, just across 0.5 (a quantisation error, not a scrambled ranking)."""
    p = p_ref.copy()
    p[idx] = np.where(p_ref[idx] >= 0.5, 0.49, 0.51)
    return p


def test_int8_gate_one_outlier_image_does_not_fail_the_file():
    y, p_ref = _scores()
    p_exp = p_ref + 0.01
    p_exp[5] = 1.0 - p_ref[5]  # one image moves by ~0.6 and flips (the bundled model's 0.633 case)
    nums, bad = _gate("tflite-int8", p_ref, p_exp, y)
    assert nums["max_abs_diff"] > 0.5 and nums["mean_abs_diff"] < 0.05 and nums["agreement"] == 75 / 76
    assert bad == []
    # float formats keep numeric parity strict: the same file as fp32 is a bug
    _, bad_fp32 = _gate("tflite-fp32", p_ref, p_exp, y)
    assert bad_fp32[0].startswith("max |dp| 0.") and "> 0.0001" in bad_fp32[0]
    _, ok_fp32 = _gate("onnx", p_ref, p_ref + 5e-6, y)
    assert ok_fp32 == []


def test_int8_gate_agreement_uses_the_upper_95_bound():
    y, p_ref = _scores(76)
    nums, bad = _gate("onnx-int8", p_ref, _flip(p_ref, np.arange(0, 76, 16)), y)  # 5 flips: 71/76, bound 0.98
    assert nums["agreement"] == pytest.approx(71 / 76) and nums["agreement_ci95"][1] > 0.97 and bad == []
    # 19 flips: 57/76 = 0.75, upper bound 0.84 < 0.90
    nums, bad = _gate("onnx-int8", p_ref, _flip(p_ref, np.arange(0, 76, 4)), y)
    lo, hi = nums["agreement_ci95"]
    assert nums["agreement"] == 0.75 and hi == pytest.approx(0.8424, abs=1e-3) and lo == pytest.approx(0.6378, abs=1e-3)
    assert bad[0] == f"agreement 0.750 (95% CI {lo:.3f}-{hi:.3f}) < 0.9"


def test_int8_gate_accuracy_drop_must_be_significant_and_large():
    y, p_ref = _scores(76)
    p_exp = _flip(p_ref, np.arange(6))  # 6 images, all right -> wrong: drop 0.079, sign test p = 2/64
    nums, bad = _gate("tflite-int8", p_ref, p_exp, y)
    assert (nums["keras_only_correct"], nums["export_only_correct"]) == (6, 0)
    assert nums["accuracy_drop_p"] == pytest.approx(0.03125)
    assert any(b.startswith("accuracy 1.000 -> 0.921") and "p=0.031" in b for b in bad), bad
    nums, bad = _gate("tflite-int8", p_ref, _flip(p_ref, np.arange(5)), y)  # 5 images: p = 0.0625 -> passes
    assert nums["accuracy_drop_p"] == pytest.approx(0.0625) and bad == []


def test_int8_gate_significant_auc_drop_fails():
    y, p_ref = _scores(120)
    rng = np.random.default_rng(3)
    # same verdicts at 0.5 for most images, but the ranking inside each side is scrambled across classes
    p_exp = np.where(p_ref >= 0.5, 0.5 + rng.uniform(0, 0.01, 120), 0.49 - rng.uniform(0, 0.01, 120))
    p_exp[:8] = np.where(y[:8] == 1, 0.45, 0.55)  # and 8 confident verdict flips
    nums, bad = _gate("onnx-int8-arm", p_ref, p_exp, y)
    assert nums["auc_keras"] == 1.0 and nums["auc_export"] < 0.95 and nums["auc_drop_p"] < 0.05
    assert any(b.startswith("ROC AUC 1.000 -> ") for b in bad), bad


def test_binomial_ci_and_delong_reference_values():
    from edge_dfd.export.convert import binomial_ci, delong_p

    # Clopper-Pearson bounds = scipy.stats.beta.ppf(0.025, k, n-k+1) / ppf(0.975, k+1, n-k) (scipy 1.17.1)
    for (k, n), (lo, hi) in {(63, 75): (0.737187, 0.914498), (60, 75): (0.691674, 0.883518),
                             (74, 75): (0.927937, 0.999662), (5, 24): (0.071319, 0.421513),
                             (0, 10): (0.0, 0.308497), (10, 10): (0.691503, 1.0)}.items():
        got = binomial_ci(k, n)
        assert got == pytest.approx((lo, hi), abs=2e-6), (k, n)
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.5, 0.7, 0.8, 0.9, 0.95])
    b = np.array([0.3, 0.6, 0.2, 0.7, 0.5, 0.4, 0.8, 0.1, 0.9, 0.65])
    # the fast DeLong of Sun & Xu (2014) with scipy's normal tail gives 0.11314000815200624 here
    assert delong_p(y, a, b) == pytest.approx(0.113140008152, abs=1e-10)
    assert delong_p(y, a, a) == 1.0 and delong_p([0, 1], [0.1, 0.9], [0.9, 0.1]) == 1.0


@pytest.mark.slow
def test_int8_calibrated_on_constant_images_fails_the_gate(tiny, tmp_path, monkeypatch):
    """A deliberately broken int8 file (calibrated on one flat grey image repeated) must fail - on its verdicts,
    not on max |dp|, which the int8 gate no longer judges."""
    from edge_dfd.export import convert, imagesets

    real_select = convert.select_images

    def flat_calibration(root, size, calib_size, verify_size):
        calib, verify = real_select(root, size, calib_size, verify_size)
        return imagesets.ImageSet(np.full_like(calib.x, 128), calib.y_fake, calib.source), verify

    monkeypatch.setattr(convert, "select_images", flat_calibration)
    path, _ = tiny
    results = convert.convert_model(path, "tflite-int8,onnx-int8", out_dir=tmp_path, calib_size=16, verify_size=24,
                                     match_threshold=False)
    r = {r.format: r for r in results}
    for res in r.values():
        assert not res.ok and res.verify_n == 24 and res.accuracy_keras == 1.0, res
        assert res.error.startswith(f"{res.format} disagrees with the Keras model on 24 images: ")
        assert "max |dp|" not in res.error.split(" (max / mean |dp|")[0]  # reported, never the reason
    # LiteRT maps every real face to 0.492 and every fake to 0.609 (Keras: ~0.34 / ~0.83): at this model's
    # threshold 0.6 the verdicts survive by luck; the systematic shift is what fails it
    assert r["tflite-int8"].agreement == 1.0 and "median |dp| 0.18" in r["tflite-int8"].error
    assert "(probabilities shifted systematically)" in r["tflite-int8"].error
    # onnxruntime collapses: every image 'real', half the verdicts wrong
    onnx = r["onnx-int8"]
    assert onnx.accuracy_export == 0.5 and onnx.agreement_ci95[1] < 0.9
    assert "collapsed to one class (every image 'real')" in onnx.error and "agreement 0.500 (95% CI" in onnx.error
    assert "accuracy 1.000 -> 0.500 (Keras alone right on 12, the export alone on 0 images" in onnx.error
    with pytest.raises(convert.VerificationError):
        convert.raise_for_failures(results)


@pytest.mark.slow
def test_int8_calibrated_on_constant_images_fails_at_any_threshold(tiny, tmp_path, monkeypatch):
    """The same broken LiteRT file with the model threshold at 0.7 (Keras still 100 % right): it collapses."""
    from edge_dfd.core.meta import read_meta, write_meta
    from edge_dfd.export import convert, imagesets

    real_select = convert.select_images
    monkeypatch.setattr(convert, "select_images", lambda root, size, c, v: (
        lambda cv: (imagesets.ImageSet(np.full_like(cv[0].x, 128), cv[0].y_fake, cv[0].source), cv[1]))(
        real_select(root, size, c, v)))
    src = tmp_path / "tiny.keras"
    shutil.copy(tiny[0], src)
    meta = read_meta(tiny[0])
    meta.threshold = 0.7
    write_meta(src, meta)
    (res,) = convert.convert_model(src, "tflite-int8", calib_size=16, verify_size=24, match_threshold=False)
    assert not res.ok and res.accuracy_keras == 1.0 and res.accuracy_export == 0.5
    assert "collapsed to one class (every image 'real')" in res.error and "agreement 0.500" in res.error


@pytest.mark.slow
def test_convert_default_uses_the_bundled_source(tiny, tmp_path, monkeypatch, cli_run):
    from edge_dfd.core.fsutil import sha256_file
    from edge_dfd.core.meta import read_meta
    from edge_dfd.runtime import zoo

    path, root = tiny
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(path, bundle / "detector.keras")
    zoo.write_manifest(bundle)
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(bundle))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_run("convert", "default", "--formats", "tflite-fp32,tflite-int8", "--calib-data", root,
                             "--calib-size", "16", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["format"] for r in rows] == ["tflite-fp32", "tflite-int8"] and all(r["ok"] for r in rows)
    out_dir = tmp_path / "exports" / "default"  # never into the installed package
    assert (tmp_path / rows[0]["path"]).resolve() == (out_dir / "detector_fp32.tflite").resolve()
    assert read_meta(out_dir / "detector_int8.tflite").source_sha256 == sha256_file(bundle / "detector.keras")
    assert sorted(p.name for p in bundle.iterdir()) == ["detector.keras", "manifest.json"]
    code, _, err = cli_run("convert", "default", "--formats", "tflite-int4")
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: unknown format 'tflite-int4'")
    (bundle / "detector.keras").write_bytes(b"PK" + b"\0" * 100)  # damaged bundled source
    code, _, err = cli_run("convert", "default", "--formats", "tflite-fp32")
    assert code == 1 and "detector.keras is " in err.strip().splitlines()[-1] and "Traceback" not in err


def test_recorded_data_list_takes_the_first_folder_found(tiny, tmp_path):
    from edge_dfd.core.meta import ModelMeta
    from edge_dfd.export.imagesets import data_root

    _, root = tiny
    meta = ModelMeta(input_size=SIZE, training={"data": [str(tmp_path / "gone"), str(root)]})
    assert data_root(None, meta, tmp_path / "m.keras") == root
    meta = ModelMeta(input_size=SIZE, training={"data": ["shared/nowhere", "also/nowhere"]})
    assert data_root(None, meta, tmp_path / "m.keras") is None


@pytest.mark.heavy
@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.timeout(3600)
def test_bundled_model_passes_its_own_gate(tmp_path):
    """`edge-dfd convert default --calib-data faces140k-sample` with default settings: calibration on 200 of its
    train images, verification on all 150 valid images. 150 images cannot prove a 3-point margin: tflite-int8 and
    onnx-int8-arm are "unproven", never "failed" (onnx-int8 is shown worse on this set: 0.880 -> 0.813, see
    benchmarks/results/onnx_int8_variants.md)."""
    from conftest import FACES140K, _have

    if not _have(FACES140K):
        pytest.skip(f"needs the shared 140k sample at {FACES140K}")
    from edge_dfd.core.meta import read_meta
    from edge_dfd.export.convert import convert_model

    results = convert_model("default", "tflite-int8,onnx-int8-arm", out_dir=tmp_path, calib_data=FACES140K)
    for r in results:
        assert r.status == "unproven", r.error
        fmt = FORMATS[r.format]
        assert r.verify_n == 150 and r.agreement_ci95[1] >= fmt.min_agreement and r.agreement >= 0.9
        assert r.accuracy_loss_upper95 > 0.03 and r.auc_loss_upper95 < 0.03
        ver = read_meta(r.path).verification
        assert ver["status"] == "unproven" and ver["median_abs_diff"] < fmt.max_median_abs_diff
        assert read_meta(r.path).calibration["source"].endswith(":train")
        assert ver["tolerance"]["reported_not_gated"] == ["max_abs_diff", "mean_abs_diff"]
