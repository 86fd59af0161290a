"""The quality gate of ``edge-dfd convert``: an export's verdicts and probabilities against the source Keras
model's on the same verification images (``compare``), and what fails a file (``problems``; see
``edge_dfd.convert`` and ``edge_dfd.formats`` for the rules). numpy only.
"""

from __future__ import annotations

import numpy as np

from edge_dfd.formats import Format
from edge_dfd.verdicts import agreement, is_fake, paired_auc_diff, proportion_ci, sign_test_p

GATE_ALPHA = 0.05  # int8 gate: significance level of the accuracy / AUC drop tests


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of ``k`` / ``n`` ((0, 1) for no images): the int8 gate's bound
    (``edge_dfd.verdicts.proportion_ci(method="exact")``)."""
    return proportion_ci(k, n, level, method="exact") or (0.0, 1.0)


def compare(p_ref: np.ndarray, p_exp: np.ndarray, threshold: float, y_fake=None, export_threshold=None) -> dict:
    """Parity numbers between the source and an export on the same images (the export's verdicts at its own
    threshold when it has one)."""
    d = np.abs(p_ref.astype(np.float64) - p_exp.astype(np.float64))
    v_ref, v_exp = is_fake(p_ref, threshold), is_fake(p_exp, threshold if export_threshold is None else export_threshold)
    nums = {
        "n": int(len(d)),
        "max_abs_diff": float(d.max()) if len(d) else 0.0,
        "mean_abs_diff": float(d.mean()) if len(d) else 0.0,
        "median_abs_diff": float(np.median(d)) if len(d) else 0.0,
        "agreement": agreement(p_ref, p_exp, threshold, export_threshold),
        "fake_fraction_keras": float(v_ref.mean()) if len(d) else 0.0,
        "fake_fraction_export": float(v_exp.mean()) if len(d) else 0.0,
        "accuracy_keras": None,
        "accuracy_export": None,
    }
    n_agree = int((v_ref == v_exp).sum())
    nums["agreement_ci95"] = list(binomial_ci(n_agree, len(d)))
    nums.update(auc_keras=None, auc_export=None, auc_drop_p=None, keras_only_correct=None, export_only_correct=None,
                accuracy_drop_p=None)
    if y_fake is not None and len(y_fake) == len(d) and len(d):
        y = np.asarray(y_fake) == 1
        ok_ref, ok_exp = v_ref == y, v_exp == y
        nums["accuracy_keras"] = float(ok_ref.mean())
        nums["accuracy_export"] = float(ok_exp.mean())
        b, c = int((ok_ref & ~ok_exp).sum()), int((ok_exp & ~ok_ref).sum())  # the discordant images
        nums.update(keras_only_correct=b, export_only_correct=c, accuracy_drop_p=sign_test_p(b, c))
        if y.any() and not y.all():
            from edge_dfd.metrics import roc_auc

            nums["auc_keras"], nums["auc_export"] = roc_auc(y, p_ref), roc_auc(y, p_exp)
            nums["auc_drop_p"] = delong_p(y, p_ref, p_exp)
    return nums


def problems(fmt: Format, nums: dict) -> list[str]:
    """Gate violations of one verified export (empty list = passes); see the module docstring."""
    out = []
    if not fmt.quantized:  # float formats: numeric parity, strict (a bug check)
        if nums["max_abs_diff"] > fmt.max_abs_diff:
            out.append(f"max |dp| {nums['max_abs_diff']:.3g} > {fmt.max_abs_diff:g}")
        if nums["mean_abs_diff"] > fmt.mean_abs_diff:
            out.append(f"mean |dp| {nums['mean_abs_diff']:.3g} > {fmt.mean_abs_diff:g}")
        if nums["agreement"] < fmt.min_agreement:
            out.append(f"agreement {nums['agreement']:.3f} < {fmt.min_agreement:g}")
        return out
    keras_both = 0.0 < nums["fake_fraction_keras"] < 1.0
    if keras_both and nums["fake_fraction_export"] in (0.0, 1.0):
        cls = "fake" if nums["fake_fraction_export"] == 1.0 else "real"
        out.append(f"collapsed to one class (every image '{cls}')")
    med = nums.get("median_abs_diff", 0.0)
    if med > fmt.max_median_abs_diff:
        out.append(f"median |dp| {med:.3g} > {fmt.max_median_abs_diff:g} (probabilities shifted systematically)")
    lo, hi = nums.get("agreement_ci95") or binomial_ci(round(nums["agreement"] * nums["n"]), nums["n"])
    if hi < fmt.min_agreement:
        out.append(f"agreement {nums['agreement']:.3f} (95% CI {lo:.3f}-{hi:.3f}) < {fmt.min_agreement:g}")
    acc_k, acc_e, p_acc = nums.get("accuracy_keras"), nums.get("accuracy_export"), nums.get("accuracy_drop_p")
    if acc_k is not None and p_acc is not None and acc_k - acc_e > fmt.max_accuracy_drop and p_acc < GATE_ALPHA:
        out.append(f"accuracy {acc_k:.3f} -> {acc_e:.3f} (Keras alone right on {nums['keras_only_correct']}, the "
                   f"export alone on {nums['export_only_correct']} images; sign test p={p_acc:.2g}), "
                   f"drop > {fmt.max_accuracy_drop:g}")
    auc_k, auc_e, p_auc = nums.get("auc_keras"), nums.get("auc_export"), nums.get("auc_drop_p")
    if auc_k is not None and p_auc is not None and auc_k - auc_e > fmt.max_auc_drop and p_auc < GATE_ALPHA:
        out.append(f"ROC AUC {auc_k:.3f} -> {auc_e:.3f} (DeLong p={p_auc:.2g}), drop > {fmt.max_auc_drop:g}")
    return out


def delong_p(y_fake, p_a, p_b) -> float:
    """Two-sided p-value of DeLong's test that two scores of the SAME images have equal ROC AUC (paired).

    1.0 (no evidence) with fewer than 2 images of a class or a degenerate (zero) variance estimate: a handful
    of perfectly separated images says nothing about the AUC difference."""
    from math import erfc, sqrt

    r = paired_auc_diff(y_fake, p_a, p_b)
    if r["se"] is None or r["se"] ** 2 <= 1e-15:
        return 1.0
    return float(erfc(abs(r["diff"]) / r["se"] / sqrt(2.0)))


def tolerance(fmt: Format) -> dict:
    """What the gate checked for this format (recorded in the file's verification metadata)."""
    if not fmt.quantized:
        return {"max_abs_diff": fmt.max_abs_diff, "mean_abs_diff": fmt.mean_abs_diff,
                "min_agreement": fmt.min_agreement}
    return {"min_agreement_upper95": fmt.min_agreement, "max_accuracy_drop": fmt.max_accuracy_drop,
            "max_auc_drop": fmt.max_auc_drop, "max_median_abs_diff": fmt.max_median_abs_diff,
            "alpha": GATE_ALPHA, "collapse": True,
            "reported_not_gated": ["max_abs_diff", "mean_abs_diff"]}
