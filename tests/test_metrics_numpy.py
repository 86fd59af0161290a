"""edge_dfd.core.metrics in numpy: ROC AUC, AP, EER, ROC curve, per-class report, balanced accuracy and the threshold
choice against reference values (hand-computed, or computed once with scikit-learn 1.9.1 and hard-coded here:
scikit-learn is not a dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_dfd.core.metrics import (
    average_precision,
    binary_report,
    choose_threshold,
    confusion_matrix,
    eer,
    per_class_report,
    roc_auc,
    roc_curve,
)

# tied scores across classes (0.4 twice real, once fake); sklearn 1.9.1 values
TIES_Y = [0, 0, 1, 1, 0, 1, 1, 0, 1, 0]
TIES_P = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.2, 0.65, 0.7]
# 7 real / 3 fake
IMB_Y = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
IMB_P = [0.05, 0.2, 0.3, 0.55, 0.1, 0.6, 0.45, 0.5, 0.9, 0.35]


def test_hand_computed_four_images():
    # pairs (fake, real): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> AUC 3/4
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, p) == 0.75
    # ranked 0.8 (fake, P=1, R=1/2), 0.4 (real), 0.35 (fake, P=2/3, R=1): AP = 1/2*1 + 1/2*2/3
    assert average_precision(y, p) == pytest.approx(5 / 6, abs=1e-15)
    # thresholds 0.8, 0.4, 0.35, 0.1 -> (FPR, TPR) (0, 1/2), (1/2, 1/2), (1/2, 1), (1, 1)
    fpr, tpr, thr = roc_curve(y, p)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1.0, 1.0])
    assert thr[0] == np.inf and list(thr[1:]) == [0.8, 0.4, 0.35, 0.1]
    assert eer(y, p) == 0.5  # at 0.4: FPR 1/2 (the 0.4 real) = FNR 1/2 (the 0.35 fake)


def test_ties_count_one_half():
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1], [0.3, 0.6, 0.6]) == 0.75  # (1 + 0.5) / 2
    assert roc_auc([1, 1, 0], [0.9, 0.8, 0.1]) == 1.0 and roc_auc([1, 1, 0], [0.1, 0.2, 0.9]) == 0.0
    assert roc_auc([1, 1], [0.2, 0.3]) is None and eer([0, 0], [0.2, 0.3]) is None
    assert average_precision([0, 0], [0.2, 0.3]) is None


@pytest.mark.parametrize("y, p, auc, ap, eer_, bacc", [
    (TIES_Y, TIES_P, 0.76, 0.7892857142857144, 0.30000000000000004, 0.7),
    (IMB_Y, IMB_P, 0.7619047619047619, 0.6666666666666667, 0.30952380952380953, 0.6904761904761905),
])
def test_against_sklearn_reference_values(y, p, auc, ap, eer_, bacc):
    rep = binary_report(y, p, 0.5)
    assert rep["auc"] == pytest.approx(auc, abs=1e-12) and rep["ap"] == pytest.approx(ap, abs=1e-12)
    assert rep["eer"] == pytest.approx(eer_, abs=1e-12) and rep["balanced_accuracy"] == pytest.approx(bacc, abs=1e-12)


def test_per_class_report_against_sklearn():
    rep = binary_report(IMB_Y, IMB_P, 0.5)
    assert rep["confusion_matrix"] == [[5, 2], [1, 2]]
    want = {  # sklearn classification_report(output_dict=True, zero_division=0), 1.9.1
        "real": {"precision": 0.8333333333333334, "recall": 0.7142857142857143, "f1-score": 0.7692307692307693,
                 "support": 7.0},
        "fake": {"precision": 0.5, "recall": 0.6666666666666666, "f1-score": 0.5714285714285714, "support": 3.0},
        "macro avg": {"precision": 0.6666666666666667, "recall": 0.6904761904761905, "f1-score": 0.6703296703296704,
                      "support": 10.0},
        "weighted avg": {"precision": 0.7333333333333334, "recall": 0.7, "f1-score": 0.7098901098901099,
                         "support": 10.0},
    }
    assert set(rep["per_class"]) == set(want)
    for k, row in want.items():
        assert rep["per_class"][k] == pytest.approx(row, abs=1e-12), k
    assert (rep["precision"], rep["recall"], rep["f1"]) == pytest.approx((0.5, 2 / 3, 0.5714285714285714))
    ties = binary_report(TIES_Y, TIES_P, 0.5)
    assert ties["confusion_matrix"] == [[4, 1], [2, 3]]
    assert ties["per_class"]["real"]["f1-score"] == pytest.approx(0.7272727272727273, abs=1e-12)
    assert ties["per_class"]["macro avg"]["precision"] == pytest.approx(0.7083333333333333, abs=1e-12)


def test_zero_division_is_zero():
    cr = per_class_report([0, 0, 1], [0, 0, 0])  # nothing predicted fake
    assert cr["fake"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1.0}
    assert cr["real"]["precision"] == pytest.approx(2 / 3) and cr["real"]["recall"] == 1.0
    assert confusion_matrix([0, 1, 1, 0], [1, 1, 0, 0]).tolist() == [[1, 1], [1, 1]]
    one = binary_report([1, 1, 1], [0.9, 0.2, 0.7], 0.5)
    assert one["auc"] is None and one["eer"] is None and one["accuracy"] == pytest.approx(2 / 3)
    empty = binary_report([], [], 0.5)
    assert empty["n"] == 0 and empty["confusion_matrix"] == [[0, 0], [0, 0]] and empty["precision"] is None


def test_roc_curve_drops_collinear_points_like_sklearn():
    # the values sklearn 1.9.1 returns for these scores (11 points before dropping, 9 after)
    y = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0]
    p = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3]
    fpr, tpr, thr = roc_curve(y, p)
    np.testing.assert_allclose(fpr, [0, 0, 0.2, 0.2, 0.6, 0.6, 0.8, 0.8, 1.0])
    np.testing.assert_allclose(tpr, [0, 0.2, 0.2, 0.6, 0.6, 0.8, 0.8, 1.0, 1.0])
    full = roc_curve(y, p, drop_intermediate=False)
    assert len(full[0]) == 11 and roc_auc(y, p) == pytest.approx(0.64)


def test_choose_threshold_maximises_balanced_accuracy():
    # perfectly separable at any t in (0.4, 0.6]: candidates are midpoints, the closest to 0.5 wins -> 0.5
    assert choose_threshold([0, 0, 1, 1], [0.2, 0.4, 0.6, 0.9]) == 0.5
    # only t in (0.7, 0.8] separates: the midpoint 0.75
    assert choose_threshold([0, 0, 1, 1], [0.2, 0.7, 0.8, 0.9]) == pytest.approx(0.75)
    assert choose_threshold([1, 1], [0.2, 0.3]) == 0.5
