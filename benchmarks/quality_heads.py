"""Stage 2 of ``python -m benchmarks.quality`` (``heads``): logistic heads on the cached features - the approaches
table, C and set balancing chosen on the valid splits, test scored once per approach."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import SETS, valid_objective
from benchmarks.quality_features import ALL_CROPS, CACHE, SEED, SPLITS, feat_path, labels, log
from edge_dfd.modelling.backbones import TAP_CHANNELS, TAPS

C_GRID = (0.003, 0.01, 0.03, 0.1)


def load_feats(arch: str) -> dict:
    """{(set, split): (N, n_crops, D) float32} from the cache (SystemExit naming the missing stage)."""
    out = {}
    for s in SETS:
        for split in SPLITS:
            p = feat_path(arch, s, split)
            if not p.is_file():
                raise SystemExit(f"{p} missing: run `python -m benchmarks.quality features` first")
            out[(s, split)] = np.load(p, mmap_mode="r")
    return out


def tap_slice(arch: str, taps) -> np.ndarray:
    """Column indices of ``taps`` inside the concatenated pooled-tap feature vector."""
    edges = np.cumsum((0,) + TAP_CHANNELS[arch])
    idx = [np.arange(edges[TAPS[arch].index(t)], edges[TAPS[arch].index(t) + 1]) for t in taps]
    return np.concatenate(idx)


def select(feats: dict, arch_taps: dict, crops) -> dict:
    """{(set, split): (N, len(crops), D')} restricted to crops and taps, archs concatenated on D."""
    ci = [ALL_CROPS.index(c) for c in crops]
    out = {}
    for key in next(iter(feats.values())):
        parts = [np.asarray(feats[a][key])[:, ci][:, :, tap_slice(a, t)] for a, t in arch_taps.items()]
        out[key] = np.concatenate(parts, axis=2)
    return out


def fit_head(X: dict, y: dict, C: float, balance_sets: bool, per_crop: bool = True):
    """Standardised logistic regression on train crops (both sets), folded to (kernel, bias) on raw features."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for s in SETS:
        f = X[(s, "train")]
        n, k, d = f.shape
        if per_crop:
            xs.append(f.reshape(n * k, d))
            ys.append(np.repeat(y[(s, "train")], k))
        else:
            xs.append(f.mean(axis=1))
            ys.append(y[(s, "train")])
        ws.append(np.full(len(ys[-1]), 1.0 / len(ys[-1]) if balance_sets else 1.0))
    Xt, yt, wt = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    wt = wt / wt.mean()
    mu, sd = Xt.mean(axis=0), Xt.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=300, random_state=SEED)
    clf.fit((Xt - mu) / sd, yt, sample_weight=wt)
    kernel = clf.coef_[0] / sd
    bias = clf.intercept_[0] - float((clf.coef_[0] * mu / sd).sum())
    return kernel.astype(np.float64), float(bias)


def predict_head(f: np.ndarray, kernel, bias) -> np.ndarray:
    """Mean logit over crops (= the in-graph Average of a shared Dense) -> P(fake)."""
    z = (np.asarray(f, np.float64) @ kernel + bias).mean(axis=1)
    return 1.0 / (1.0 + np.exp(-z))


def score(y, p, threshold) -> dict:
    from edge_dfd.core.metrics import binary_report

    r = binary_report(y, p, threshold)
    return {k: r[k] for k in ("n", "accuracy", "auc", "ap", "eer", "balanced_accuracy")}


def run_approach(name, feats, y, arch_taps, crops, per_crop=True, balance_grid=(False, True)):
    """Fit heads over the C grid (and set balancing), choose on valid, score every split once."""
    from edge_dfd.core.metrics import choose_threshold

    X = select(feats, arch_taps, crops)
    best = None
    for bal in balance_grid:
        for C in C_GRID:
            k, b = fit_head(X, y, C, bal, per_crop)
            P = {key: predict_head(X[key], k, b) for key in X}
            obj = valid_objective(y, P)
            if best is None or obj > best[0]:
                best = (obj, C, bal, k, b, P)
    obj, C, bal, k, b, P = best
    yv = np.concatenate([y[(s, "valid")] for s in SETS])
    t = choose_threshold(yv, np.concatenate([P[(s, "valid")] for s in SETS]))
    row = {"approach": name, "archs": {a: list(t_) for a, t_ in arch_taps.items()}, "crops": list(crops),
           "per_crop_training": per_crop, "C": C, "balance_sets": bal, "threshold": t, "valid_objective": obj}
    for s in SETS:
        row[f"valid_{s}"] = score(y[(s, "valid")], P[(s, "valid")], t)
        row[f"test_{s}"] = score(y[(s, "test")], P[(s, "test")], t)
    log(f"{name}: C={C} balance={bal} valid_obj={obj:.4f} "
        + " ".join(f"{s}: acc {row[f'test_{s}']['accuracy']:.3f} auc {row[f'test_{s}']['auc']:.3f}" for s in SETS))
    return row, (k, b)


def approaches(archs):
    """The approaches compared (name, {arch: taps}, crops, per_crop)."""
    quads = ("q_tl", "q_tr", "q_bl", "q_br")
    out = []
    for a in archs:
        out += [
            (f"{a} whole face, head features", {a: ("head_relu",)}, ("whole",), True),
            (f"{a} whole+4 quadrants, head features", {a: ("head_relu",)}, ("whole", *quads), True),
            (f"{a} whole+4 quadrants, multi-depth taps", {a: TAPS[a]}, ("whole", *quads), True),
            (f"{a} 6 views (+centre), multi-depth taps", {a: TAPS[a]}, ALL_CROPS, True),
            (f"{a} 4 quadrants, multi-depth taps", {a: TAPS[a]}, quads, True),
        ]
    if len(archs) > 1:
        out.append(("both backbones, whole+4 quadrants, multi-depth taps", {a: TAPS[a] for a in archs},
                    ("whole", *quads), True))
    return out


def stage_heads(args) -> None:
    feats = {a: load_feats(a) for a in args.archs}
    y = {(s, split): labels(s, split) for s in SETS for split in SPLITS}
    rows, heads = [], {}
    end = time.time() + 60 * args.budget_min
    for name, arch_taps, crops, per_crop in approaches(args.archs):
        if time.time() > end:
            log(f"time budget exhausted before '{name}'")
            break
        row, head = run_approach(name, feats, y, arch_taps, crops, per_crop)
        rows.append(row)
        heads[name] = {"kernel": head[0].tolist(), "bias": head[1]}
    best = max(rows, key=lambda r: r["valid_objective"])
    log(f"selected on valid: {best['approach']}")
    from edge_dfd.core.fsutil import atomic_write_json

    atomic_write_json(CACHE / "heads.json", {"rows": rows, "heads": heads, "selected": best["approach"]})
