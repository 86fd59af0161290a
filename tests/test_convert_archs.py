"""Every architecture of edge_dfd.modelling.models.ARCHS converts to tflite-fp32 and onnx at a small input size.

One conversion per arch (its minimum input size, weights none, a random Dense head so the output is
not a constant 0.5), verified on generated probe inputs. Slow: the big ImageNet backbones take tens of
seconds each to trace on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_dfd.modelling.models import ARCHS


def wake_up(model, x):
    """Give an untrained (weights none) model a non-constant output: BatchNorm statistics from one batch
    (momentum 0, one training-mode pass) and a random Dense head. Untrained Keras applications otherwise
    collapse their features to ~0 and output a constant, which would make parity checks trivial."""
    import keras

    bns = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    saved = [la.momentum for la in bns]
    for la in bns:
        la.momentum = 0.0
    model(x.astype("float32"), training=True)
    for la, mom in zip(bns, saved):
        la.momentum = mom
    head = [la for la in model.layers if isinstance(la, keras.layers.Dense)][-1]
    kernel, bias = head.get_weights()
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1.0 / np.sqrt(kernel.shape[0]), kernel.shape).astype("float32")
    # pick the largest head scale whose outputs vary but do not saturate at 0 or 1
    def spread(scale):
        head.set_weights([noise * scale, np.zeros_like(bias)])
        p = np.asarray(model(x.astype("float32"), training=False)).ravel()
        saturated = p.min() < 1e-3 or p.max() > 1 - 1e-3
        return p.std() - (1.0 if saturated else 0.0)

    scales = (10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
    best = max(scales, key=spread)
    head.set_weights([noise * best, np.zeros_like(bias)])


# over a minute each on 2 cores (inception_resnet_v2: ~6 min): the release lane (`-m heavy`); the default suite keeps
# the lighter archs, and `python -m benchmarks.convert` converts every arch at full size (results/convert.md).
# mobilenet_v3_large (~35 s) is mobilenet_v3_small's layer types (hard-swish, squeeze-excite) at a larger size: the
# default suite converts the small one and leaves the large one to the release lane.
HEAVY_ARCHS = {"inception_resnet_v2", "xception", "mobilenet_v2", "efficientnet_lite0", "efficientnet_b0",
               "mobilenet_v3_large"}


@pytest.mark.slow
@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.heavy) if a in HEAVY_ARCHS else a for a in ARCHS])
def test_arch_converts_to_tflite_and_onnx(arch, tmp_path):
    import keras

    from edge_dfd.export.convert import convert_model
    from edge_dfd.export.imagesets import probe_inputs
    from edge_dfd.modelling.models import build_model
    from edge_dfd.runtime import load_model

    size = max(ARCHS[arch].min_size, 32)
    keras.utils.set_random_seed(0)
    # the multi-crop backbones ship offline ImageNet weights; with weights none their pooled features are
    # ~constant and so is the output, which would make the parity check trivial
    weights = "imagenet" if arch in ("mobilenet_v2", "efficientnet_lite0") else "none"
    model = build_model(arch, img_size=size, weights=weights)
    wake_up(model, probe_inputs(16, size, seed=11))
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    results = convert_model(path, "tflite-fp32,onnx", out_dir=tmp_path, verify_size=6)
    x = probe_inputs(6, size, seed=7)
    p_keras = np.asarray(model(x.astype("float32"), training=False)).ravel()
    assert p_keras.std() > 0.01, "parity on a constant output would prove nothing"
    for r in results:
        assert r.ok, r.error
        assert r.max_abs_diff < 1e-4 and r.agreement == 1.0
        np.testing.assert_allclose(load_model(r.path).predict(x), p_keras, atol=1e-4, rtol=0)
