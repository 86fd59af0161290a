"""The accuracy half of ``edge-dfd bench``, computed in the parent from each format's P(fake) per image (the
worker measures them in a pass of its own, after its latency loop): accuracy with its Wilson interval, balanced
accuracy (MOVER-Wilson), ROC AUC (DeLong), the paired differences against the group's reference file (Newcombe's
hybrid score interval for the accuracy, DeLong for the AUC), per-set figures and the Pareto front."""

from __future__ import annotations

import numpy as np

from edge_dfd.core.metrics import binary_report
from edge_dfd.core.verdicts import (
    auc_ci,
    balanced_accuracy_ci,
    is_fake,
    paired_accuracy_diff,
    paired_auc_diff,
    proportion_ci,
)

__all__ = ["REFERENCE_ORDER", "accuracy_fields", "by_set", "paired_fields", "pareto_flags", "pick_reference"]

# the paired reference of a group: its source model, else a float32 file (exact vs the source)
REFERENCE_ORDER = ("keras", "tflite-fp32", "onnx")


def accuracy_fields(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """BenchRow fields of one format on ``n`` images: accuracy (+ Wilson 95 %), balanced accuracy (+ MOVER),
    AUC (+ DeLong; ``auc_note`` says why when n/a), AP, EER, precision, recall, F1."""
    rep = binary_report(y, p, threshold)
    n = rep["n"]
    ok = is_fake(p, threshold) == y.astype(bool)
    acc_ci = proportion_ci(int(ok.sum()), n) or (None, None)
    bal = balanced_accuracy_ci(y, ok)
    auc = auc_ci(y, p)
    return {"n": n, "accuracy": rep["accuracy"], "accuracy_ci95_low": acc_ci[0], "accuracy_ci95_high": acc_ci[1],
            "balanced_accuracy": bal["value"], "balanced_accuracy_ci95_low": bal["low"],
            "balanced_accuracy_ci95_high": bal["high"], "auc": rep["auc"], "auc_ci95_low": auc["low"],
            "auc_ci95_high": auc["high"],
            "auc_note": None if rep["auc"] is not None else f"n/a: one class only ({rep['n_real']} real, "
                                                           f"{rep['n_fake']} fake); AUC needs both",
            "ap": rep["ap"], "eer": rep["eer"], "precision": rep["precision"], "recall": rep["recall"],
            "f1": rep["f1"]}


def paired_fields(y: np.ndarray, p_ref: np.ndarray, t_ref: float, p: np.ndarray, t: float, ref: str) -> dict:
    """This format minus the reference on the same images (each file at its own threshold): accuracy difference
    with Newcombe's hybrid score 95 % interval, AUC difference with DeLong's (None when one class only)."""
    ok_ref = is_fake(p_ref, t_ref) == y.astype(bool)
    ok = is_fake(p, t) == y.astype(bool)
    a = paired_accuracy_diff(ok_ref, ok)  # a = the reference (source), b = this format: a - b = the loss
    d = paired_auc_diff(y, p_ref, p)
    neg = lambda v: None if v is None else -float(v)  # noqa: E731 - report this format minus the reference
    return {"reference": ref, "acc_diff": neg(a["diff"]), "acc_diff_ci95_low": neg(a["high"]),
            "acc_diff_ci95_high": neg(a["low"]), "auc_diff": neg(d["diff"]), "auc_diff_ci95_low": neg(d["high"]),
            "auc_diff_ci95_high": neg(d["low"])}


def by_set(y: np.ndarray, p: np.ndarray, threshold: float, sets: list[str]) -> dict:
    """{set: {"n", "accuracy", "auc"}} over the images of each set (the bundled sample's two sets)."""
    from edge_dfd.core.metrics import roc_auc

    out = {}
    s = np.asarray(sets)
    for name in dict.fromkeys(sets):
        m = s == name
        ok = is_fake(p[m], threshold) == y[m].astype(bool)
        out[name] = {"n": int(m.sum()), "accuracy": float(ok.mean()) if m.any() else None,
                     "auc": roc_auc(y[m], p[m]) if len(np.unique(y[m])) == 2 else None}
    return out


def pick_reference(formats: list[str]) -> str | None:
    """The group's paired reference among the formats measured: the first of REFERENCE_ORDER present."""
    return next((f for f in REFERENCE_ORDER if f in formats), None)


def pareto_flags(points: list[tuple[float, float]]) -> list[bool]:
    """For (latency, accuracy) points: True where no other point is at least as fast and as accurate and
    strictly better in one of the two (point estimates)."""
    out = []
    for i, (x, y) in enumerate(points):
        out.append(not any((x2 <= x and y2 >= y and (x2 < x or y2 > y))
                           for j, (x2, y2) in enumerate(points) if j != i))
    return out
