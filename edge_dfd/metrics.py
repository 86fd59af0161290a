"""Binary detection metrics. Positive class = fake (the model outputs P(fake)).

``y_fake`` is 1 for a fake (generated) face and 0 for a real one, i.e. ``1 - label`` in the 140k CSVs.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES = ("real", "fake")  # index = y_fake


def _as_arrays(y_fake, p_fake):
    y = np.asarray(y_fake, dtype=np.int64).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape}) and probabilities ({p.shape}) differ in length")
    return y, p


def eer(y_fake, p_fake) -> float | None:
    """Equal error rate: where the false-positive rate equals the false-negative rate."""
    from sklearn.metrics import roc_curve

    y, p = _as_arrays(y_fake, p_fake)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p)
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0)


def binary_report(y_fake, p_fake, threshold: float = 0.5) -> dict:
    """Everything the study reported (per-class precision/recall/F1/support, accuracy, macro and weighted
    averages, confusion matrix) plus ROC AUC, average precision, EER and balanced accuracy.

    Top-level ``precision``, ``recall``, ``f1`` are those of the fake class. ``confusion_matrix`` is
    [[real->real, real->fake], [fake->real, fake->fake]] (rows = truth, columns = prediction).
    """
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        classification_report,
        confusion_matrix,
        roc_auc_score,
    )

    y, p = _as_arrays(y_fake, p_fake)
    n = int(y.size)
    pred = (p >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    rep = {
        "n": n,
        "threshold": float(threshold),
        "accuracy": float((pred == y).mean()) if n else None,
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if both else None,
        "auc": float(roc_auc_score(y, p)) if both else None,
        "ap": float(average_precision_score(y, p)) if both else None,
        "eer": eer(y, p),
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist() if n else [[0, 0], [0, 0]],
        "labels": list(CLASS_NAMES),
        "positive_class": "fake",
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
    }
    if n:
        cr = classification_report(
            y, pred, labels=[0, 1], target_names=list(CLASS_NAMES), output_dict=True, zero_division=0
        )
        rep["per_class"] = {k: {m: float(v) for m, v in cr[k].items()} for k in (*CLASS_NAMES, "macro avg", "weighted avg")}
        fake = cr["fake"]
        rep.update(precision=float(fake["precision"]), recall=float(fake["recall"]), f1=float(fake["f1-score"]))
    else:
        rep.update(per_class={}, precision=None, recall=None, f1=None)
    return rep


def report_text(rep: dict, title: str = "") -> str:
    """Human-readable report in the layout of sklearn's classification_report, plus the extra metrics."""
    lines = [title] if title else []
    lines.append(f"{'':>14}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}")
    for k in (*CLASS_NAMES, "macro avg", "weighted avg"):
        r = rep.get("per_class", {}).get(k)
        if r:
            lines.append(f"{k:>14}{r['precision']:>10.4f}{r['recall']:>10.4f}{r['f1-score']:>10.4f}{int(r['support']):>10d}")
    lines.append("")

    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    lines.append(f"accuracy           {f(rep['accuracy'])}   (n={rep['n']}, threshold={rep['threshold']:.4f})")
    if rep.get("accuracy_ci95"):
        lo, hi = rep["accuracy_ci95"]
        lines.append(f"  95% interval     {lo:.4f} - {hi:.4f}   (Wilson, over the {rep['n']} images)")
    lines.append(f"balanced accuracy  {f(rep['balanced_accuracy'])}")
    lines.append(f"ROC AUC            {f(rep['auc'])}   (positive class: fake)")
    lines.append(f"average precision  {f(rep['ap'])}")
    lines.append(f"EER                {f(rep['eer'])}")
    cm = rep["confusion_matrix"]
    lines.append("confusion matrix (rows = truth, cols = predicted) [real, fake]:")
    lines.append(f"  real  {cm[0][0]:>6d} {cm[0][1]:>6d}")
    lines.append(f"  fake  {cm[1][0]:>6d} {cm[1][1]:>6d}")
    return "\n".join(lines) + "\n"


def choose_threshold(y_fake, p_fake) -> float:
    """Decision threshold that maximises balanced accuracy on (validation) data; 0.5 if undefined.

    Ties are broken towards 0.5. The chosen value is the midpoint between neighbouring scores, so it
    does not sit exactly on a validation image's probability.
    """
    y, p = _as_arrays(y_fake, p_fake)
    if len(np.unique(y)) < 2:
        return 0.5
    s = np.unique(p)
    cands = np.concatenate([[0.5], (s[:-1] + s[1:]) / 2.0]) if s.size > 1 else np.array([0.5])
    best, best_t = -1.0, 0.5
    pos, neg = y == 1, y == 0
    for t in cands:
        pred = p >= t
        bacc = 0.5 * (pred[pos].mean() + (~pred[neg]).mean())
        if bacc > best + 1e-12 or (abs(bacc - best) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best, best_t = bacc, float(t)
    return best_t


Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_interval(k, n, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``k / n`` (95 % for the default ``z``); None when ``n`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0 or n successes
    (e.g. 1800 of 2000 images right: 0.8861 - 0.9124).
    """
    k, n = int(k), int(n)
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"successes {k} out of range 0..{n}")
    phat = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (phat + z2 / (2 * n)) / denom
    half = z * np.sqrt(phat * (1.0 - phat) / n + z2 / (4.0 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)


def accuracy_ci95(y_fake, p_fake, threshold: float) -> list[float] | None:
    """[low, high] 95 % Wilson interval of the accuracy at ``threshold`` (None with no images)."""
    y, p = _as_arrays(y_fake, p_fake)
    ci = wilson_interval(int(((p >= threshold).astype(np.int64) == y).sum()), y.size)
    return None if ci is None else [ci[0], ci[1]]
