"""The quality gate of ``edge-dfd convert``: an export's verdicts and probabilities against the source Keras
model's on the same verification images (``compare``), what shows a file worse (``problems``), and the status
of a file (``judge``): "ok", "unproven" or "failed" (see ``edge_dfd.core.formats`` for the rules). numpy only.

Quantised files must be *shown* no worse (non-inferiority): the one-sided upper 95 % bound of the paired accuracy
loss (source minus export; Newcombe's hybrid score interval for paired proportions,
``edge_dfd.core.verdicts.paired_accuracy_diff``) and of the paired ROC AUC loss (DeLong,
``edge_dfd.core.verdicts.paired_auc_diff``) must both be within ``edge_dfd.core.formats.NONINFERIORITY_MARGIN`` (3 points).
A file that is not shown worse but whose bounds exceed the margin is "unproven", with the number of verification
images that would prove it if the observed differences held (``needed_images``).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from edge_dfd.core.formats import NONINFERIORITY_MARGIN, Format
from edge_dfd.core.verdicts import agreement, is_fake, paired_accuracy_diff, paired_auc_diff, proportion_ci, sign_test_p

GATE_ALPHA = 0.05  # int8 gate: significance level of the accuracy / AUC drop tests ("shown worse")
MARGIN_LEVEL = 0.90  # two-sided level whose upper end is the one-sided 95 % bound of a loss
METHOD = ("one-sided upper 95 % bounds of the paired loss (source - export): accuracy by Newcombe's hybrid score "
          "interval for paired proportions, ROC AUC by DeLong")
MAX_NEEDED = 1_000_000  # needed_images searches up to this many images


def binomial_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval of ``k`` / ``n`` ((0, 1) for no images): the int8 gate's bound
    (``edge_dfd.core.verdicts.proportion_ci(method="exact")``)."""
    return proportion_ci(k, n, level, method="exact") or (0.0, 1.0)


def compare(p_ref: np.ndarray, p_exp: np.ndarray, threshold: float, y_fake=None, export_threshold=None,
            margin: float = NONINFERIORITY_MARGIN) -> dict:
    """Parity numbers between the source and an export on the same images (the export's verdicts at its own
    threshold when it has one), with the non-inferiority bounds and the images needed to prove ``margin``."""
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
                accuracy_drop_p=None, accuracy_loss_upper95=None, auc_loss_upper95=None, auc_loss_se=None,
                needed_n=None, needed_n_note=None)
    if y_fake is not None and len(y_fake) == len(d) and len(d):
        y = np.asarray(y_fake) == 1
        ok_ref, ok_exp = v_ref == y, v_exp == y
        nums["accuracy_keras"] = float(ok_ref.mean())
        nums["accuracy_export"] = float(ok_exp.mean())
        b, c = int((ok_ref & ~ok_exp).sum()), int((ok_exp & ~ok_ref).sum())  # the discordant images
        nums.update(keras_only_correct=b, export_only_correct=c, accuracy_drop_p=sign_test_p(b, c))
        nums["accuracy_loss_upper95"] = paired_accuracy_diff(ok_ref, ok_exp, MARGIN_LEVEL)["high"]
        auc = None
        if y.any() and not y.all():
            from edge_dfd.core.metrics import roc_auc

            nums["auc_keras"], nums["auc_export"] = roc_auc(y, p_ref), roc_auc(y, p_exp)
            auc = paired_auc_diff(y, p_ref, p_exp, MARGIN_LEVEL)  # one DeLong pass: the bound and the test
            nums["auc_drop_p"] = _delong_test_p(auc)
            nums["auc_loss_upper95"], nums["auc_loss_se"] = auc["high"], auc["se"]
        counts = (int((ok_ref & ok_exp).sum()), b, c, int((~ok_ref & ~ok_exp).sum()))
        nums["needed_n"], nums["needed_n_note"] = needed_images(counts, auc, margin)
    return nums


def needed_images(counts, auc: dict | None, margin: float = NONINFERIORITY_MARGIN) -> tuple[int | None, str]:
    """How many verification images would bring both one-sided 95 % loss bounds within ``margin``, if the
    observed proportions held: ``(n, how)``, ``n`` None when no number of images can (the observed loss is
    already at or beyond the margin, it would take more than MAX_NEEDED, or ``auc`` is None: one class only).

    ``counts``: (both right, source alone right, export alone right, both wrong) on the verification images.
    Accuracy: the smallest n whose Newcombe bound, computed on these four proportions scaled to n images (the
    observed discordance kept), is within the margin (bisection; the same formula the gate uses). AUC: DeLong's
    standard error shrinks as 1/sqrt(n) at a fixed class mix, so n = n0 * (z * se0 / (margin - observed loss))^2.
    """
    counts = np.asarray(counts, np.int64)
    n0 = int(counts.sum())
    if n0 == 0:
        return None, "no labelled verification images"
    if auc is None or auc.get("diff") is None:  # more images of one class cannot help
        return None, "the ROC AUC bound needs at least 2 fake and 2 real verification images"
    loss = (counts[1] - counts[2]) / n0
    if loss >= margin:
        return None, (f"the observed accuracy loss {loss:.3f} is at or beyond the margin {margin:g}: more images of "
                      "the same kind cannot prove it")

    def bound(n: int) -> float:
        k = np.round(counts * (n / n0)).astype(np.int64)
        a = np.repeat([True, True, False, False], k)
        b = np.repeat([True, False, True, False], k)
        return paired_accuracy_diff(a, b, MARGIN_LEVEL)["high"]

    if bound(n0) <= margin:
        n_acc = n0
    elif bound(MAX_NEEDED) > margin:
        return None, f"more than {MAX_NEEDED:,} images at the observed accuracy difference"
    else:
        lo, hi = n0, MAX_NEEDED  # bound(lo) > margin >= bound(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if bound(mid) > margin else (lo, mid)
        n_acc = hi
    how = "accuracy: the Newcombe bound with the observed discordant-image proportions"
    d, se = auc["diff"], auc["se"] or 0.0
    if d >= margin:
        return None, (f"the observed ROC AUC loss {d:.3f} is at or beyond the margin {margin:g}: more images of the "
                      "same kind cannot prove it")
    n_auc = int(np.ceil(n0 * (NormalDist().inv_cdf(0.5 + MARGIN_LEVEL / 2) * se / (margin - d)) ** 2)) if se > 0 else n0
    if n_auc > MAX_NEEDED:
        return None, f"more than {MAX_NEEDED:,} images at the observed ROC AUC difference"
    return max(n_acc, n_auc, n0), how + "; AUC: DeLong's standard error scaled by 1/sqrt(n)"


def judge(fmt: Format, nums: dict) -> tuple[str, list[str]]:
    """("ok" | "unproven" | "failed", reasons) of one verified export. "failed": ``problems`` (shown worse, or a
    float file off numerically); a float file that matches is "ok"; a quantised file is "ok" only when both loss
    bounds are within its margin, "unproven" otherwise (reasons say which bound and how many images it needs)."""
    bad = problems(fmt, nums)
    if bad:
        return "failed", bad
    if not fmt.quantized:
        return "ok", []
    why = []
    acc_hi, auc_hi = nums.get("accuracy_loss_upper95"), nums.get("auc_loss_upper95")
    if acc_hi is None:
        why.append("no labelled verification images: accuracy loss not measurable")
    elif acc_hi > fmt.max_accuracy_drop:
        why.append(f"accuracy loss <= {acc_hi:.3f} (one-sided 95 %, Newcombe) > margin {fmt.max_accuracy_drop:g}")
    if auc_hi is None:
        if acc_hi is not None:
            why.append("ROC AUC loss not measurable (the verification images need both classes)")
    elif auc_hi > fmt.max_auc_drop:
        why.append(f"ROC AUC loss <= {auc_hi:.3f} (one-sided 95 %, DeLong) > margin {fmt.max_auc_drop:g}")
    return ("unproven", why) if why else ("ok", [])


def needed_text(nums: dict) -> str:
    """"needs about N verification images (has n)" or why no number of images can prove it."""
    if nums.get("needed_n") is not None:
        return f"needs about {nums['needed_n']:,} labelled verification images (has {nums['n']})"
    return f"no number of images can prove it: {nums.get('needed_n_note') or 'not measurable'}"


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
    return _delong_test_p(paired_auc_diff(y_fake, p_a, p_b))


def _delong_test_p(r: dict) -> float:
    """``delong_p`` from a ``paired_auc_diff`` result (its standard error does not depend on the level)."""
    from math import erfc, sqrt

    if r["se"] is None or r["se"] ** 2 <= 1e-15:
        return 1.0
    return float(erfc(abs(r["diff"]) / r["se"] / sqrt(2.0)))


def tolerance(fmt: Format) -> dict:
    """What the gate checked for this format (recorded in the file's verification metadata): for quantised files
    the "shown worse" rules (failed) and the non-inferiority rule ("ok" only when both bounds are within the
    margin, else "unproven")."""
    if not fmt.quantized:
        return {"max_abs_diff": fmt.max_abs_diff, "mean_abs_diff": fmt.mean_abs_diff,
                "min_agreement": fmt.min_agreement}
    return {"min_agreement_upper95": fmt.min_agreement, "max_accuracy_drop": fmt.max_accuracy_drop,
            "max_auc_drop": fmt.max_auc_drop, "max_median_abs_diff": fmt.max_median_abs_diff,
            "alpha": GATE_ALPHA, "collapse": True,
            "noninferiority": {"margin_accuracy": fmt.max_accuracy_drop, "margin_auc": fmt.max_auc_drop,
                               "bound": "one-sided upper 95 %", "method": METHOD},
            "reported_not_gated": ["max_abs_diff", "mean_abs_diff"]}
