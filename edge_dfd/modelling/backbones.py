"""Pretrained ImageNet backbones usable offline, and the multi-crop detector built on them.

Two architectures are rebuilt in Keras 3 so that the ImageNet weights shipped inside registry packages
load weight-for-weight (ported once by ``tools/port_weights.py`` into ``edge_dfd/assets/weights/``):

* ``mobilenet_v2`` - torchvision's MobileNetV2 (BSD-3 weights). Stride-2 3x3 convolutions pad 1 pixel on
  every side (ZeroPadding2D(1) + 'valid'), BatchNorm epsilon 1e-5, ImageNet mean/std.
* ``efficientnet_lite0`` - EfficientNet-Lite0 (Apache-2.0 weights, lukemelas/workingcoder PyTorch port of
  the TF checkpoint): TF-style 'same' padding (= Keras 'same'), ReLU6, no squeeze-excite, BatchNorm
  epsilon 1e-3, inputs scaled as (x - 127) / 128 like the original Lite builder.

Both take raw 0..255 RGB pixels: the normalisation is a per-channel ``Rescaling`` layer inside the model,
so every exported format carries it. Every layer is a built-in Keras layer (safe-mode loading, TFLite
and ONNX export work unchanged).

``multicrop_model`` wraps a backbone into the product's detector: a raw ``input_size`` image is split
into views (whole face + four quadrants by default, see ``CROPS``), each resized to the backbone's size,
passed through ONE shared backbone, globally pooled at several depths ("taps"), scored by one shared
Dense layer and the per-view logits averaged before the sigmoid: output P(fake).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_dfd.core.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "assets" / "weights"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (expand t, channels c, repeats n, first stride s) - torchvision / Sandler et al. 2018, table 2
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# (repeats, kernel, stride, expand, in, out) - efficientnet_lite_builder.py, Lite0 (width = depth = 1.0)
LITE0_SETTINGS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                  (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))

# Feature taps: names of layers whose outputs are pooled (last block of a stage, and the head).
TAPS = {
    "mobilenet_v2": ("block_5_out", "block_12_out", "block_15_out", "block_16_out", "head_relu"),
    "efficientnet_lite0": ("block_4_out", "block_10_out", "block_14_out", "block_15_out", "head_relu"),
}
TAP_CHANNELS = {
    "mobilenet_v2": (32, 96, 160, 320, 1280),
    "efficientnet_lite0": (40, 112, 192, 320, 1280),
}
# Crop boxes as fractions (top, left, size) of the square input image.
CROPS = {
    "whole": (0.0, 0.0, 1.0),
    "center": (0.25, 0.25, 0.5),
    "q_tl": (0.0, 0.0, 0.5),
    "q_tr": (0.0, 0.5, 0.5),
    "q_bl": (0.5, 0.0, 0.5),
    "q_br": (0.5, 0.5, 0.5),
}
DEFAULT_CROPS = ("whole", "q_tl", "q_tr", "q_bl", "q_br")
BACKBONES = tuple(TAPS)


def _keras():
    import keras

    return keras


def weights_path(arch: str) -> Path:
    """The bundled ported ImageNet weights of ``arch`` (ModelError if missing)."""
    _check_arch(arch)
    p = WEIGHTS_DIR / f"{arch}_imagenet.weights.h5"
    if not p.is_file():
        raise ModelError(f"{p}: the ported ImageNet weights for '{arch}' are not in this install (the runtime wheel "
                         "leaves out training-only files): use a source checkout of edge-dfd (pip install -e "
                         f"'.[train]' in it), regenerate them with python -m tools.port_weights --arch {arch}, or "
                         "train with --weights none / --weights PATH")
    return p


def _check_arch(arch: str) -> None:
    if arch not in TAPS:
        raise ModelError(f"unknown backbone '{arch}' (expected one of: {', '.join(BACKBONES)})")


# ------------------------------------------------------------------ MobileNetV2 (torchvision layout)


def _conv_bn(x, filters, kernel, stride, name, eps, act=True, depthwise=False, torch_pad=False):
    """Conv (or depthwise conv) + BN (+ ReLU6). ``torch_pad``: explicit symmetric padding for stride 2."""
    L = _keras().layers
    padding = "same"
    if stride == 2 and torch_pad:
        x = L.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        x = L.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=f"{name}_dw")(x)
    else:
        x = L.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(epsilon=eps, momentum=0.99, name=f"{name}_bn")(x)
    return L.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def _mobilenet_v2(x):
    L = _keras().layers
    eps = 1e-5
    x = _conv_bn(x, 32, 3, 2, "stem", eps, torch_pad=True)
    cin, i = 32, 0
    for t, c, n, s in MBV2_SETTINGS:
        for j in range(n):
            stride = s if j == 0 else 1
            inp = x
            h = x
            if t != 1:
                h = _conv_bn(h, cin * t, 1, 1, f"block_{i}_expand", eps)
            h = _conv_bn(h, None, 3, stride, f"block_{i}_depthwise", eps, depthwise=True, torch_pad=True)
            h = _conv_bn(h, c, 1, 1, f"block_{i}_project", eps, act=False)
            if stride == 1 and cin == c:
                h = L.Add(name=f"block_{i}_add")([inp, h])
            x = L.Identity(name=f"block_{i}_out")(h)
            cin, i = c, i + 1
    return _conv_bn(x, 1280, 1, 1, "head", eps)


def _efficientnet_lite0(x):
    L = _keras().layers
    eps = 1e-3
    x = _conv_bn(x, 32, 3, 2, "stem", eps)
    i = 0
    for n, k, s, e, cin, cout in LITE0_SETTINGS:
        for j in range(n):
            stride, c_in = (s, cin) if j == 0 else (1, cout)
            inp, h = x, x
            if e != 1:
                h = _conv_bn(h, c_in * e, 1, 1, f"block_{i}_expand", eps)
            h = _conv_bn(h, None, k, stride, f"block_{i}_depthwise", eps, depthwise=True)
            h = _conv_bn(h, cout, 1, 1, f"block_{i}_project", eps, act=False)
            if stride == 1 and c_in == cout:
                h = L.Add(name=f"block_{i}_add")([inp, h])
            x = L.Identity(name=f"block_{i}_out")(h)
            i += 1
    return _conv_bn(x, 1280, 1, 1, "head", eps)


def normalization(arch: str):
    """(scale, offset) per channel such that x_norm = x_raw * scale + offset, for raw 0..255 input."""
    if arch == "mobilenet_v2":
        scale = [1.0 / (255.0 * s) for s in IMAGENET_STD]
        offset = [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    else:  # EfficientNet-Lite: (x - 127) / 128
        scale, offset = [1.0 / 128.0] * 3, [-127.0 / 128.0] * 3
    return scale, offset


def full_backbone(arch: str, size: int = 224):
    """The whole feature extractor (raw pixels -> head ReLU map), randomly initialised. Its layer names
    are what the bundled ``.weights.h5`` files are keyed by."""
    _check_arch(arch)
    keras = _keras()
    inp = keras.Input((size, size, 3), name="pixels")
    scale, offset = normalization(arch)
    x = keras.layers.Rescaling(scale, offset, name="normalize")(inp)
    head = (_mobilenet_v2 if arch == "mobilenet_v2" else _efficientnet_lite0)(x)
    return keras.Model(inp, head, name=f"{arch}_full")


def build_backbone(arch: str, size: int = 224, weights: str | None = "imagenet", taps=None):
    """A Functional backbone: (N, size, size, 3) raw 0..255 RGB -> list of feature maps at ``taps``.

    ``taps`` defaults to every name in ``TAPS[arch]``; ``weights`` is "imagenet" (the bundled ported
    weights), a path to a ``.weights.h5`` file, or None (random init).
    """
    keras = _keras()
    full = full_backbone(arch, size)
    inp = full.input
    if weights:
        path = weights_path(arch) if weights == "imagenet" else Path(weights)
        if not path.is_file():
            raise ModelError(f"{path}: weights file not found (expected a .weights.h5 file or 'imagenet')")
        full.load_weights(str(path))
    taps = tuple(taps or TAPS[arch])
    unknown = [t for t in taps if t not in TAPS[arch]]
    if unknown:
        raise ModelError(f"unknown tap '{unknown[0]}' for {arch} (expected some of: {', '.join(TAPS[arch])})")
    outs = [full.get_layer(t).output for t in taps]
    return keras.Model(inp, outs if len(outs) > 1 else outs[0], name=arch)


# ------------------------------------------------------------------ multi-crop detector


def crop_views(x, input_size: int, crops, view_size: int):
    """Built-in-layer crops of a (N, input_size, input_size, 3) tensor, each resized to view_size."""
    L = _keras().layers
    views = []
    for name in crops:
        if name not in CROPS:
            raise ModelError(f"unknown crop '{name}' (expected some of: {', '.join(CROPS)})")
        top, left, frac = CROPS[name]
        t, lft, s = round(top * input_size), round(left * input_size), round(frac * input_size)
        v = x
        if s != input_size:
            v = L.Cropping2D(((t, input_size - t - s), (lft, input_size - lft - s)), name=f"crop_{name}")(v)
        if s != view_size:
            v = L.Resizing(view_size, view_size, interpolation="bilinear", name=f"resize_{name}")(v)
        views.append(v)
    return views


def pooled_features(backbone, view, tap_names, prefix: str, scalers=None):
    """Apply the shared backbone to one view and concat the globally pooled taps -> (N, D).

    ``scalers`` (optional, one layer per tap) standardise each pooled tap BEFORE the concatenation, so
    that every tensor has a similar range - what int8 quantisation (one scale per tensor) needs."""
    L = _keras().layers
    maps = backbone(view)
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    pooled = [L.GlobalAveragePooling2D(name=f"{prefix}_gap_{t}")(m) for t, m in zip(tap_names, maps)]
    if scalers is not None:
        pooled = [sc(x) for sc, x in zip(scalers, pooled)]
    return pooled[0] if len(pooled) == 1 else L.Concatenate(name=f"{prefix}_feat")(pooled)


def multicrop_features(arch: str, input_size: int = 256, view_size: int = 224, crops=DEFAULT_CROPS,
                       taps=None, weights: str | None = "imagenet", backbone=None):
    """(N, input_size, input_size, 3) raw pixels -> (N, n_crops, D) pooled features (for caching).

    The backbone (``backbone`` too, when given) is frozen, BatchNorm included, as in ``multicrop_model``: a
    trainable backbone called once per view ran its BatchNorm on batch statistics when the Keras model was
    called (Keras 3.15; not under TFLite conversion), so the cached features matched no view."""
    keras = _keras()
    L = keras.layers
    taps = tuple(taps or TAPS[arch])
    backbone = backbone or build_backbone(arch, view_size, weights, taps)
    set_trainable(backbone, None)
    inp = keras.Input((input_size, input_size, 3), name="image")
    feats = [pooled_features(backbone, v, taps, f"v_{c}") for c, v in
             zip(crops, crop_views(inp, input_size, crops, view_size))]
    stacked = [L.Reshape((1, -1), name=f"stack_{c}")(f) for c, f in zip(crops, feats)]
    out = stacked[0] if len(stacked) == 1 else L.Concatenate(axis=1, name="views")(stacked)
    return keras.Model(inp, out, name=f"{arch}_multicrop_features")


def multicrop_model(arch, input_size: int = 256, view_size: int = 224, crops=DEFAULT_CROPS, taps=None,
                    weights: str | None = "imagenet", head=None, dropout: float = 0.0, trainable_from=None,
                    name: str | None = None, standardize=None):
    """The detector: raw (N, S, S, 3) pixels -> views -> shared backbone -> pooled taps -> shared
    Dense(1) per view (optionally ``head=(kernel (D,), bias)`` from a fitted logistic model) ->
    mean logit over views -> sigmoid P(fake).

    ``arch`` is a backbone name (with ``taps``, default all) or a dict {backbone: taps} whose pooled
    features are concatenated per view in that order. ``trainable_from``: None freezes the backbones,
    an int unfreezes blocks with index >= it (plus the head conv), 0 unfreezes everything. BatchNorm
    layers always run in inference mode. ``standardize=(mean, std)`` (arrays over the concatenated
    feature vector) inserts per-tap ``Rescaling`` layers so the head sees standardised features.
    """
    keras = _keras()
    L = keras.layers
    arch_taps = dict(arch) if isinstance(arch, dict) else {arch: tuple(taps or TAPS[arch])}
    backbones = {}
    for a, t in arch_taps.items():
        backbones[a] = build_backbone(a, view_size, weights, t)
        set_trainable(backbones[a], trainable_from)
    inp = keras.Input((input_size, input_size, 3), name="image")
    dense = L.Dense(1, name="logit")
    drop = L.Dropout(dropout, name="dropout") if dropout else None
    scalers = {a: None for a in arch_taps}
    if standardize is not None:
        mu, sd = (np.asarray(v, "float64").ravel() for v in standardize)
        start = 0
        for a, t in arch_taps.items():
            scalers[a] = []
            for tap in t:
                n = TAP_CHANNELS[a][TAPS[a].index(tap)]
                m_, s_ = mu[start:start + n], sd[start:start + n]
                scalers[a].append(L.Rescaling((1.0 / s_).tolist(), (-m_ / s_).tolist(), name=f"std_{a}_{tap}"))
                start += n
        if start != mu.size:
            raise ModelError(f"standardize has {mu.size} values, the taps give {start} features")
    logits = []
    for c, v in zip(crops, crop_views(inp, input_size, crops, view_size)):
        parts = [pooled_features(backbones[a], v, t, f"v_{c}_{a}" if len(arch_taps) > 1 else f"v_{c}", scalers[a])
                 for a, t in arch_taps.items()]
        f = parts[0] if len(parts) == 1 else L.Concatenate(name=f"v_{c}_feat")(parts)
        logits.append(dense(drop(f) if drop else f))
    z = logits[0] if len(logits) == 1 else L.Average(name="mean_logit")(logits)
    out = L.Activation("sigmoid", name="p_fake")(z)
    default_name = "_".join(arch_taps) + "_multicrop"
    model = keras.Model(inp, out, name=name or default_name)
    if head is not None:
        kernel, bias = head
        dense.set_weights([np.asarray(kernel, "float32").reshape(-1, 1), np.asarray(bias, "float32").reshape(1)])
    return model


def set_trainable(backbone, trainable_from) -> None:
    """Freeze the backbone except blocks ``>= trainable_from`` and the head conv (BN stays frozen)."""
    L = _keras().layers
    for layer in backbone.layers:
        if isinstance(layer, L.BatchNormalization) or trainable_from is None:
            layer.trainable = False
            continue
        name = layer.name
        if name.startswith("block_"):
            layer.trainable = int(name.split("_")[1]) >= trainable_from
        else:
            layer.trainable = name.startswith("head") or trainable_from == 0


# ------------------------------------------------------------------ edge_dfd.modelling.models registry hooks


def _build_for_registry(arch: str, img_size: int, weights: str, freeze_base: bool):
    view = min(224, img_size)
    return multicrop_model(arch, input_size=img_size, view_size=view,
                           weights="imagenet" if weights == "imagenet" else None,
                           trainable_from=None if freeze_base else 0, dropout=0.2, name=arch)


def build_mobilenet_v2(spec, img_size: int, weights: str, freeze_base: bool):
    """``--arch mobilenet_v2``: multi-crop detector on torchvision's MobileNetV2 (bundled ImageNet weights)."""
    return _build_for_registry("mobilenet_v2", img_size, weights, freeze_base)


def build_efficientnet_lite0(spec, img_size: int, weights: str, freeze_base: bool):
    """``--arch efficientnet_lite0``: multi-crop detector on EfficientNet-Lite0 (bundled ImageNet weights)."""
    return _build_for_registry("efficientnet_lite0", img_size, weights, freeze_base)
