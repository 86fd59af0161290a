"""The measured speed / accuracy curve of a two-stage cascade (``edge_dfd.runtime.cascade``), which ``bench
--escalate`` and ``benchmarks/cascade.py`` report. numpy + runtime only.

    from edge_dfd.bench.curve import cascade_curve, curve_table
    from edge_dfd.runtime import load_model
    from edge_dfd.runtime.cascade import load_cascade
    cas = load_cascade(load_model("default", format="tflite-int8"), "ten-pass", 0.2)
    res = cascade_curve(cas, records)            # records: edge_dfd.images.data Records (e.g. a test split)
    print(curve_table(res))

Every point of the curve is MEASURED: the first model alone, the second alone and the cascade at each
fraction each run over the same decoded faces (each model's input at its own size), one face per call (the live
pipeline's case), interleaved face by face (so that a shared machine's changing load hits every point alike),
and the mean milliseconds per face is the wall time of those calls over the faces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import DataError
from edge_dfd.runtime.calibrate import load_faces
from edge_dfd.runtime.cascade import CURVE_FRACTIONS, Cascade, file_id


def _auc_ci(y, p) -> tuple[float | None, list | None]:
    """ROC AUC and its 95 % DeLong interval (``edge_dfd.core.verdicts.auc_ci``)."""
    from edge_dfd.core.verdicts import auc_ci

    r = auc_ci(y, p)
    if r["auc"] is None:
        return None, None
    return r["auc"], [r["low"], r["high"]]


def _metrics(y, p, threshold, stage=None) -> dict:
    from edge_dfd.core.metrics import accuracy_ci95
    from edge_dfd.core.verdicts import is_fake

    pred = is_fake(p, threshold).astype(np.int64)
    auc, auc_ci = _auc_ci(y, p)
    return {"images": int(len(y)),
            "escalated_share": None if stage is None else round(float(np.mean(stage == 2)), 4),
            "accuracy": round(float(np.mean(pred == y)), 4), "accuracy_ci95": accuracy_ci95(y, p, threshold),
            "balanced_accuracy": (round(float((np.mean(pred[y == 1]) + np.mean(1 - pred[y == 0])) / 2), 4)
                                  if (y == 1).any() and (y == 0).any() else None),  # one class: undefined
            "auc": None if auc is None else round(auc, 4), "auc_ci95": auc_ci}


def _point(name, fraction, y, p, threshold, seconds, stage=None, failed=0, groups=None) -> dict:
    out = {"name": name, "fraction": fraction, **_metrics(y, p, threshold, stage), "stage2_failed": failed,
           "ms_per_face": round(seconds * 1e3 / len(y), 3)}
    if groups is not None:
        out["groups"] = {g: _metrics(y[groups == g], p[groups == g], threshold,
                                     None if stage is None else stage[groups == g]) for g in sorted(set(groups))}
    return out


@dataclass
class _Pair:
    """The same faces at the first and at the second model's input size (a cascade case's input)."""

    first: np.ndarray
    second: np.ndarray

    def rows(self, a: int, b: int):
        return self.first[a:b], self.second[a:b]


def _interleaved(cases, n: int, batch: int, warmup: int = 5):
    """Run every case on every batch of faces, the cases' order rotating from batch to batch, so that each point
    sees the same machine load (a shared machine drifts between sequential runs). -> (outputs, seconds) per case."""
    for _, _, fn, x in cases:
        for i in range(min(warmup, n)):
            fn(*x.rows(i, i + 1)) if isinstance(x, _Pair) else fn(x[i : i + 1])
    outs, secs = [[] for _ in cases], [0.0] * len(cases)
    for k, start in enumerate(range(0, n, batch)):
        for j in range(len(cases)):
            c = (j + k) % len(cases)
            fn, x = cases[c][2], cases[c][3]
            t0 = time.perf_counter()
            outs[c].append(fn(*x.rows(start, start + batch)) if isinstance(x, _Pair) else fn(x[start : start + batch]))
            secs[c] += time.perf_counter() - t0
    return outs, secs


def cascade_curve(cascade: Cascade, records, fractions=CURVE_FRACTIONS, batch_size: int = 1, log=None,
                  groups=None) -> dict:
    """Measure the speed / accuracy curve of ``cascade``'s pair on ``records``: the first model alone, the
    second alone and the cascade at each fraction, all on the same faces (decoded once per input size, outside
    the timing), interleaved face by face. Returns {"points": [...], ...}; each point has accuracy (95 % Wilson
    interval), balanced accuracy, ROC AUC (95 % DeLong interval), the measured escalated share, mean ms per face,
    the share of the accuracy gap it recovers and its time relative to the second model's.
    ``groups`` (one name per record, e.g. the data set) adds the metrics per group to every point."""
    first, second = cascade.first, cascade.second
    log = log or (lambda s: None)
    size = cascade.input_size
    kept: list[int] = []
    xs = {size: load_faces(records, size, log, kept)}
    for s in {first.input_size, second.input_size} - {size}:
        xs[s] = load_faces(records, s, log)
    y = xs[size][1]
    g = None if groups is None else np.asarray(groups, dtype=object)[kept]
    if any(len(v[1]) != len(y) for v in xs.values()):
        raise DataError("an image decoded at one size but not another")
    cases = [("first", 0.0, first.predict, xs[first.input_size][0]),
             ("second", 1.0, second.predict, xs[second.input_size][0])]
    cascades = [Cascade(first, second, cascade.table, f) for f in fractions]
    both = _Pair(xs[first.input_size][0], xs[second.input_size][0])  # each model's own input, as predict gives it
    cases += [(f"cascade F={c.fraction}", c.fraction, c.predict_detail, both) for c in cascades]
    log(f"cascade curve: {len(cases)} points on {len(y)} faces, interleaved face by face")
    outs, secs = _interleaved(cases, len(y), batch_size)
    points = []
    for (name, frac, _, _), out, t in zip(cases, outs, secs):
        if name in ("first", "second"):
            model = first if name == "first" else second
            points.append(_point(name, frac, y, np.concatenate(out), model.threshold, t, groups=g))
            continue
        p = np.concatenate([d.p for d in out])
        stage = np.concatenate([d.stage for d in out])
        failed = sum(len(d.errors) for d in out)
        points.append(_point(name, frac, y, p, first.threshold, t, stage, failed, g))
    from edge_dfd.core.verdicts import is_fake, paired_accuracy_diff

    thr = [first.threshold, second.threshold] + [first.threshold] * len(cascades)
    ok = []
    for (name, _, _, _), out, t in zip(cases, outs, thr):
        p = np.concatenate([d.p for d in out] if name.startswith("cascade") else out)
        ok.append(is_fake(p, t).astype(np.int64) == y)
    for pt, k in zip(points, ok):  # paired on the same faces: what the point gains over the first model alone
        d = paired_accuracy_diff(k, ok[0])
        pt["vs_first"] = {"diff": round(d["diff"], 4), "ci95": [round(d["low"], 4), round(d["high"], 4)]}
    a1, a2, t2 = points[0]["accuracy"], points[1]["accuracy"], points[1]["ms_per_face"]
    for pt in points:
        gap = a2 - a1
        pt["gap_recovered"] = None if gap == 0 else round((pt["accuracy"] - a1) / gap, 3)
        pt["time_vs_second"] = round(pt["ms_per_face"] / t2, 3) if t2 else None
    return {"first": {**file_id(first.path), "dir": first.path.parent.name, "format": first.format,
                      "threshold": first.threshold},
            "second": {**file_id(second.path), "dir": second.path.parent.name, "format": second.format,
                       "threshold": second.threshold},
            "rule": cascade.rule, "calibration": cascade.table.get("source"), "images": int(len(y)),
            "fake": int(y.sum()), "batch_size": batch_size, "threads": getattr(first, "threads", None),
            "points": points}


def curve_table(res: dict) -> str:
    """The curve as a markdown table."""
    head = ("| point | escalated | accuracy (95% CI) | vs first, paired (95% CI) | bal. acc. | AUC (95% CI) | ms/face "
            "| x second's time | gap recovered |\n|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for p in res["points"]:
        ci, aci = p["accuracy_ci95"], p["auc_ci95"]
        esc = "-" if p["escalated_share"] is None else f"{p['escalated_share']:.3f}"
        v = p["vs_first"]
        bal = "n/a" if p["balanced_accuracy"] is None else f"{p['balanced_accuracy']:.4f}"
        auc = "n/a (one class)" if p["auc"] is None else f"{p['auc']:.4f} ({aci[0]:.3f}-{aci[1]:.3f})"
        rows.append(f"| {p['name']} | {esc} | {p['accuracy']:.4f} ({ci[0]:.3f}-{ci[1]:.3f}) | "
                    f"{v['diff']:+.4f} ({v['ci95'][0]:+.3f} to {v['ci95'][1]:+.3f}) | {bal} | {auc} | "
                    f"{p['ms_per_face']:.2f} | {p['time_vs_second']:.3f} | "
                    f"{'-' if p['gap_recovered'] is None else format(p['gap_recovered'], '.2f')} |")
    return head + "\n".join(rows) + "\n"


def plot_curve(res: dict, path) -> Path | None:
    """Accuracy (with its interval) against mean ms per face; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from edge_dfd.core.fsutil import atomic_path

    pts = res["points"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p in pts:
        lo, hi = p["accuracy_ci95"]
        ax.errorbar(p["ms_per_face"], p["accuracy"], yerr=[[p["accuracy"] - lo], [hi - p["accuracy"]]],
                    fmt="o", capsize=3, color="tab:red" if p["name"].startswith("cascade") else "tab:blue")
        ax.annotate(p["name"].replace("cascade ", ""), (p["ms_per_face"], p["accuracy"]), textcoords="offset points",
                    xytext=(5, -10), fontsize=8)
    casc = sorted((p for p in pts if p["name"].startswith("cascade")), key=lambda p: p["fraction"])
    xs = [pts[0]["ms_per_face"], *[p["ms_per_face"] for p in casc], pts[1]["ms_per_face"]]
    ys = [pts[0]["accuracy"], *[p["accuracy"] for p in casc], pts[1]["accuracy"]]
    ax.plot(xs, ys, "-", color="tab:red", alpha=0.4)
    ax.set_xlabel("mean ms per face (measured)")
    ax.set_ylabel("accuracy (95% Wilson interval)")
    names = [f"{res[k].get('dir', '')}/{res[k]['file']} ({res[k]['format']})".lstrip("/") for k in ("first", "second")]
    ax.set_title(f"{names[0]} -> {names[1]}: {res['images']} faces", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
