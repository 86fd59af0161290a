"""Two-stage classification: a fast first model decides the faces it is sure about, a stronger second model
the uncertain ones (``--escalate MODEL --escalate-fraction F``). numpy + the runtime only: no TensorFlow.

    from edge_dfd.runtime import load_model
    from edge_dfd.runtime.cascade import load_cascade
    cas = load_cascade(load_model("default", format="tflite-int8"), "ten-pass", fraction=0.2)
    d = cas.predict_detail(batch)        # batch: (N, cas.input_size, cas.input_size, 3) uint8 RGB
    d.p, d.stage, d.p1, d.p2, d.errors   # P(fake), 1 or 2 per face, each model's P(fake), stage-2 failures

Uncertainty: the first model's margin ``z1 = logit(p1) - logit(t1)`` (t1 its threshold). A face goes to the
second model when ``|z1| < band(F)``, where ``band(F)`` is the F-quantile of |z1| over the VALID images of a
calibration table, so that a share F of faces like those is escalated. Tables are never guessed at run time:
the bundled pair's ships in ``edge_dfd/assets/cascade_default_ten_pass.json`` (one per bundled format of the
default), a user pair's is computed once from ``--calib-data DIR`` (its valid split, ``edge_dfd.runtime.calibrate``) and
cached in ``cache_dir()`` under both files' sha256.

Combination (the table's ``rule``, chosen on valid): ``replace`` (the second model's margin ``z2``) or
``average`` (``(z1 + z2) / 2``); either is mapped back onto the first model's scale, ``p = sigmoid(z +
logit(t1))``, so the cascade's threshold is the first model's and a stage-1 face keeps its first-model P(fake).

Input: either one batch at ``input_size = max`` of the two input sizes, resized down inside for the smaller model
(``preprocess.prepare_batch``), or -- cheaper, what ``predict``/``evaluate``/``bench`` do -- each model's own
input, ``predict_detail(first_batch, second_batch)``, prepared by the caller from the decoded image (the
decode workers make both sizes off the main thread; ``input_sizes`` says which). A second model that fails on a face leaves that face
with its first-stage verdict (stage 1) and the reason in ``errors``; the batch goes on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import ModelError, UsageError

RULES = ("replace", "average")
TABLE_VERSION = 1
GRID = [round(i / 100, 2) for i in range(101)]  # escalated fractions of the stored band quantiles
CURVE_FRACTIONS = (0.1, 0.2, 0.3, 0.5)
BUNDLED_TABLES = Path(__file__).resolve().parents[1] / "assets" / "cascade_default_ten_pass.json"
EPS = 1e-6


def margin(p, threshold: float) -> np.ndarray:
    """logit(p) - logit(threshold), p clipped to [EPS, 1 - EPS]: > 0 fake, < 0 real, |.| = certainty."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    t = min(max(float(threshold), EPS), 1 - EPS)
    return np.log(p / (1 - p)) - np.log(t / (1 - t))


def from_margin(z, threshold: float) -> np.ndarray:
    """The inverse of ``margin``: P(fake) on the scale whose threshold is ``threshold``."""
    t = min(max(float(threshold), EPS), 1 - EPS)
    return 1.0 / (1.0 + np.exp(-(np.asarray(z, np.float64) + np.log(t / (1 - t)))))


def combine(z1, z2, rule: str) -> np.ndarray:
    """The escalated faces' margin from both models' margins."""
    if rule == "replace":
        return np.asarray(z2, np.float64)
    if rule == "average":
        return (np.asarray(z1, np.float64) + np.asarray(z2, np.float64)) / 2.0
    raise ModelError(f"combine rule {rule!r}: expected one of {', '.join(RULES)}")


def check_fraction(fraction) -> float:
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise UsageError(f"--escalate-fraction {fraction}: expected a share of faces between 0 and 1")
    return f


def band_for(table: dict, fraction: float) -> float:
    """|z1| below which a face is escalated so that a share ``fraction`` of the calibration faces is."""
    f = check_fraction(fraction)
    if f <= 0.0:
        return 0.0
    if f >= 1.0:
        return float("inf")
    return float(np.interp(f, table["fractions"], table["band"]))


# ------------------------------------------------------------------ calibration tables


def file_id(path) -> dict:
    from edge_dfd.core.fsutil import sha256_file

    return {"file": Path(path).name, "sha256": sha256_file(path)}


def cache_dir() -> Path:
    """Where user pairs' tables are cached: ``$EDGE_DFD_CACHE/cascade``, else ``$XDG_CACHE_HOME/edge-dfd/cascade``,
    else ``~/.cache/edge-dfd/cascade``."""
    if os.environ.get("EDGE_DFD_CACHE"):
        return Path(os.environ["EDGE_DFD_CACHE"]) / "cascade"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edge-dfd" / "cascade"


def cache_path(first_sha: str, second_sha: str) -> Path:
    return cache_dir() / f"{first_sha[:16]}-{second_sha[:16]}.json"


def _read_tables(path: Path) -> list[dict]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable cascade calibration table ({exc})") from None
    tables = doc.get("tables", [doc]) if isinstance(doc, dict) else []
    return [t for t in tables if isinstance(t, dict) and t.get("version") == TABLE_VERSION]


def find_table(first_sha: str, second_sha: str, source: str | None = None) -> dict | None:
    """The stored table of this pair (the bundled ones, then the cache); with ``source``, only a cached table
    calibrated on that data."""
    places = [cache_path(first_sha, second_sha)] if source else [BUNDLED_TABLES, cache_path(first_sha, second_sha)]
    for p in places:
        for t in _read_tables(p):
            if t["first"]["sha256"] == first_sha and t["second"]["sha256"] == second_sha:
                if source is None or t.get("source") == source:
                    return t
    return None


def build_table(z1, z2, y_fake, first: dict, second: dict, source: str) -> dict:
    """A calibration table from both models' margins on labelled valid faces: |z1| quantiles on ``GRID`` and
    the combine rule with the better mean balanced accuracy over ``CURVE_FRACTIONS`` (ties: replace)."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    y = np.asarray(y_fake).astype(bool)
    if z1.size < 20 or y.all() or not y.any():
        raise ModelError(f"{source}: cascade calibration needs at least 20 valid images of both classes "
                         f"(have {z1.size}, {int(y.sum())} fake)")
    a = np.abs(z1)
    band = [float(v) for v in np.quantile(a, GRID)]
    valid = {}
    for rule in RULES:
        accs = {}
        for f in (0.0, *CURVE_FRACTIONS, 1.0):
            esc = a < (band_for({"fractions": GRID, "band": band}, f))
            z = np.where(esc, combine(z1, z2, rule), z1)
            accs[str(f)] = round(_balanced_accuracy(y, z >= 0), 4)
        valid[rule] = accs
    score = {r: np.mean([valid[r][str(f)] for f in CURVE_FRACTIONS]) for r in RULES}
    rule = max(RULES, key=lambda r: (score[r], r == "replace"))
    return {"version": TABLE_VERSION, "first": first, "second": second, "rule": rule, "source": source,
            "n": int(z1.size), "fractions": GRID, "band": [round(b, 6) for b in band],
            "valid_balanced_accuracy": valid,
            "note": "band[i]: |logit(p1) - logit(t1)| quantile at fractions[i]; p = sigmoid(z + logit(t1))"}


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float((np.mean(pred[y]) + np.mean(~pred[~y])) / 2.0)


def save_cached(table: dict) -> Path:
    from edge_dfd.core.fsutil import atomic_write_json

    p = cache_path(table["first"]["sha256"], table["second"]["sha256"])
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(p, table)


# ------------------------------------------------------------------ the cascade


@dataclass
class Detail:
    p: np.ndarray  # combined P(fake), on the first model's scale (threshold = first's)
    stage: np.ndarray  # 1 or 2: which stage decided
    p1: np.ndarray
    p2: np.ndarray  # NaN where the second model did not run (or failed)
    errors: dict = field(default_factory=dict)  # index -> why the second model failed on that face


class Cascade:
    """Two backends behind the backend interface (``predict``, ``meta``, ``input_size``, ``threshold``,
    ``format``, ``path``, ``describe``); ``predict_detail`` adds which stage decided. ``stats`` counts faces,
    escalations and stage-2 failures since the cascade was made."""

    runtime = "cascade"

    def __init__(self, first, second, table: dict, fraction: float):
        if table.get("rule") not in RULES:
            raise ModelError(f"cascade table rule {table.get('rule')!r}: expected one of {', '.join(RULES)}")
        self.first, self.second, self.table = first, second, table
        self.fraction = check_fraction(fraction)
        self.rule = table["rule"]
        self.band = band_for(table, self.fraction)
        self.meta, self.fmt, self.path = first.meta, getattr(first, "fmt", None), first.path
        self.provider, self.threads = getattr(first, "provider", ""), getattr(first, "threads", None)
        self.meta_inferred = getattr(first, "meta_inferred", False)
        self.stats = {"images": 0, "escalated": 0, "failed": 0}

    @property
    def input_size(self) -> int:
        return max(int(self.first.input_size), int(self.second.input_size))

    @property
    def threshold(self) -> float:
        return float(self.first.threshold)

    @property
    def format(self) -> str:
        return self.first.format

    def uncertain(self, p1) -> np.ndarray:
        """Which first-stage P(fake) values fall inside the band (are escalated)."""
        return np.abs(margin(p1, self.first.threshold)) < self.band

    def predict(self, batch) -> np.ndarray:
        return self.predict_detail(batch).p

    @property
    def input_sizes(self) -> tuple[int, int]:
        """(first model's, second model's) input size: what ``predict_detail(first_batch, second_batch)`` takes."""
        return int(self.first.input_size), int(self.second.input_size)

    def _check(self, x, s: int, what: str) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != (s, s, 3):
            raise ModelError(f"cascade {self.first.path.name} -> {self.second.path.name}: {what} has shape "
                             f"{x.shape}, expected (N, {s}, {s}, 3) RGB")
        return x

    def predict_detail(self, batch, second_batch=None) -> Detail:
        """``batch`` at ``input_size`` (resized inside for the smaller model), or, with ``second_batch``, each
        model's own input: ``batch`` at the first model's size and ``second_batch`` (same faces, same order) at
        the second's, so that nothing is resized here and only the escalated rows of ``second_batch`` are used."""
        from edge_dfd.images.preprocess import prepare_batch

        def sized(imgs, size):
            return imgs if imgs.shape[1] == size else prepare_batch(list(imgs), size)

        if second_batch is None:
            x = x2 = self._check(batch, self.input_size, "input batch")
            x1 = sized(x, self.first.input_size)
        else:
            x1 = self._check(batch, self.first.input_size, "first model's batch")
            x2 = self._check(second_batch, self.second.input_size, "second model's batch")
            if len(x2) != len(x1):
                raise ModelError(f"cascade: {len(x1)} faces for the first model but {len(x2)} for the second")
        p1 = np.asarray(self.first.predict(x1), np.float64)
        p, stage, p2 = p1.copy(), np.ones(len(p1), np.int8), np.full(len(p1), np.nan)
        esc = np.flatnonzero(self.uncertain(p1))
        errors: dict[int, str] = {}
        if esc.size:
            got = self._second(sized(x2[esc], self.second.input_size), esc, errors)
            ok = ~np.isnan(got)
            p2[esc] = got
            idx = esc[ok]
            z = combine(margin(p1[idx], self.first.threshold), margin(got[ok], self.second.threshold), self.rule)
            p[idx] = from_margin(z, self.first.threshold)
            stage[idx] = 2
        self.stats["images"] += len(p1)
        self.stats["escalated"] += int((stage == 2).sum())
        self.stats["failed"] += len(errors)
        return Detail(p.astype(np.float32), stage, p1.astype(np.float32), p2.astype(np.float32), errors)

    def _second(self, x2: np.ndarray, idx: np.ndarray, errors: dict) -> np.ndarray:
        """The second model's P(fake) for the escalated faces; NaN (and a reason) where it fails."""
        from edge_dfd.core.util import first_line

        try:
            return np.asarray(self.second.predict(x2), np.float64).reshape(-1)
        except Exception:  # noqa: BLE001 - one bad face must not stop the batch: retry one by one
            out = np.full(len(idx), np.nan)
            for k, i in enumerate(idx):
                try:
                    out[k] = float(np.asarray(self.second.predict(x2[k : k + 1])).reshape(-1)[0])
                except Exception as exc:  # noqa: BLE001 - reported per face, the face keeps its stage-1 verdict
                    errors[int(i)] = f"{self.second.path.name}: {type(exc).__name__}: {first_line(exc)}"
            return out

    def verdicts(self, p_fake) -> list[str]:
        from edge_dfd.core.verdicts import verdict

        return [verdict(v, self.threshold) for v in np.asarray(p_fake).ravel()]

    def describe(self) -> dict:
        d = self.first.describe()
        d["input_size"] = self.input_size
        d["cascade"] = self.info()
        return d

    def info(self) -> dict:
        """What the results say about the cascade: the second model, F, band, rule and the counts so far."""
        n = self.stats["images"]
        return {"second": str(self.second.path), "second_format": self.second.format,
                "second_threshold": self.second.threshold, "fraction": self.fraction,
                "band": None if np.isinf(self.band) else round(self.band, 6), "rule": self.rule,
                "calibration": {"source": self.table.get("source"), "n": self.table.get("n")},
                **self.stats, "escalated_share": round(self.stats["escalated"] / n, 4) if n else None}

    def __repr__(self) -> str:
        return f"<Cascade {self.first.path.name} -> {self.second.path.name} F={self.fraction} rule={self.rule}>"


def load_second(spec, threads: int | None = None):
    """Load the escalation model and run it once on a grey face: a file that is not a detector or cannot run
    in this install is a one-line ModelError before any work starts."""
    from edge_dfd.core.errors import EdgeDFDError
    from edge_dfd.core.util import first_line
    from edge_dfd.runtime import load_model

    try:
        second = load_model(spec, threads=threads)
    except EdgeDFDError as exc:
        raise type(exc)(f"--escalate: {exc}") from None
    try:
        s = second.input_size
        p = second.predict(np.full((1, s, s, 3), 128, np.uint8))
        if not np.isfinite(p).all():
            raise ValueError(f"P(fake) = {p.tolist()} on a grey face")
    except Exception as exc:  # noqa: BLE001 - a model that loads but cannot run here: one line, before any work
        raise ModelError(f"--escalate {spec}: {second.path.name} cannot run in this install "
                         f"({type(exc).__name__}: {first_line(exc)})") from None
    return second


def load_cascade(first, escalate, fraction: float, calib_data=None, threads: int | None = None, log=None) -> Cascade:
    """``first`` (a loaded backend) + the escalation model ``escalate`` (a spec such as "ten-pass" or a file)
    -> a Cascade sending a share ``fraction`` of faces on. The calibration table is the bundled / cached one
    of the pair; with ``calib_data`` (dataset folder(s) with a valid split) one calibrated on that data
    (computed once by ``edge_dfd.runtime.calibrate.calibrate`` and cached). ModelError when the pair has none."""
    fraction = check_fraction(fraction)
    second = load_second(escalate, threads)
    a, b = file_id(first.path), file_id(second.path)
    source = None
    if calib_data:
        from edge_dfd.runtime.calibrate import calib_source

        source = calib_source(calib_data)
    table = find_table(a["sha256"], b["sha256"], source)
    if table is None and calib_data:
        from edge_dfd.runtime.calibrate import calibrate

        table = calibrate(first, second, calib_data, log=log)
        save_cached(table)
    if table is None:
        raise ModelError(f"--escalate {escalate}: no calibration table for {a['file']} -> {b['file']} "
                         f"(sha256 {a['sha256'][:12]} -> {b['sha256'][:12]}); pass --calib-data DIR (a dataset with a "
                         f"valid split) once to compute it (cached in {cache_dir()})")
    return Cascade(first, second, table, fraction)
