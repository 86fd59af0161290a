"""Tiny 32 px detectors in every format, built once per test session for the runtime / predict / bench tests.

The Keras model is trained for a few epochs on generated images (tests/synth.py) so that its
probabilities are spread out and the classes are separable; exports use the converter routes in
shared/TOOLCHAIN.md directly, so these tests do not depend on edge_dfd.export.convert.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

SIZE = 32
_CACHE: dict = {}


def train_images(n: int = 48, seed: int = 0):
    from synth import synth_face

    from edge_dfd.images.preprocess import resize_square

    x, y = [], []
    for i in range(n):
        fake = i % 2 == 1
        x.append(resize_square(synth_face(fake, 64, seed * 1000 + i), SIZE))
        y.append(int(fake))
    return np.stack(x), np.asarray(y)


def build_tiny_models(root=None) -> dict[str, Path]:
    """format name -> path of a tiny model in that format (all carrying edge-dfd metadata), cached."""
    if "models" in _CACHE:
        return _CACHE["models"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from edge_dfd.core.meta import ModelMeta, write_meta

    root = Path(root or tempfile.mkdtemp(prefix="edge_dfd_tiny_"))
    root.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    h = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(h)
    h = keras.layers.Conv2D(8, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inp, out, name="tiny")
    x, y = train_images()
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    model.fit(x.astype(np.float32), y.astype(np.float32), epochs=30, batch_size=16, verbose=0)
    paths = {"keras": root / "tiny.keras"}
    model.save(paths["keras"])
    calib = x.astype(np.float32)

    def rep():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    def tflite(name, **kw):
        c = tf.lite.TFLiteConverter.from_keras_model(model)
        if kw:
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if kw.get("fp16"):
            c.target_spec.supported_types = [tf.float16]
        if kw.get("int8"):
            c.representative_dataset = rep
            c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if kw.get("uint8_io"):
            c.inference_input_type = tf.uint8
        p = root / f"tiny{name}.tflite"
        p.write_bytes(c.convert())
        return p

    paths["tflite-fp32"] = tflite("_fp32")
    paths["tflite-fp16"] = tflite("_fp16", fp16=True)
    paths["tflite-int8"] = tflite("_int8", int8=True)
    paths["tflite-int8-io"] = tflite("_int8io", int8=True, uint8_io=True)

    import tf2onnx

    spec = (tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="image"),)
    paths["onnx"] = root / "tiny.onnx"
    tf2onnx.convert.from_function(tf.function(lambda t: model(t)), input_signature=spec, opset=15,
                                  output_path=str(paths["onnx"]))
    paths["onnx-int8"] = _onnx_int8(paths["onnx"], root / "tiny_int8.onnx", calib)
    paths["onnx-int8-arm"] = _onnx_int8(paths["onnx"], root / "tiny_int8arm.onnx", calib, activations="QUInt8")

    for name, p in paths.items():
        dtype = "uint8" if name == "tflite-int8-io" else "float32"
        write_meta(p, ModelMeta(format=name, arch="tiny", input_size=SIZE, input_dtype=dtype,
                                threshold=0.5, threshold_source="test"))
    _CACHE["models"] = paths
    return paths


def _onnx_int8(src: Path, dst: Path, calib: np.ndarray, activations: str = "QInt8") -> Path:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{name: calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=getattr(QuantType, activations), weight_type=QuantType.QInt8)
    return dst


def tiny_model(seed: int = 0):
    import keras
    from synth import synth_face

    keras.utils.set_random_seed(seed)
    i = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(i)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    o = keras.layers.Dense(1, activation="sigmoid")(x)
    m = keras.Model(i, o, name="tiny")
    xs = np.stack([synth_face(k % 2 == 1, SIZE, 1000 + k) for k in range(64)]).astype("float32")
    ys = np.array([k % 2 for k in range(64)], "float32")
    m.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    m.fit(xs, ys, epochs=3, batch_size=16, verbose=0)  # P(fake) ~0.35 real / ~0.83 fake: not saturated
    return m
