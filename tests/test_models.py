"""edge_dfd.modelling.models: the study's CNN exactly, scaling per arch, every arch builds, weights handling."""

import numpy as np
import pytest
from lazy import lazy_module  # noqa: E402

keras = lazy_module("keras")  # imported on first use, not while pytest collects

from edge_dfd.core.errors import EdgeDFDError, ModelError  # noqa: E402
from edge_dfd.modelling.models import ARCHS, SCALING, build_model  # noqa: E402

OWN_ARCHS = ("cnn", "xception", "inception_resnet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")


def _x(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_study_cnn_layer_by_layer():
    m = build_model("cnn")  # default 256 px, as in the study
    assert isinstance(m, keras.Model) and m.__class__.__name__ == "Functional"
    assert m.input_shape == (None, 256, 256, 3) and m.output_shape == (None, 1)
    layers = [layer for layer in m.layers if not isinstance(layer, keras.layers.InputLayer)]
    got = []
    for layer in layers:
        c = layer.get_config()
        kind = layer.__class__.__name__
        if kind == "Rescaling":
            got.append((kind, round(c["scale"] * 255, 6), c["offset"]))
        elif kind == "Conv2D":
            got.append((kind, c["filters"], tuple(c["kernel_size"]), c["activation"]))
        elif kind == "MaxPooling2D":
            got.append((kind, tuple(c["pool_size"])))
        elif kind == "Dropout":
            got.append((kind, c["rate"]))
        elif kind == "Dense":
            got.append((kind, c["units"], c["activation"]))
        else:
            got.append((kind,))
    assert got == [
        ("Rescaling", 1.0, 0.0),
        ("Conv2D", 32, (3, 3), "relu"), ("MaxPooling2D", (2, 2)),
        ("Conv2D", 64, (3, 3), "relu"), ("MaxPooling2D", (2, 2)),
        ("Conv2D", 64, (3, 3), "relu"), ("MaxPooling2D", (2, 2)),
        ("Dropout", 0.2), ("Flatten",), ("Dense", 64, "relu"), ("Dropout", 0.2), ("Dense", 1, "sigmoid"),
    ]
    # 256 -> 254 -> 127 -> 125 -> 62 -> 60 -> 30: Flatten gives 30*30*64
    assert m.get_layer("flatten").output.shape[-1] == 30 * 30 * 64
    assert m.count_params() == 896 + 18496 + 36928 + (30 * 30 * 64 * 64 + 64) + 65


def test_cnn_takes_raw_pixels():
    """Scaling is inside the graph: feeding x (0..255) equals feeding x/255 to the layers after rescale."""
    m = build_model("cnn", 32)
    x = _x(3, 32)
    p = np.asarray(m(x, training=False)).ravel()
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    rest = keras.Model(m.get_layer("conv1").input, m.output)
    np.testing.assert_allclose(np.asarray(rest(x / 255.0, training=False)).ravel(), p, atol=1e-6)


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", pytest.param("mobilenet_v3_large", marks=pytest.mark.slow),
                                  pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_edge_backbones_build_small(arch):
    m = build_model(arch, 32)
    assert m.__class__.__name__ == "Functional" and m.name == arch
    assert m.input_shape == (None, 32, 32, 3) and m.output_shape == (None, 1)
    assert ARCHS[arch].scaling == "builtin"
    assert "rescale" not in [layer.name for layer in m.layers]  # the base scales 0..255 itself
    base = m.layers[1]
    assert any(isinstance(layer, keras.layers.Rescaling) for layer in base.layers)
    p = np.asarray(m(_x(2, 32), training=False)).ravel()
    # keras.applications bases with weights=None output exactly 0.5 through a fresh head (TOOLCHAIN trap)
    assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))


@pytest.mark.slow
def test_study_transfer_models_build_at_min_size():
    for arch, size in (("xception", 71), ("inception_resnet_v2", 75)):
        m = build_model(arch, size, freeze_base=True)
        names = [layer.name for layer in m.layers]
        assert names[1] == "rescale" and names[-3:] == ["flatten", "fc1", "p_fake"], names
        r = m.get_layer("rescale").get_config()
        assert (round(r["scale"] * 127.5, 6), r["offset"]) == (1.0, -1.0)
        assert m.get_layer("fc1").units == 1024
        assert m.layers[2].trainable is False and m.get_layer("fc1").trainable
        trainable = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
        flat = m.get_layer("flatten").output.shape[-1]
        assert trainable == flat * 1024 + 1024 + 1024 + 1
        with pytest.raises(EdgeDFDError, match=f"too small for {arch}"):
            build_model(arch, size - 1)


def test_registry_is_consistent():
    assert set(OWN_ARCHS) <= set(ARCHS)
    for name, spec in ARCHS.items():
        assert spec.name == name and spec.scaling in SCALING and spec.min_size >= 8


def test_bad_arch_and_size():
    with pytest.raises(EdgeDFDError, match="unknown arch 'cnnn'.*Did you mean 'cnn'"):
        build_model("cnnn")
    with pytest.raises(EdgeDFDError, match=r"too small for cnn \(expected 22..4096\)"):
        build_model("cnn", 16)
    with pytest.raises(EdgeDFDError, match="cnn has no ImageNet weights"):
        build_model("cnn", 32, weights="imagenet")


def test_imagenet_offline_is_one_clear_line(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- [Errno -2] "
                        "Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelError) as ei:
        build_model("mobilenet_v3_small", 32, weights="imagenet")
    msg = str(ei.value)
    assert msg.startswith("ImageNet weights for mobilenet_v3_small could not be downloaded (URL fetch failure")
    assert "use --weights none, a local PATH, or an arch with bundled offline weights" in msg
    assert "\n" not in msg


def test_weights_from_local_file(tmp_path):
    src = build_model("cnn", 32)
    path = tmp_path / "w.weights.h5"
    src.save_weights(path)
    x = _x(2, 32, seed=1)
    m = build_model("cnn", 32, weights=str(path))
    np.testing.assert_allclose(np.asarray(m(x, training=False)), np.asarray(src(x, training=False)), atol=1e-6)
    with pytest.raises(ModelError, match="weights do not fit arch cnn at 48 px"):
        build_model("cnn", 48, weights=str(path))
    with pytest.raises(ModelError, match="file not found"):
        build_model("cnn", 32, weights=str(tmp_path / "missing.weights.h5"))
