"""Keras architectures: the study's CNN, Xception, Inception-ResNet-v2 and edge backbones.

Every model built here is a **Functional** ``keras.Model`` (tf2onnx cannot convert Keras 3
Sequential models) that takes **float32 raw pixels 0..255**, shape (N, S, S, 3) RGB, and outputs
**P(fake)** through a final ``Dense(1, sigmoid)`` layer named ``p_fake``. Pixel scaling lives inside
the graph, so every exported format carries it; ``SCALING`` below is the one place that decides it
per architecture. Augmentation is never part of these models (it runs in the tf.data pipeline).

``weights``: ``"none"`` (random init), ``"imagenet"`` (bundled, offline, for ``mobilenet_v2`` and
``efficientnet_lite0``: ported weights in ``edge_dfd/assets/weights``; a keras.applications download, needing
internet, for the others), or a local PATH: a whole-model ``.keras`` / ``.weights.h5`` file of the same
architecture, or a keras.applications "notop" ``.h5`` file for the base (the offline way for those archs).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge_dfd.core.errors import EdgeDFDError, ModelError, require
from edge_dfd.core.meta import MAX_INPUT_SIZE
from edge_dfd.core.util import did_you_mean, first_line

DEFAULT_INPUT_SIZE = 256  # --img-size of `edge-dfd train` / build_model

# How the 0..255 input is scaled INSIDE each model (the one place this is decided):
#   "unit"      Rescaling(1/255)            -> [0, 1]   (the study's CNN)
#   "symmetric" Rescaling(1/127.5, -1)      -> [-1, 1]  (Xception / Inception-ResNet-v2 preprocess_input)
#   "builtin"   the keras.applications base scales 0..255 itself (MobileNetV3 include_preprocessing=True,
#               EfficientNet's own Rescaling+Normalization); nothing is added in front of it.
SCALING = {"unit": (1.0 / 255.0, 0.0), "symmetric": (1.0 / 127.5, -1.0), "builtin": None}


@dataclass(frozen=True)
class ArchSpec:
    """One ``--arch`` choice.

    ``build`` is a callable or a lazy ``"module:function"`` string; it is called as
    ``build(spec, img_size, weights, freeze_base)`` and returns a Functional keras.Model.
    """

    name: str
    build: Callable | str
    min_size: int
    scaling: str  # key of SCALING
    pretrained: str  # which --weights values make sense: "imagenet-download", "bundled", "none"
    description: str
    app: str = ""  # keras.applications constructor for the generic builders

    def builder(self) -> Callable:
        if callable(self.build):
            return self.build
        mod, _, fn = self.build.partition(":")
        return getattr(importlib.import_module(mod), fn)


def _keras():
    return require("keras", "building a model")


def _inputs(img_size: int):
    keras = _keras()
    return keras.Input(shape=(img_size, img_size, 3), dtype="float32", name="image")


def scale_input(x, scaling: str):
    """Apply the architecture's pixel scaling (see SCALING) to the 0..255 input tensor."""
    keras = _keras()
    s = SCALING[scaling]
    if s is None:
        return x
    return keras.layers.Rescaling(scale=s[0], offset=s[1], name="rescale")(x)


def _head_out(x):
    return _keras().layers.Dense(1, activation="sigmoid", name="p_fake")(x)


# ---------------------------------------------------------------- builders


def build_cnn(spec: ArchSpec, img_size: int, weights: str, freeze_base: bool):
    """The study's CNN, layer for layer, with Rescaling(1/255) as the first layer."""
    L = _keras().layers
    inp = _inputs(img_size)
    x = scale_input(inp, spec.scaling)
    x = L.Conv2D(32, 3, activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2, name="pool2")(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv3")(x)
    x = L.MaxPooling2D(2, name="pool3")(x)
    x = L.Dropout(0.2, name="drop1")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="fc1")(x)
    x = L.Dropout(0.2, name="drop2")(x)
    return _keras().Model(inp, _head_out(x), name="cnn")


def _application_base(spec: ArchSpec, img_size: int, weights: str):
    keras = _keras()
    ctor = getattr(keras.applications, spec.app)
    kwargs = dict(include_top=False, input_shape=(img_size, img_size, 3))
    if spec.app.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = True  # scaling="builtin": the base takes 0..255
    w = None if weights in ("none", None) or _whole_model_weights(weights) else weights
    try:
        return ctor(weights=w, **kwargs)
    except Exception as exc:  # keras.utils.get_file raises a bare Exception on network failure
        first = first_line(exc)
        if w == "imagenet":
            raise ModelError(
                f"ImageNet weights for {spec.name} could not be downloaded ({first}): use --weights none, "
                f"a local PATH, or an arch with bundled offline weights"
            ) from None
        if w is not None:
            raise ModelError(f"{w}: cannot load as {spec.app} base weights ({first})") from None
        raise


def _base_features(spec: ArchSpec, img_size: int, weights: str, freeze_base: bool):
    """(input, the application base's feature map): raw pixels -> the base's own scaling -> the base (in inference
    mode when frozen, so BatchNorm keeps its statistics)."""
    base = _application_base(spec, img_size, weights)
    base.trainable = not freeze_base
    inp = _inputs(img_size)
    x = scale_input(inp, spec.scaling)
    return inp, (base(x, training=False) if freeze_base else base(x))


def build_study_transfer(spec: ArchSpec, img_size: int, weights: str, freeze_base: bool):
    """Xception / Inception-ResNet-v2 with the study's head: base -> Flatten -> Dense(1024, relu) -> Dense(1)."""
    keras = _keras()
    inp, x = _base_features(spec, img_size, weights, freeze_base)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name="fc1")(x)
    return keras.Model(inp, _head_out(x), name=spec.name)


def build_edge(spec: ArchSpec, img_size: int, weights: str, freeze_base: bool):
    """Edge backbone: base (own 0..255 preprocessing) -> global average pool -> Dropout(0.2) -> Dense(1)."""
    keras = _keras()
    inp, x = _base_features(spec, img_size, weights, freeze_base)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    return keras.Model(inp, _head_out(x), name=spec.name)


# ---------------------------------------------------------------- registry

ARCHS: dict[str, ArchSpec] = {
    a.name: a
    for a in (
        ArchSpec("cnn", build_cnn, 22, "unit", "none", "the study's 3-conv CNN (Rescaling 1/255 inside)"),
        ArchSpec("xception", build_study_transfer, 71, "symmetric", "imagenet-download",
                 "Xception base + Flatten/Dense(1024) head (the study's)", app="Xception"),
        ArchSpec("inception_resnet_v2", build_study_transfer, 75, "symmetric", "imagenet-download",
                 "Inception-ResNet-v2 base + Flatten/Dense(1024) head (the study's)", app="InceptionResNetV2"),
        ArchSpec("mobilenet_v3_small", build_edge, 32, "builtin", "imagenet-download",
                 "MobileNetV3-Small edge backbone + GAP/Dense head", app="MobileNetV3Small"),
        ArchSpec("mobilenet_v3_large", build_edge, 32, "builtin", "imagenet-download",
                 "MobileNetV3-Large edge backbone + GAP/Dense head", app="MobileNetV3Large"),
        ArchSpec("efficientnet_b0", build_edge, 32, "builtin", "imagenet-download",
                 "EfficientNet-B0 edge backbone + GAP/Dense head", app="EfficientNetB0"),
        # ---- offline-pretrained backbones (issue 6) -------------------------------------------
        # edge_dfd/modelling/backbones.py adds archs whose ImageNet weights ship inside registry packages
        # (mobilenet_v2, efficientnet_lite0). Register them HERE with a lazy "module:function"
        # build string so that importing this module never imports them, e.g.:
        #   ArchSpec("mobilenet_v2", "edge_dfd.modelling.backbones:build_mobilenet_v2", 32, "builtin", "bundled", "..."),
        ArchSpec("mobilenet_v2", "edge_dfd.modelling.backbones:build_mobilenet_v2", 32, "builtin", "bundled",
                 "torchvision MobileNetV2 (ported, bundled ImageNet weights), whole face + 4 quadrant views"),
        ArchSpec("efficientnet_lite0", "edge_dfd.modelling.backbones:build_efficientnet_lite0", 32, "builtin", "bundled",
                 "EfficientNet-Lite0 (ported, bundled ImageNet weights), whole face + 4 quadrant views"),
        # ---------------------------------------------------------------------------------------
    )
}


def _whole_model_weights(weights) -> bool:
    w = str(weights)
    return w.endswith(".keras") or w.endswith(".weights.h5")


def build_model(arch: str, img_size: int = DEFAULT_INPUT_SIZE, weights: str = "none", freeze_base: bool = False):
    """Build ``arch`` (a key of ARCHS) for (img_size, img_size, 3) 0..255 input; output P(fake).

    ``weights``: "none", "imagenet" or a local PATH (see the module docstring).
    """
    if arch not in ARCHS:
        raise EdgeDFDError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}.{did_you_mean(arch, ARCHS)}")
    spec = ARCHS[arch]
    if not isinstance(img_size, int) or img_size < spec.min_size or img_size > MAX_INPUT_SIZE:
        raise EdgeDFDError(f"--img-size {img_size} is too small for {arch} (expected {spec.min_size}..{MAX_INPUT_SIZE})")
    weights = "none" if weights in (None, "") else str(weights)
    if weights not in ("none", "imagenet"):
        p = Path(weights)
        if not p.is_file():
            raise ModelError(f"--weights {weights}: file not found (expected none, imagenet or a weights file)")
        if arch == "cnn" and not _whole_model_weights(weights):
            raise ModelError(f"--weights {weights}: the cnn takes a whole-model .keras or .weights.h5 file")
    elif weights == "imagenet" and spec.pretrained == "none":
        raise EdgeDFDError(f"arch {arch} has no ImageNet weights; use --weights none or a local PATH")
    model = spec.builder()(spec, img_size, weights, freeze_base)
    if _whole_model_weights(weights):
        try:
            model.load_weights(weights)
        except Exception as exc:  # Keras raises ValueError/KeyError/OSError variants for mismatches
            first = first_line(exc)
            raise ModelError(f"{weights}: weights do not fit arch {arch} at {img_size} px ({first})") from None
    return model


def arch_info(arch: str) -> dict:
    """Facts about an arch for config.json and metadata."""
    s = ARCHS[arch]
    return {"arch": s.name, "scaling": s.scaling, "min_size": s.min_size, "description": s.description}
