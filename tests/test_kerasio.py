"""edge_dfd.modelling.kerasio: safe loading with one-line errors, and the input size of a model."""

from __future__ import annotations

import pytest

from edge_dfd.core.errors import ModelError


def _model(tmp_path, lambda_layer=False, size=16):
    import keras

    i = keras.Input((size, size, 3))
    if lambda_layer:
        x = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(i)
    else:
        x = keras.layers.Rescaling(1 / 255)(i)
    o = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    m = keras.Model(i, o)
    p = tmp_path / ("lam.keras" if lambda_layer else "ok.keras")
    m.save(p)
    return p


def test_loads_a_plain_model_and_reads_its_size(tmp_path):
    from edge_dfd.modelling.kerasio import load_keras, model_input_size

    m = load_keras(_model(tmp_path))
    assert model_input_size(m) == 16 and m.output_shape == (None, 1)


def test_lambda_needs_unsafe(tmp_path):
    from edge_dfd.modelling.kerasio import load_keras

    p = _model(tmp_path, lambda_layer=True)
    with pytest.raises(ModelError, match=r"needs arbitrary code to load \(Lambda layer 'scale'\); pass --unsafe"):
        load_keras(p)
    assert load_keras(p, unsafe=True).output_shape == (None, 1)


def test_unknown_custom_layer_is_named(tmp_path):
    import keras

    from edge_dfd.modelling.kerasio import load_keras

    @keras.saving.register_keras_serializable(package="testpkg")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    i = keras.Input((8, 8, 3))
    o = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(Doubler(name="dbl")(i)))
    p = tmp_path / "custom.keras"
    keras.Model(i, o).save(p)
    keras.saving.get_custom_objects().pop("testpkg>Doubler")
    with pytest.raises(ModelError, match=r"custom layer 'dbl' of class 'testpkg>Doubler'"):
        load_keras(p)


@pytest.mark.parametrize("name, content, expect", [
    ("missing.keras", None, "model file not found"),
    ("empty.keras", b"", "empty file"),
    ("text.keras", b"not a zip at all", "not a zip archive"),
    ("model.h5", b"\x89HDF\r\n", "expected a Keras 3 .keras file, got '.h5'"),
])
def test_bad_files(tmp_path, name, content, expect):
    from edge_dfd.modelling.kerasio import load_keras

    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ModelError, match=expect):
        load_keras(p)


def test_truncated_and_corrupted_archives(tmp_path):
    import zipfile

    from edge_dfd.modelling.kerasio import load_keras

    good = _model(tmp_path).read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="cut.keras: not a Keras 3 .keras file"):
        load_keras(cut)
    flipped = tmp_path / "flip.keras"
    with zipfile.ZipFile(tmp_path / "ok.keras") as z:
        info = z.getinfo("model.weights.h5")
    data = bytearray(good)
    data[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF  # inside the stored weights
    flipped.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="flip.keras: corrupt .keras archive"):
        load_keras(flipped)
    nocfg = tmp_path / "nocfg.keras"
    with zipfile.ZipFile(nocfg, "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(ModelError, match="no config.json"):
        load_keras(nocfg)


def test_input_size_rejects_non_square_or_multi_output(tmp_path):
    import keras

    from edge_dfd.modelling.kerasio import model_input_size

    i = keras.Input((16, 24, 3))
    with pytest.raises(ModelError, match=r"input shape \(None, 16, 24, 3\)"):
        model_input_size(keras.Model(i, keras.layers.Dense(1)(keras.layers.Flatten()(i))))
    j = keras.Input((16, 16, 3))
    with pytest.raises(ModelError, match="output shape"):
        model_input_size(keras.Model(j, keras.layers.Dense(2)(keras.layers.Flatten()(j))))
