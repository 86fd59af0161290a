"""Tiny 32 px detectors in every format, built once per test run for the runtime / predict / bench tests.

The Keras model is trained for a few epochs on generated images (tests/synth.py) so that its probabilities are
spread out and the classes are separable. Every export is made by the product's own converter of that format
(``edge_dfd.export.routes.get_converter``: the same recipes as ``edge-dfd convert``, int8 calibration included),
without ``convert``'s verification gate, which tests/test_convert.py tests. The files are built once for the
whole run and shared by pytest-xdist's workers (tests/session_cache.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from session_cache import shared

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


def build_tiny_models() -> dict[str, Path]:
    """format name -> path of a tiny model in that format (all carrying edge-dfd metadata), built once per run."""
    return shared("tiny_models", _build)


def _build(root: Path) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edge_dfd.core.formats import EXPORT_FORMATS, FORMATS
    from edge_dfd.core.meta import ModelMeta, write_meta
    from edge_dfd.export.routes import ExportContext, get_converter

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
    paths = {"keras": root / FORMATS["keras"].filename("tiny")}
    model.save(paths["keras"])
    with ExportContext(model, SIZE, calib=x.astype(np.uint8)) as ctx:  # calibrated on the training images
        for name in EXPORT_FORMATS:
            paths[name] = root / FORMATS[name].filename("tiny")
            get_converter(name)(ctx, paths[name])
    for name, p in paths.items():
        write_meta(p, ModelMeta(format=name, arch="tiny", input_size=SIZE, input_dtype=FORMATS[name].input_dtype,
                                threshold=0.5, threshold_source="test"))
    return paths


def tiny_model(seed: int = 0):
    """A small trained functional Keras model (32 px) whose P(fake) is spread, not saturated (convert tests)."""
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


def deploy_stand_in(arch: str = "efficientnet_lite0") -> Path:
    """A ``.keras`` file that ``train --recipe deploy --init PATH --arch ARCH`` accepts at 32 px: the single-pass
    detector's structure (an ``arch``-named backbone, globally pooled, one ``logit`` unit over the multi-depth
    head's feature count, sigmoid) with a two-convolution backbone. For the tests whose subject is the recipe's
    run - its pipeline, resume, distribution, threshold, files - not the backbone: a run traces in seconds instead
    of the ~20 s of the real EfficientNet-Lite0 graph. The real backbone's runs: tests/test_distribute_deploy.py
    (mirrored, from imagenet) and test_init_default_is_the_bundled_detector. Built once per test run."""
    return shared(f"deploy_stand_in_{arch}", lambda root: _build_stand_in(root, arch))


def stand_in_model(arch: str = "efficientnet_lite0", size: int = SIZE, views: int = 1):
    """The stand-in detector (untrained) at ``size`` px; with ``views`` > 1 a multi-view one whose logits a
    'mean_logit' layer averages, as the multi-crop detectors do (what ``--init`` must refuse)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edge_dfd.modelling.backbones import TAP_CHANNELS
    from edge_dfd.train.deploy import MODEL_NAME

    L = keras.layers
    x = keras.Input((size, size, 3))
    h = L.Rescaling(1 / 127.5, -1.0)(x)
    h = L.Conv2D(8, 3, strides=2, activation="relu", name="block_1_conv")(h)
    h = L.Conv2D(16, 3, strides=2, activation="relu", name="block_2_conv")(h)
    h = L.Conv2D(sum(TAP_CHANNELS[arch]), 1, activation="relu", name="head_relu")(h)
    backbone = keras.Model(x, h, name=arch)
    inp = keras.Input((size, size, 3), name="image")
    dense = L.Dense(1, name="logit")
    logits = [dense(L.GlobalAveragePooling2D(name=f"v{v}_pool")(backbone(L.Identity(name=f"view_{v}")(inp))))
              for v in range(views)]
    z = logits[0] if views == 1 else L.Average(name="mean_logit")(logits)
    return keras.Model(inp, L.Activation("sigmoid", name="p_fake")(z), name=MODEL_NAME)


def _build_stand_in(root: Path, arch: str) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    model = stand_in_model(arch)
    # two epochs on generated faces: P(fake) off 0.5 but far from 0 and 1 (real ~0.41, fake ~0.51), a start from
    # which a fine-tune's losses move (tests/test_train_deploy.py trains it at a high --lr)
    xs, ys = train_images(64, seed=5)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    model.fit(xs.astype("float32"), ys.astype("float32"), epochs=2, batch_size=16, verbose=0)
    path = root / f"{arch}_stand_in.keras"
    model.save(path)
    return path
