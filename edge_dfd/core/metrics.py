"""Binary detection metrics. Positive class = fake (the model outputs P(fake)).

``y_fake`` is 1 for a fake (generated) face and 0 for a real one, i.e. ``1 - label`` in the 140k CSVs.
"""

from __future__ import annotations

import numpy as np

from edge_dfd.core.verdicts import Z95, choose_threshold, is_fake, proportion_ci

__all__ = ["CLASS_NAMES", "Z95", "accuracy_ci95", "average_precision", "binary_report", "choose_threshold",
           "confusion_matrix", "eer", "per_class_report", "report_text", "roc_auc", "roc_curve", "wilson_interval"]

CLASS_NAMES = ("real", "fake")  # index = y_fake


def _as_arrays(y_fake, p_fake):
    y = np.asarray(y_fake, dtype=np.int64).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape}) and probabilities ({p.shape}) differ in length")
    return y, p


def _clf_curve(y: np.ndarray, p: np.ndarray):
    """Cumulative (false positives, true positives, threshold) at each distinct score, highest score first
    (sklearn's ``_binary_clf_curve``: tied scores form one step)."""
    order = np.argsort(p, kind="mergesort")[::-1]
    p, y = p[order], y[order]
    idx = np.r_[np.where(np.diff(p))[0], y.size - 1]
    tps = np.cumsum(y)[idx].astype(np.float64)
    fps = 1.0 + idx - tps
    return fps, tps, p[idx]


def roc_curve(y_fake, p_fake, drop_intermediate: bool = True):
    """(fpr, tpr, thresholds) as ``sklearn.metrics.roc_curve`` returns them (first threshold ``inf``).

    ``drop_intermediate`` drops the points that lie on a straight line between their neighbours (the
    area is unchanged). Both classes must be present.
    """
    y, p = _as_arrays(y_fake, p_fake)
    fps, tps, thr = _clf_curve(y, p)
    if drop_intermediate and len(fps) > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps, thr = np.r_[0.0, fps], np.r_[0.0, tps], np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def roc_auc(y_fake, p_fake) -> float | None:
    """Area under the ROC curve (trapezoids; ties count one half). None unless both classes are present."""
    y, p = _as_arrays(y_fake, p_fake)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(y_fake, p_fake) -> float | None:
    """Average precision, sum over thresholds of (R_k - R_k-1) * P_k without interpolation (sklearn's
    ``average_precision_score``). None when there is no fake."""
    y, p = _as_arrays(y_fake, p_fake)
    if not (y == 1).any():
        return None
    fps, tps, _ = _clf_curve(y, p)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def eer(y_fake, p_fake) -> float | None:
    """Equal error rate: where the false-positive rate equals the false-negative rate."""
    y, p = _as_arrays(y_fake, p_fake)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p)
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0)


def confusion_matrix(y_fake, pred) -> np.ndarray:
    """2 x 2 counts [[real->real, real->fake], [fake->real, fake->fake]] (rows = truth)."""
    y = np.asarray(y_fake, np.int64).ravel()
    v = np.asarray(pred, np.int64).ravel()
    return np.bincount(2 * y + v, minlength=4)[:4].reshape(2, 2)


def per_class_report(y_fake, pred) -> dict:
    """Precision, recall, F1 and support per class plus macro / weighted averages, as
    ``sklearn.metrics.classification_report(..., output_dict=True, zero_division=0)`` gives them."""
    cm = confusion_matrix(y_fake, pred).astype(np.float64)
    support, predicted, hits = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)

    def div(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    prec, rec = div(hits, predicted), div(hits, support)
    f1 = div(2 * prec * rec, prec + rec)
    out = {name: {"precision": float(prec[k]), "recall": float(rec[k]), "f1-score": float(f1[k]),
                  "support": float(support[k])} for k, name in enumerate(CLASS_NAMES)}
    total = support.sum()
    out["macro avg"] = {"precision": float(prec.mean()), "recall": float(rec.mean()), "f1-score": float(f1.mean()),
                        "support": float(total)}
    w = support / total if total else np.zeros(2)
    out["weighted avg"] = {"precision": float((prec * w).sum()), "recall": float((rec * w).sum()),
                           "f1-score": float((f1 * w).sum()), "support": float(total)}
    return out


def binary_report(y_fake, p_fake, threshold: float = 0.5) -> dict:
    """Everything the study reported (per-class precision/recall/F1/support, accuracy, macro and weighted
    averages, confusion matrix) plus ROC AUC, average precision, EER and balanced accuracy.

    Top-level ``precision``, ``recall``, ``f1`` are those of the fake class. ``confusion_matrix`` is
    [[real->real, real->fake], [fake->real, fake->fake]] (rows = truth, columns = prediction).
    """
    y, p = _as_arrays(y_fake, p_fake)
    n = int(y.size)
    pred = is_fake(p, threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    rep = {
        "n": n,
        "threshold": float(threshold),
        "accuracy": float((pred == y).mean()) if n else None,
        "balanced_accuracy": float((pred[y == 0] == 0).mean() + (pred[y == 1] == 1).mean()) / 2.0 if both else None,
        "auc": roc_auc(y, p) if both else None,
        "ap": average_precision(y, p) if both else None,
        "eer": eer(y, p),
        "confusion_matrix": confusion_matrix(y, pred).tolist() if n else [[0, 0], [0, 0]],
        "labels": list(CLASS_NAMES),
        "positive_class": "fake",
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
    }
    if n:
        cr = per_class_report(y, pred)
        rep["per_class"] = cr
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


def wilson_interval(k, n, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``k / n`` (95 % for the default ``z``); None when ``n`` is 0
    (``edge_dfd.core.verdicts.proportion_ci``)."""
    if z == Z95:
        return proportion_ci(k, n)
    from math import erf, sqrt

    return proportion_ci(k, n, level=erf(z / sqrt(2.0)))


def accuracy_ci95(y_fake, p_fake, threshold: float) -> list[float] | None:
    """[low, high] 95 % Wilson interval of the accuracy at ``threshold`` (None with no images)."""
    y, p = _as_arrays(y_fake, p_fake)
    ci = proportion_ci(int((is_fake(p, threshold).astype(np.int64) == y).sum()), y.size)
    return None if ci is None else [ci[0], ci[1]]
