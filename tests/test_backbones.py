"""Ported backbones and the multi-crop detector: graph structure, head folding, save/load, export parity."""

import numpy as np
import pytest
from lazy import lazy_module

keras = lazy_module("keras")  # imported on first use, not while pytest collects

from edge_dfd.core.errors import ModelError  # noqa: E402
from edge_dfd.modelling import backbones as bb  # noqa: E402


def _images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def tiny():
    """A 32-px multi-crop MobileNetV2 detector (bundled ImageNet weights) with a fixed random head, and the
    matching feature model (random-init backbones give ~0 deep features, so real weights are used)."""
    feat = bb.multicrop_features("mobilenet_v2", 64, 64, bb.DEFAULT_CROPS, weights="imagenet")
    d = feat.output.shape[-1]
    rng = np.random.default_rng(1)
    kernel, bias = rng.normal(0, 0.05, d), 0.3
    model = bb.multicrop_model("mobilenet_v2", 64, 64, bb.DEFAULT_CROPS, weights="imagenet", head=(kernel, bias))
    return feat, model, kernel, bias


@pytest.mark.slow
def test_feature_dims_and_views(tiny):
    feat, model, _, _ = tiny
    assert feat.output.shape[1:] == (5, sum(bb.TAP_CHANNELS["mobilenet_v2"]))
    names = {l.name for l in model.layers}
    assert {"crop_q_tl", "crop_q_br", "mean_logit", "p_fake"} <= names
    # quadrant crops of a 64-px image are 32 px and are resized back to the 64-px view
    assert model.get_layer("crop_q_tl").output.shape[1:3] == (32, 32)


@pytest.mark.slow
def test_head_is_mean_logit_over_views(tiny):
    """The cached features (Keras call and predict) are each view computed directly, and the detector's P(fake) is
    the sigmoid of the head's mean logit over them. Was an xfail: the features model ran a trainable backbone's
    BatchNorm on batch statistics when called (errors ~1-3 at 64 px with 5 views)."""
    feat, model, kernel, bias = tiny
    x = _images(size=64)
    f = np.asarray(feat(x), np.float64)
    np.testing.assert_allclose(feat.predict(x, verbose=0), f, atol=1e-4)
    backbone = bb.build_backbone("mobilenet_v2", 64, "imagenet")
    inp = keras.Input((64, 64, 3))
    views = keras.Model(inp, bb.crop_views(inp, 64, bb.DEFAULT_CROPS, 64))(x)
    for i, v in enumerate(views):
        direct = np.concatenate([np.asarray(m).mean(axis=(1, 2)) for m in backbone(v, training=False)], axis=1)
        np.testing.assert_allclose(f[:, i], direct, atol=1e-4 * np.abs(direct).max())
    assert f.std(axis=0).mean() > 0.01  # the features really vary between images
    expect = 1 / (1 + np.exp(-(f @ kernel + bias).mean(axis=1)))
    got = np.asarray(model(x)).ravel()
    assert got.shape == (4,)
    np.testing.assert_allclose(got, expect, atol=1e-5)
    assert np.all((got > 0) & (got < 1))


@pytest.mark.slow
def test_quadrant_crops_see_the_right_pixels():
    """A model with only the top-left view must ignore the other three quadrants."""
    m = bb.multicrop_features("mobilenet_v2", 64, 64, ("q_tl",), weights="imagenet")
    x = _images(1, size=64)
    y = x.copy()
    y[:, 32:, :, :] = 0
    y[:, :, 32:, :] = 0
    fx = np.asarray(m(x))
    np.testing.assert_allclose(fx, np.asarray(m(y)), atol=1e-5 * np.abs(fx).max())
    z = x.copy()
    z[:, :32, :32, :] = 0
    assert np.abs(fx - np.asarray(m(z))).max() > 0.05 * np.abs(fx).max()


@pytest.mark.slow
def test_safe_mode_roundtrip(tiny, tmp_path):
    _, model, _, _ = tiny
    p = tmp_path / "m.keras"
    model.save(p)
    back = keras.models.load_model(p, safe_mode=True)
    x = _images(2, size=64, seed=3)
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.slow
def test_tflite_export_parity():
    """The multi-crop detector in TFLite gives Keras's P(fake). Two views (the whole image and a quadrant: every op
    the five views use): converting the five-view graph took 29.5 s alone on 2 cores, this one 20.1 s."""
    tf = pytest.importorskip("tensorflow")
    from ai_edge_litert.interpreter import Interpreter

    crops = ("whole", "q_br")
    d = sum(bb.TAP_CHANNELS["mobilenet_v2"])
    head = (np.random.default_rng(1).normal(0, 0.05, d), 0.3)
    model = bb.multicrop_model("mobilenet_v2", 64, 64, crops, weights="imagenet", head=head)
    it = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
    it.allocate_tensors()
    x = _images(1, size=64, seed=4)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"]).ravel()
    np.testing.assert_allclose(got, np.asarray(model(x)).ravel(), atol=1e-5)


@pytest.mark.slow
def test_two_backbones_concatenate_features():
    m = bb.multicrop_model({"mobilenet_v2": ("head_relu",), "efficientnet_lite0": ("block_15_out",)}, 32, 32,
                           ("whole",), weights=None)
    assert m.get_layer("logit").kernel.shape == (1280 + 320, 1)


def test_set_trainable_unfreezes_top_blocks_only():
    b = bb.build_backbone("mobilenet_v2", 32, None)
    bb.set_trainable(b, 15)
    trainable = {l.name for l in b.layers if l.trainable and l.weights}
    assert trainable == {"block_15_expand_conv", "block_15_depthwise_dw", "block_15_project_conv",
                         "block_16_expand_conv", "block_16_depthwise_dw", "block_16_project_conv", "head_conv"}
    bb.set_trainable(b, None)
    assert not b.trainable_weights


def test_normalization_matches_imagenet_stats():
    scale, offset = bb.normalization("mobilenet_v2")
    px = np.array([0.485, 0.456, 0.406]) * 255  # the ImageNet mean pixel maps to 0
    np.testing.assert_allclose(px * np.array(scale) + np.array(offset), 0, atol=1e-6)
    scale, offset = bb.normalization("efficientnet_lite0")
    assert 255 * scale[0] + offset[0] == pytest.approx(1.0)


@pytest.mark.slow
def test_bundled_weights_present_and_loadable():
    for arch in bb.BACKBONES:
        p = bb.weights_path(arch)
        assert p.stat().st_size > 5e6
    m = bb.build_backbone("efficientnet_lite0", 64, "imagenet", ("head_relu",))
    assert np.abs(m.get_layer("head_conv").get_weights()[0]).max() > 0.1  # not a random init


@pytest.mark.parametrize("call, match", [
    (lambda: bb.build_backbone("resnet50"), "unknown backbone 'resnet50'"),
    (lambda: bb.build_backbone("mobilenet_v2", 32, None, ("nope",)), "unknown tap 'nope'"),
    (lambda: bb.multicrop_features("mobilenet_v2", 32, 32, ("left_eye",), weights=None), "unknown crop 'left_eye'"),
    (lambda: bb.build_backbone("mobilenet_v2", 32, "/nonexistent/w.weights.h5"), "weights file not found"),
])
def test_errors_are_one_line_model_errors(call, match):
    with pytest.raises(ModelError, match=match) as ei:
        call()
    assert "\n" not in str(ei.value)


@pytest.mark.slow
def test_registered_in_models_archs():
    from edge_dfd.modelling.models import ARCHS, build_model

    assert ARCHS["mobilenet_v2"].pretrained == "bundled"
    m = build_model("efficientnet_lite0", img_size=32, weights="none", freeze_base=True)
    assert m.output.shape[1:] == (1,)
    assert len(m.trainable_weights) == 2  # frozen backbone: only the logit Dense trains
    p = np.asarray(m(_images(2)))
    assert p.shape == (2, 1) and np.all((p > 0) & (p < 1))
