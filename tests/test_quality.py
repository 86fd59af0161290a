"""benchmarks.quality's stages (quality_features, quality_heads, quality_card): feature slicing, head fitting/folding, selection objective, reports."""

import numpy as np
import pytest
from lazy import lazy_module

from benchmarks import common
from benchmarks import quality_card as card
from benchmarks import quality_features as feat
from benchmarks import quality_heads as heads

lazy_module("sklearn")  # skips without it; imported by the tests that use it (~2 s), not while pytest collects


def test_tap_slice_picks_the_right_columns():
    idx = heads.tap_slice("mobilenet_v2", ("head_relu",))
    assert idx[0] == 32 + 96 + 160 + 320 and idx[-1] == 1887 and len(idx) == 1280
    both = heads.tap_slice("mobilenet_v2", ("block_5_out", "block_16_out"))
    assert list(both[:32]) == list(range(32)) and len(both) == 32 + 320


def _synthetic(seed=0, d=12, k=3):
    """Two 'sets' of per-crop features whose first column carries the label (fake -> +6, noise sd 3)."""
    rng = np.random.default_rng(seed)
    X, y = {}, {}
    for s, n in (("140k", 60), ("tpdne", 200)):
        for split in feat.SPLITS:
            lab = rng.integers(0, 2, n)
            f = rng.normal(0, 1, (n, k, d)) * 3 + 10
            f[:, :, 0] += 6.0 * lab[:, None]
            X[(s, split)], y[(s, split)] = f.astype(np.float32), lab
    return X, y


def test_fit_head_folds_standardisation_into_raw_kernel():
    from sklearn.linear_model import LogisticRegression

    X, y = _synthetic()
    kernel, bias = heads.fit_head(X, y, C=0.1, balance_sets=False)
    # the same model fitted by hand on standardised per-crop rows
    Xt = np.concatenate([X[(s, "train")].reshape(-1, 12) for s in common.SETS])
    yt = np.concatenate([np.repeat(y[(s, "train")], 3) for s in common.SETS])
    mu, sd = Xt.mean(0), Xt.std(0) + 1e-6
    ref = LogisticRegression(C=0.1, max_iter=300, random_state=feat.SEED).fit((Xt - mu) / sd, yt)
    np.testing.assert_allclose(Xt @ kernel + bias, ref.decision_function((Xt - mu) / sd), atol=1e-6)
    assert kernel[0] > 5 * np.abs(kernel[1:]).max()  # it found the informative column


def test_predict_head_is_sigmoid_of_mean_logit_and_separates():
    X, y = _synthetic(1)
    kernel, bias = heads.fit_head(X, y, C=1.0, balance_sets=True)
    f = X[("tpdne", "test")]
    p = heads.predict_head(f, kernel, bias)
    z = (f.astype(np.float64) @ kernel + bias).mean(axis=1)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-z)), rtol=1e-12)
    assert heads.score(y[("tpdne", "test")], p, 0.5)["auc"] > 0.85


def test_valid_objective_bounds():
    X, y = _synthetic(2)
    perfect = {key: y[key].astype(float) for key in y}
    assert common.valid_objective(y, perfect) == pytest.approx(1.0)
    coin = {key: np.full(len(y[key]), 0.5) for key in y}
    assert common.valid_objective(y, coin) < 0.6


def test_run_approach_chooses_on_valid_and_reports_every_split(monkeypatch):
    X, y = _synthetic(3)
    feats = {"mobilenet_v2": {key: np.concatenate([f, np.zeros(f.shape[:2] + (1876,), np.float32)], axis=2)
                              for key, f in X.items()}}
    monkeypatch.setattr(heads, "ALL_CROPS", ("whole", "q_tl", "q_tr"))
    row, (k, b) = heads.run_approach("t", feats, y, {"mobilenet_v2": heads.TAPS["mobilenet_v2"]}, ("whole", "q_tl"),
                                     balance_grid=(False,))
    assert row["C"] in heads.C_GRID and 0 <= row["threshold"] <= 1
    assert {"valid_140k", "test_140k", "valid_tpdne", "test_tpdne"} <= set(row)
    assert row["test_tpdne"]["n"] == 200 and row["test_tpdne"]["auc"] > 0.8
    assert k.shape == (1888,)


def test_ci_and_markdown():
    assert card._ci(0.8, 150) == "±6.4"
    from edge_dfd.modelling.backbones import TAPS

    r = {"approach": "a", "crops": ["whole", "q_tl", "q_tr", "q_bl", "q_br"], "valid_objective": 0.9, "C": 0.1,
         "balance_sets": True, "threshold": 0.5, "archs": {"mobilenet_v2": list(TAPS["mobilenet_v2"])},
         "test_140k": {"n": 150, "accuracy": 0.8, "auc": 0.9, "ap": 0.88, "eer": 0.2},
         "test_tpdne": {"n": 510, "accuracy": 0.9, "auc": 0.95, "ap": 0.94, "eer": 0.1}}
    e = {"bytes": 2e6, "latency_ms": 10.0, "140k": r["test_140k"], "tpdne": r["test_tpdne"]}
    out = {"command": "c", "machine": {"cpu": "x"}, "platform": "p", "approaches": [r], "selected": "a",
           "shipped": {"tflite-int8": e},
           "backbone_ms": {"fp32": 4.0, "int8": 2.0, "mobilenet_v2": {"fp32": 4.0, "int8": 2.0}}}
    md = card.results_markdown(out)
    assert "| a **(selected)** | 0.800 ±6.4 | 0.900 |" in md and "| tflite-int8 | 2.0 | 10.0 |" in md
    out["pi4_factor"] = card.pi4_factor({k: out["backbone_ms"][k] for k in ("fp32", "int8")})
    assert out["pi4_factor"] == {"fp32": 11.5, "int8": 8.5}
    text = card.model_card(out)
    # 5 views x 2.0 ms int8 here x (17 / 2.0) Pi-4 factor = 85 ms; 5 x 4.0 x 11.5 = 230 ms fp32
    assert "≈ 85 ms per face int8" in text and "≈ 230 ms fp32" in text and "Goal not fully reached" in text
    assert "1,888 features per view" in text and "5 backbone passes per face" in text


@pytest.mark.parametrize("arch, flags, in_float", [("x86_64", ["avx2"], True), ("x86_64", ["avx2", "avx512_vnni"], False),
                                                   ("aarch64", ["asimd"], False)])
def test_full_range_int8_latency_is_labelled_where_it_ran_in_float(arch, flags, in_float):
    """onnx-int8-arm measured on an x86 CPU without VNNI ran its QDQ graph in float: its ms/face is not int8 speed."""
    e = {"bytes": 2e6, "latency_ms": 10.0}
    out = {"machine": {"arch": arch, "cpu_flags": flags}}
    assert card.qdq_in_float("onnx-int8-arm", out) is in_float and not card.qdq_in_float("onnx-int8", out)
    assert card.ms_cell("onnx-int8-arm", e, out) == ("10.0 (float QDQ, not int8 speed)" if in_float else "10.0")
