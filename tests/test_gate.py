"""The convert gate's non-inferiority rule (issue 25) on synthetic probability vectors: a quantised file is "ok"
only when the one-sided upper 95 % bounds of its paired accuracy and ROC AUC losses are within 3 points,
"unproven" (with the images it would need) when it is not shown worse but cannot be shown within the margin,
"failed" when shown worse. numpy only, fast; the end-to-end run is in tests/test_convert.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_dfd.core.formats import FORMATS, NONINFERIORITY_MARGIN
from edge_dfd.export.gate import compare, judge, needed_images, tolerance

INT8 = FORMATS["onnx-int8"]
Z = 1.6448536269514722  # one-sided 95 %


def faithful(n: int, flips: int = 0, seed: int = 0):
    """(y, p_ref, p_exp): a source right on about 90 % of ``n`` images and an export that scores each image within
    0.02 of it, except ``flips`` random images whose verdict it flips (most of them right -> wrong)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    right = rng.uniform(size=n) < 0.9
    p_ref = np.where(y == 1, rng.uniform(0.55, 0.99, n), rng.uniform(0.01, 0.45, n))
    p_ref = np.where(right, p_ref, 1.0 - p_ref)
    p_exp = np.clip(p_ref + rng.uniform(-0.02, 0.02, n), 0, 1)
    idx = rng.choice(n, flips, replace=False)
    p_exp[idx] = 1.0 - p_ref[idx]
    return y, p_ref, p_exp


def gate(y, p_ref, p_exp, fmt=INT8):
    nums = compare(np.asarray(p_ref, np.float32), np.asarray(p_exp, np.float32), 0.5, np.asarray(y))
    return nums, *judge(fmt, nums)


def test_faithful_export_is_ok_on_2000_images_and_unproven_on_60():
    y, p_ref, p_exp = faithful(2000, flips=20)
    nums, status, why = gate(y, p_ref, p_exp)
    assert status == "ok" and why == [], why
    assert 0 < nums["accuracy_loss_upper95"] <= NONINFERIORITY_MARGIN and nums["auc_loss_upper95"] <= 0.03
    # the same export on its first 60 images: nothing shown worse, nothing proven
    nums60, status, why = gate(y[:60], p_ref[:60], p_exp[:60])
    assert status == "unproven", why
    assert nums60["accuracy_loss_upper95"] > NONINFERIORITY_MARGIN
    assert why[0].startswith("accuracy loss <= ") and "(one-sided 95 %, Newcombe) > margin 0.03" in why[0]
    # the number of images it would need: more than it has, not absurd, and enough when the proportions hold
    need = nums60["needed_n"]
    assert 60 < need < 2000, need
    reps = -(-need // 60)  # the 60 images repeated: the same proportions on >= need images
    nums_rep, status, _ = gate(np.tile(y[:60], reps), np.tile(p_ref[:60], reps), np.tile(p_exp[:60], reps))
    assert status == "ok", nums_rep


def test_needed_images_accuracy_is_the_smallest_n_whose_newcombe_bound_fits():
    from edge_dfd.core.verdicts import paired_accuracy_diff

    counts = (50, 3, 2, 5)  # both right, source alone, export alone, both wrong (n0 = 60)
    same_auc = {"diff": 0.0, "se": 0.0}  # the AUC bound already within the margin: accuracy decides
    n, how = needed_images(counts, same_auc)
    assert "Newcombe" in how

    def bound(m):
        k = np.round(np.asarray(counts) * m / 60).astype(int)
        a = np.repeat([1, 1, 0, 0], k).astype(bool)
        b = np.repeat([1, 0, 1, 0], k).astype(bool)
        return paired_accuracy_diff(a, b, 0.90)["high"]

    assert bound(n) <= 0.03 < bound(n - 1)
    assert 1000 < n < 3000  # loss 1/60 of a 3-point margin: ~(1.645 * sqrt(5/60) / (0.03 - 1/60))^2 * 60 ~ 1500
    # perfect agreement on 60 images, both always right: only the Wilson ends remain: n >= 1.645^2 (1 - m) / m
    n, _ = needed_images((60, 0, 0, 0), same_auc)
    assert n == int(np.ceil(Z**2 * (1 - 0.03) / 0.03))
    assert needed_images(counts, None) == (None, "the ROC AUC bound needs at least 2 fake and 2 real verification "
                                                 "images")


def test_needed_images_auc_scales_the_delong_standard_error():
    auc = {"diff": 0.01, "se": 0.02, "high": 0.01 + Z * 0.02}
    n, how = needed_images((550, 0, 0, 50), auc)  # identical verdicts on 600 images: the AUC bound decides
    assert "DeLong" in how
    assert n == int(np.ceil(600 * (Z * 0.02 / (0.03 - 0.01)) ** 2))  # = 1624
    assert needed_images((550, 0, 0, 50), {"diff": 0.0, "se": 0.0})[0] == 600  # nothing beyond what it has
    assert needed_images((550, 0, 0, 50), {"diff": 0.03, "se": 0.01})[0] is None  # AUC loss at the margin


def test_a_loss_at_the_margin_cannot_be_proven_by_more_images():
    y, p_ref, _ = faithful(200, seed=1)
    p_exp = p_ref.copy()
    ok_ref = (p_ref >= 0.5) == (y == 1)
    flip = np.r_[np.flatnonzero(ok_ref)[:10], np.flatnonzero(~ok_ref)[:3]]  # export alone wrong on 10, right on 3
    p_exp[flip] = 1.0 - p_ref[flip]
    nums, status, why = gate(y, p_ref, p_exp)
    assert (nums["keras_only_correct"], nums["export_only_correct"]) == (10, 3)  # loss 3.5 points
    assert nums["accuracy_drop_p"] == pytest.approx(0.0923, abs=1e-4)  # not shown worse (sign test p > 0.05)
    assert status == "unproven" and nums["needed_n"] is None
    assert "at or beyond the margin 0.03" in nums["needed_n_note"]


def test_a_significant_large_loss_still_fails():
    y, p_ref, _ = faithful(400, seed=2)
    ok_ref = (p_ref >= 0.5) == (y == 1)
    p_exp = p_ref.copy()
    wrong = np.flatnonzero(ok_ref)[:40]  # 10 points lost, 40 vs 0 discordant images
    p_exp[wrong] = 1.0 - p_ref[wrong]
    nums, status, why = gate(y, p_ref, p_exp)
    assert status == "failed" and any(w.startswith("accuracy ") and "drop > 0.03" in w for w in why), why
    assert nums["accuracy_loss_upper95"] > 0.07


def test_one_class_or_no_labels_is_unproven():
    y, p_ref, p_exp = faithful(2000, flips=4)
    real = y == 0
    nums, status, why = gate(y[real], p_ref[real], p_exp[real])
    assert status == "unproven" and nums["auc_loss_upper95"] is None and nums["needed_n"] is None
    assert why == ["ROC AUC loss not measurable (the verification images need both classes)"]
    nums = compare(p_ref, p_exp, 0.5, None)
    assert judge(INT8, nums) == ("unproven", ["no labelled verification images: accuracy loss not measurable"])


def test_float_formats_keep_numeric_parity_and_are_never_unproven():
    y, p_ref, _ = faithful(60)
    nums, status, why = gate(y, p_ref, p_ref + 5e-6, FORMATS["onnx"])
    assert status == "ok" and nums["accuracy_loss_upper95"] > 0.03  # reported, not gated: parity proves it
    _, status, why = gate(y, p_ref, p_ref + 1e-3, FORMATS["onnx"])
    assert status == "failed" and why[0].startswith("max |dp| ")


def test_the_margin_comes_from_the_format_table():
    y, p_ref, p_exp = faithful(2000, flips=4)
    nums = compare(p_ref, p_exp, 0.5, y)
    assert judge(INT8, nums) == ("ok", [])
    tight = dataclasses.replace(INT8, max_accuracy_drop=0.002, max_auc_drop=0.002)
    status, why = judge(tight, nums)
    assert status == "unproven" and "margin 0.002" in why[0], why
    t = tolerance(INT8)["noninferiority"]
    assert t["margin_accuracy"] == t["margin_auc"] == NONINFERIORITY_MARGIN == 0.03
    assert "Newcombe" in t["method"] and "DeLong" in t["method"] and t["bound"] == "one-sided upper 95 %"


def test_exit_codes_unproven_4_failed_3():
    from edge_dfd.core.errors import UnprovenError, VerificationError
    from edge_dfd.export.convert import ConvertResult, raise_for_failures

    ok = ConvertResult("tflite-int8", "a.tflite", max_abs_diff=0.1)
    unproven = ConvertResult("onnx-int8", "a.onnx", max_abs_diff=0.1, ok=False, status="unproven",
                             error="onnx-int8 is not shown worse ...; needs about 900 labelled verification images")
    failed = ConvertResult("onnx-int8-arm", "b.onnx", max_abs_diff=0.4, ok=False, status="failed", error="worse")
    raise_for_failures([ok])
    with pytest.raises(UnprovenError, match="needs about 900") as e:
        raise_for_failures([ok, unproven])
    assert e.value.exit_code == 4 and "files written" in str(e.value)
    with pytest.raises(VerificationError) as e:
        raise_for_failures([unproven, failed])
    assert e.value.exit_code == 3 and "worse" in str(e.value)


def test_calibration_comes_from_train_and_never_meets_verification(tmp_path, capsys):
    from synth import make_140k

    from edge_dfd.export.imagesets import select_images

    root = make_140k(tmp_path / "d", counts={"train": 10, "valid": 15, "test": 1}, size=16)
    calib, ver = select_images(root, 16, 20, 2000)
    assert calib.source.endswith(":train") and ver.source.endswith(":valid")
    assert len(calib.x) == 20 and len(ver.x) == 30 and int(ver.y_fake.sum()) == 15
    assert "verifying on all 30 labelled images" in capsys.readouterr().err
    # a train split with too few images: the valid split is shared out, at most half calibrates, never both
    calib, ver = select_images(root, 16, 25, 2000)
    assert calib.source == ver.source and (len(calib.x), len(ver.x)) == (15, 15)
    assert not {a.tobytes() for a in calib.x} & {b.tobytes() for b in ver.x}
