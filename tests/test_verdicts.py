"""edge_dfd.core.verdicts (the one verdict rule, agreement, threshold selection, proportion interval) and edge_dfd.core.util."""

from __future__ import annotations

import numpy as np
import pytest

from edge_dfd.core import verdicts
from edge_dfd.core.util import did_you_mean, first_line


def test_the_rule_is_p_at_or_above_the_threshold():
    assert verdicts.verdict(0.5, 0.5) == "fake" and verdicts.verdict(0.4999, 0.5) == "real"
    assert verdicts.is_fake([0.1, 0.5, 0.9], 0.5).tolist() == [False, True, True]


def test_agreement_each_score_at_its_own_threshold():
    a, b = np.array([0.1, 0.6, 0.7, 0.2]), np.array([0.2, 0.4, 0.8, 0.3])
    assert verdicts.agreement(a, b, 0.5) == 0.75
    assert verdicts.agreement(a, b, 0.5, 0.35) == 1.0
    assert verdicts.agreement([], [], 0.5) == 1.0


def test_one_interval_function_behind_both_old_names():
    from edge_dfd.core.metrics import wilson_interval
    from edge_dfd.export.convert import binomial_ci

    assert verdicts.proportion_ci(90, 100) == wilson_interval(90, 100)
    assert verdicts.proportion_ci(90, 100, method="exact") == binomial_ci(90, 100)
    lo_w, hi_w = verdicts.proportion_ci(18, 20)
    lo_e, hi_e = verdicts.proportion_ci(18, 20, method="exact")
    assert lo_e < lo_w and hi_e > hi_w  # Clopper-Pearson is the wider (conservative) one
    assert verdicts.proportion_ci(0, 0) is None and binomial_ci(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        verdicts.proportion_ci(3, 2)


def test_threshold_selection_reexported_from_the_old_modules():
    from edge_dfd.core import metrics
    from edge_dfd.export import convert

    assert metrics.choose_threshold is verdicts.choose_threshold
    assert convert.matched_threshold is verdicts.matched_threshold and convert.sign_test_p is verdicts.sign_test_p


def test_util_first_line_and_did_you_mean():
    assert first_line(ValueError("bad thing\nstack details")) == "bad thing"
    assert first_line(KeyError()) == "KeyError" and first_line(KeyError(), empty="") == ""
    assert first_line(ValueError("x" * 500), 10) == "x" * 10
    assert did_you_mean("onx", ["onnx", "keras"]) == " Did you mean 'onnx'?" and did_you_mean("zzz", ["onnx"]) == ""


def test_unknown_model_suffix_is_one_line_naming_the_accepted_suffixes(tmp_path):
    from edge_dfd.core.errors import ModelError
    from edge_dfd.core.formats import runtime_of_file

    assert runtime_of_file("a/b_int8.tflite") == "tflite" and runtime_of_file("m.ONNX") == "onnx"
    with pytest.raises(ModelError, match=r"m\.pt: unknown model type '\.pt' \(expected \.keras, \.tflite, \.onnx\)"):
        runtime_of_file("m.pt")


def test_paired_accuracy_diff_newcombe_interval_counts_and_coverage():
    import numpy as np

    from edge_dfd.core.verdicts import paired_accuracy_diff

    r = paired_accuracy_diff([1] * 17 + [0] * 3, [1] * 12 + [0] * 5 + [1] * 2 + [0])
    assert (r["n"], r["a_only"], r["b_only"]) == (20, 5, 2)
    assert abs(r["diff"] - 0.15) < 1e-12 and r["low"] < 0 < r["high"] < 0.5
    same = paired_accuracy_diff([1, 1, 0, 0, 1], [1, 1, 0, 0, 1])
    assert same["diff"] == 0 and same["low"] <= 0 <= same["high"]
    # coverage of the 95 % interval: true loss 0.04 (b-only 0.06, a-only 0.02 of 300 pairs)
    rng = np.random.default_rng(1)
    hits, sims = 0, 600
    for _ in range(sims):
        u = rng.random(300)
        a = (u < 0.80) | ((u >= 0.86) & (u < 0.92))
        b = (u < 0.80) | ((u >= 0.92) & (u < 0.94))
        r = paired_accuracy_diff(a, b)
        hits += r["low"] <= 0.04 <= r["high"]
    assert 0.92 <= hits / sims <= 0.98
    assert paired_accuracy_diff([], [])["high"] is None


def test_paired_auc_diff_matches_delong_p_and_needs_both_classes():
    from math import erfc, sqrt

    import numpy as np

    from edge_dfd.core.verdicts import paired_auc_diff
    from edge_dfd.export.gate import delong_p

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    pa = y * 0.6 + rng.random(300) * 0.7
    pb = pa + rng.normal(0, 0.1, 300)
    r = paired_auc_diff(y, pa, pb)
    assert r["low"] < r["diff"] < r["high"] and r["auc_a"] > r["auc_b"]
    assert abs(delong_p(y, pa, pb) - erfc(abs(r["diff"]) / r["se"] / sqrt(2))) < 1e-12
    one = paired_auc_diff([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    assert one["diff"] is None and "2 fake and 2 real" in one["reason"]
