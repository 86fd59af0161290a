"""The one owner of the verdict rule, verdict agreement, threshold selection and a proportion's interval.

A probability ``p`` = P(fake) is the verdict "fake" exactly when ``p >= threshold`` (``is_fake`` / ``verdict``);
every command (predict, bench, convert, live, scan) calls these instead of writing the comparison out.
numpy only: no runtime, no TensorFlow.
"""

from __future__ import annotations

from math import comb, lgamma

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
MATCH_ALPHA = 0.05  # a re-matched threshold must fix significantly more verdicts than it breaks (exact sign test)


# ---------------------------------------------------------------- the rule


def is_fake(p, threshold: float) -> np.ndarray:
    """Vectorised verdict rule: boolean array, True where ``p >= threshold`` (the face is called fake)."""
    return np.asarray(p) >= threshold


def verdict(p: float, threshold: float) -> str:
    """"fake" when ``p >= threshold``, else "real" (one probability)."""
    return "fake" if p >= threshold else "real"


def agreement(p_a, p_b, threshold_a: float, threshold_b: float | None = None) -> float:
    """Fraction of identical verdicts of two scores of the same inputs, each at its own threshold
    (``threshold_b`` defaults to ``threshold_a``); 1.0 for no inputs."""
    a, b = is_fake(p_a, threshold_a), is_fake(p_b, threshold_a if threshold_b is None else threshold_b)
    return float((a == b).mean()) if a.size else 1.0


# ---------------------------------------------------------------- statistics


def proportion_ci(k, n, level: float = 0.95, method: str = "wilson") -> tuple[float, float] | None:
    """Two-sided confidence interval of a proportion ``k / n``; None when ``n`` is 0.

    ``method="wilson"`` (the default, used for every reported interval: bench, evaluate): the Wilson score
    interval - closed form, stays inside [0, 1], not degenerate at 0 or n successes, and its coverage is close
    to the nominal level for the sample sizes reported here (e.g. 1800 of 2000: 0.8861 - 0.9124).
    ``method="exact"``: Clopper-Pearson, never below the nominal coverage (wider); ``edge-dfd convert``'s int8
    gate uses it so that a file fails only when even the conservative bound is short (its numbers unchanged).
    """
    k, n = int(k), int(n)
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"successes {k} out of range 0..{n}")
    if method == "exact":
        return _clopper_pearson(k, n, level)
    if method != "wilson":
        raise ValueError(f"method {method!r}: expected 'wilson' or 'exact'")
    z = Z95 if level == 0.95 else _z(level)
    phat = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (phat + z2 / (2 * n)) / denom
    half = z * np.sqrt(phat * (1.0 - phat) / n + z2 / (4.0 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)


def _z(level: float) -> float:
    """The two-sided standard normal quantile for ``level`` (bisection on erf; numpy only)."""
    from math import erf, sqrt

    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if erf(mid / sqrt(2.0)) < level else (lo, mid)
    return (lo + hi) / 2.0


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    i = np.arange(n + 1)
    logc = np.array([lgamma(n + 1) - lgamma(j + 1) - lgamma(n - j + 1) for j in range(n + 1)])

    def cdf(x: int, p: float) -> float:  # P(X <= x), X ~ Binomial(n, p)
        if x < 0:
            return 0.0
        if p <= 0.0:
            return 1.0
        if p >= 1.0:
            return 1.0 if x >= n else 0.0
        lp = logc[: x + 1] + i[: x + 1] * np.log(p) + (n - i[: x + 1]) * np.log1p(-p)
        m = lp.max()
        return float(min(1.0, np.exp(m) * np.exp(lp - m).sum()))

    def solve(f, target: float) -> float:  # f decreasing in p on [0, 1]: the p with f(p) = target
        lo_, hi_ = 0.0, 1.0
        for _ in range(60):
            mid = (lo_ + hi_) / 2.0
            lo_, hi_ = (mid, hi_) if f(mid) > target else (lo_, mid)
        return (lo_ + hi_) / 2.0

    lower = 0.0 if k <= 0 else solve(lambda p: cdf(k - 1, p), 1.0 - a)  # P(X >= k) = a
    upper = 1.0 if k >= n else solve(lambda p: cdf(k, p), a)  # P(X <= k) = a
    return lower, upper


def sign_test_p(k: int, j: int) -> float:
    """Two-sided exact sign-test p-value of ``k`` successes against ``j`` failures (1.0 when both are 0)."""
    n = k + j
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(max(k, j), n + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


# ---------------------------------------------------------------- threshold selection


def _candidates(p: np.ndarray, keep: float) -> np.ndarray:
    """``keep`` first, then the midpoints between neighbouring distinct scores (never on an image's score)."""
    s = np.unique(p)
    return np.concatenate([[keep], (s[:-1] + s[1:]) / 2.0]) if s.size > 1 else np.array([keep])


def choose_threshold(y_fake, p_fake) -> float:
    """Decision threshold that maximises balanced accuracy on (validation) data; 0.5 if undefined.

    Ties are broken towards 0.5. The chosen value is the midpoint between neighbouring scores, so it
    does not sit exactly on a validation image's probability.
    """
    y = np.asarray(y_fake, dtype=np.int64).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.shape}) and probabilities ({p.shape}) differ in length")
    if len(np.unique(y)) < 2:
        return 0.5
    best, best_t = -1.0, 0.5
    pos, neg = y == 1, y == 0
    for t in _candidates(p, 0.5):
        pred = is_fake(p, t)
        bacc = 0.5 * (pred[pos].mean() + (~pred[neg]).mean())
        if bacc > best + 1e-12 or (abs(bacc - best) <= 1e-12 and abs(t - 0.5) < abs(best_t - 0.5)):
            best, best_t = bacc, float(t)
    return best_t


def matched_threshold(p_ref, p_exp, threshold: float, alpha: float = MATCH_ALPHA) -> float:
    """The threshold for an export that best reproduces the source model's verdicts (``p_ref >= threshold``)
    on the same images: maximal agreement; ties go to the value closest to ``threshold``. ``threshold`` is kept
    unless the move is significant: of the images whose verdict it changes, the ones it fixes must outnumber the
    ones it breaks at two-sided level ``alpha`` (exact McNemar / sign test). Agreement over a few hundred images
    is a step function: without the test a gain of 2 images moved the bundled onnx-int8-arm threshold from 0.23
    to 0.43."""
    want = is_fake(p_ref, threshold)
    p = np.asarray(p_exp, np.float64)
    if p.size == 0:
        return float(threshold)
    cands = np.concatenate([[threshold], _candidates(p, threshold)[1:]])
    agree = np.array([(is_fake(p, t) == want).sum() for t in cands])
    best = cands[agree == agree.max()]
    t = float(best[np.argmin(np.abs(best - threshold))])
    now, then = is_fake(p, t) == want, is_fake(p, threshold) == want
    fixed, broken = int((now & ~then).sum()), int((then & ~now).sum())
    return t if sign_test_p(fixed, broken) < alpha else float(threshold)


# ---------------------------------------------------------------- paired differences (gate, bench)


def paired_accuracy_diff(ok_a, ok_b, level: float = 0.95) -> dict:
    """Difference of two classifiers' accuracies on the SAME images, ``acc_a - acc_b``, with Newcombe's hybrid
    score interval for paired proportions (Newcombe 1998, method 10; recommended by Fagerland, Lydersen & Laake
    2013): each accuracy's Wilson interval, combined with the correlation (phi) of the two correctness vectors.

    ``ok_a`` / ``ok_b``: booleans, True where that classifier is right. Returns ``{"diff", "low", "high", "n",
    "a_only", "b_only"}`` (``low`` / ``high`` None with no images). For a one-sided 95 % bound use
    ``level=0.90`` and read one end. With ``a`` the source model and ``b`` an export, ``high`` bounds the
    export's loss.
    """
    a = np.asarray(ok_a, bool).ravel()
    b = np.asarray(ok_b, bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length ({a.size} vs {b.size})")
    n = int(a.size)
    both, a_only = int((a & b).sum()), int((a & ~b).sum())
    b_only, neither = int((~a & b).sum()), int((~a & ~b).sum())
    out = {"n": n, "a_only": a_only, "b_only": b_only, "diff": None, "low": None, "high": None, "level": level}
    if n == 0:
        return out
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    l1, u1 = proportion_ci(both + a_only, n, level)
    l2, u2 = proportion_ci(both + b_only, n, level)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = (both * neither - a_only * b_only) / np.sqrt(float(margins)) if margins > 0 else 0.0
    d = p1 - p2
    low = d - np.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + np.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    out.update(diff=float(d), low=float(max(-1.0, low)), high=float(min(1.0, high)))
    return out


def _delong_components(y: np.ndarray, p) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components of score ``p`` (``y`` boolean, True = fake): per fake image, the share of
    real images it outscores (ties count one half), and per real image the share of fakes that outscore it."""
    s = np.asarray(p, np.float64).ravel()
    pos, neg = s[y][:, None], s[~y][None, :]
    psi = (pos > neg) + 0.5 * (pos == neg)
    return psi.mean(axis=1), psi.mean(axis=0)


def paired_auc_diff(y_fake, p_a, p_b, level: float = 0.95) -> dict:
    """ROC AUC of score ``p_a`` minus that of ``p_b`` on the same images, with DeLong's (1988) normal
    interval for correlated AUCs. Returns ``{"diff", "low", "high", "se", "auc_a", "auc_b"}``; every value
    None (with ``"reason"``) unless both classes have at least 2 images."""
    y = np.asarray(y_fake).astype(bool).ravel()
    m, n = int(y.sum()), int((~y).sum())
    out = {"diff": None, "low": None, "high": None, "se": None, "auc_a": None, "auc_b": None, "level": level}
    if m < 2 or n < 2:
        out["reason"] = f"needs at least 2 fake and 2 real images (have {m} fake, {n} real)"
        return out
    comps = [_delong_components(y, p) for p in (p_a, p_b)]
    s10 = np.cov(np.stack([comps[0][0], comps[1][0]]))
    s01 = np.cov(np.stack([comps[0][1], comps[1][1]]))
    var = max(0.0, (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n)
    auc_a, auc_b = float(comps[0][0].mean()), float(comps[1][0].mean())
    d, se = auc_a - auc_b, float(np.sqrt(var))
    z = Z95 if level == 0.95 else _z(level)
    out.update(diff=d, se=se, auc_a=auc_a, auc_b=auc_b, low=max(-1.0, d - z * se), high=min(1.0, d + z * se))
    return out


def auc_ci(y_fake, p, level: float = 0.95) -> dict:
    """ROC AUC of score ``p`` with DeLong's (1988) normal interval (its structural components, as in
    ``paired_auc_diff``), clipped to [0, 1]. Returns ``{"auc", "low", "high", "se", "level"}``; every value None
    (with ``"reason"``) unless both classes have at least 2 images."""
    y = np.asarray(y_fake).astype(bool).ravel()
    m, n = int(y.sum()), int((~y).sum())
    out = {"auc": None, "low": None, "high": None, "se": None, "level": level}
    if m < 2 or n < 2:
        out["reason"] = f"needs at least 2 fake and 2 real images (have {m} fake, {n} real)"
        return out
    v10, v01 = _delong_components(y, p)
    auc = float(v10.mean())
    se = float(np.sqrt(max(0.0, v10.var(ddof=1) / m + v01.var(ddof=1) / n)))
    z = Z95 if level == 0.95 else _z(level)
    out.update(auc=auc, se=se, low=max(0.0, auc - z * se), high=min(1.0, auc + z * se))
    return out


def balanced_accuracy_ci(y_fake, correct, level: float = 0.95) -> dict:
    """Balanced accuracy (mean of the two classes' recalls) with a MOVER interval (Zou & Donner 2008): the
    Wilson interval of each recall, combined as for a mean of two independent proportions. Returns
    ``{"value", "low", "high", "level"}`` (None values, with ``"reason"``, unless both classes are present)."""
    y = np.asarray(y_fake).astype(bool).ravel()
    ok = np.asarray(correct, bool).ravel()
    out = {"value": None, "low": None, "high": None, "level": level}
    k1, n1, k0, n0 = int(ok[y].sum()), int(y.sum()), int(ok[~y].sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        out["reason"] = f"needs both classes (have {n1} fake, {n0} real)"
        return out
    r1, r0 = k1 / n1, k0 / n0
    (l1, u1), (l0, u0) = proportion_ci(k1, n1, level), proportion_ci(k0, n0, level)
    b = (r1 + r0) / 2.0
    out.update(value=b, low=float(max(0.0, b - 0.5 * np.sqrt((r1 - l1) ** 2 + (r0 - l0) ** 2))),
               high=float(min(1.0, b + 0.5 * np.sqrt((u1 - r1) ** 2 + (u0 - r0) ** 2))))
    return out
