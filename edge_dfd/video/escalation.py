"""Per-track escalation for ``live`` and ``scan`` (``--escalate MODEL``): a face track whose verdict stays
uncertain gets one second opinion from the stronger model of a ``Cascade`` (``edge_dfd.runtime.cascade``).

- Which tracks: at least ``min_scores`` first-stage classifications and a running (smoothed) P(fake) inside the
  cascade's band, ``|logit(p) - logit(threshold)| < band(F)``; the most uncertain first. Once per track, renewed
  after ``recheck_s`` seconds if the track is still uncertain then (a cut, i.e. another face in the same place,
  makes it a new track at once).
- What is sent: the ``crops`` sharpest (variance of the Laplacian) of the track's recently classified crops, in
  one batch; the second opinion is the mean of their margins.
- How often: at most ``rate_hz`` escalations a second over all tracks, on the pipeline's clock, so the second
  model never takes more than ``rate_hz * crops`` face-inferences a second from the first stage. With a
  classifier worker, escalations run in their own thread (one runtime thread, nice +10 on Linux) and never
  block the frame loop or the first stage's schedule; without one (files, ``scan``, tests) they run inline,
  deterministically.
- Result: the track's P(fake) becomes ``sigmoid(combine(z1, z2) + logit(t))`` (the table's rule, z1 the track's
  running margin), its stage 2; the frame the result arrives on carries an ``escalation`` record (before /
  after verdict and both scores) for the event log.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from edge_dfd.core.verdicts import verdict
from edge_dfd.runtime.cascade import combine, from_margin, margin

DEFAULT_RATE_HZ = 1.0
DEFAULT_MIN_SCORES = 3
DEFAULT_CROPS = 3
DEFAULT_RECHECK_S = 30.0  # a track's second opinion is renewed after this long if the track is still uncertain
RECENT = 8  # classified crops remembered per track (the sharpest DEFAULT_CROPS of them are sent)
NICE = 10  # CPU priority of the escalation thread (Linux), below the frame loop's and the classifier's


def sharpness(crop: np.ndarray) -> float:
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    if max(g.shape) > 128:
        g = cv2.resize(g, (128, 128), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(g, cv2.CV_32F).var())


class Escalation:
    """Per-track second opinions; ``LivePipeline(..., escalation=Escalation(cascade))``."""

    def __init__(self, cascade, rate_hz: float = DEFAULT_RATE_HZ, min_scores: int = DEFAULT_MIN_SCORES,
                 crops: int = DEFAULT_CROPS, recheck_s: float = DEFAULT_RECHECK_S):
        self.cascade, self.second, self.rule = cascade, cascade.second, cascade.rule
        self.band, self.min_scores, self.crops = cascade.band, int(min_scores), int(crops)
        self.period = 1.0 / rate_hz if rate_hz else 0.0
        self.recheck_s = float(recheck_s)
        self.when: dict[int, float] = {}  # track -> time its last escalation started
        self.recent: dict[int, deque] = {}  # track -> deque of (sharpness, crop)
        self.z2: dict[int, float] = {}  # track -> the second model's mean margin
        self.news: dict[int, dict] = {}  # track -> escalation record not yet shown on a frame
        self.busy: set[int] = set()
        self.last_start = float("-inf")
        self.escalated = self.failed = 0
        self.errors: list[str] = []
        self.ms: list[float] = []

    # -------------------------------------------------- called by the pipeline (under its lock)

    def observe(self, tid: int, crop: np.ndarray) -> None:
        self.recent.setdefault(tid, deque(maxlen=RECENT)).append((sharpness(crop), crop))

    def forget(self, keep) -> None:
        for d in (self.recent, self.z2, self.news, self.when):
            for tid in set(d) - set(keep):
                d.pop(tid, None)

    def reset(self, tid: int) -> None:
        """A cut: the track is another face now."""
        for d in (self.recent, self.z2, self.news, self.when):
            d.pop(tid, None)

    def pick(self, tracks: dict, threshold: float, now: float) -> tuple[int, list, float] | None:
        """The track to escalate now (most uncertain eligible one), with its crops and running margin; None when
        the rate limit or no track allows one. Marks it busy and starts the rate-limit period."""
        if self.busy or now - self.last_start < self.period - 1e-9:
            return None
        best = None
        for tid, tr in tracks.items():
            if tid in self.busy or len(tr.scores) < self.min_scores or tid not in self.recent:
                continue
            if tid in self.z2 and now - self.when.get(tid, now) < self.recheck_s - 1e-9:
                continue
            z = float(margin(tr.smoothed, threshold))
            if abs(z) < self.band and (best is None or abs(z) < abs(best[1])):
                best = (tid, z)
        if best is None:
            return None
        tid = best[0]
        chosen = sorted(self.recent[tid], key=lambda sc: -sc[0])[: self.crops]
        self.busy.add(tid)
        self.last_start = self.when[tid] = now
        return tid, [c for _, c in chosen], best[1]

    def adjust(self, tid: int, smoothed: float, threshold: float) -> tuple[float, int]:
        """(P(fake), stage) of a track: its smoothed first-stage P(fake) combined with its second opinion."""
        z2 = self.z2.get(tid)
        if z2 is None or smoothed != smoothed:
            return smoothed, 1
        return float(from_margin(combine(margin(smoothed, threshold), z2, self.rule), threshold)), 2

    # -------------------------------------------------- the second model (no lock held)

    def run(self, tid: int, crops: list, z1: float, threshold: float) -> tuple[float | None, dict]:
        """The second model on the chosen crops -> (mean margin or None on failure, the escalation record)."""
        import time

        from edge_dfd.core.util import first_line
        from edge_dfd.images.preprocess import prepare_batch

        t0 = time.perf_counter()
        before = verdict(float(from_margin(z1, threshold)), threshold)
        try:
            p2 = np.asarray(self.second.predict(prepare_batch(crops, self.second.input_size)), np.float64)
            z2 = float(np.mean(margin(p2, self.second.threshold)))
        except Exception as exc:  # noqa: BLE001 - the track keeps its first-stage verdict, reported
            why = f"{self.second.path.name}: {type(exc).__name__}: {first_line(exc)}"
            self.errors.append(why)
            return None, {"track": tid, "ok": False, "error": why, "before": before, "after": before}
        self.ms.append((time.perf_counter() - t0) * 1e3)
        p = float(from_margin(combine(z1, z2, self.rule), threshold))
        return z2, {"track": tid, "ok": True, "crops": len(crops), "p_first": round(float(from_margin(z1, threshold)), 4),
                    "p_second": round(float(from_margin(z2, self.second.threshold)), 4), "z_second": round(z2, 4),
                    "p": round(p, 4),
                    "rule": self.rule, "before": before, "after": verdict(p, threshold)}

    def finish(self, tid: int, z2: float | None, record: dict, alive: bool) -> None:
        """Store a result (call under the pipeline's lock)."""
        self.busy.discard(tid)
        if z2 is None:
            self.failed += 1
            self.recent.pop(tid, None)  # no retry with the same crops: it waits for new ones
        elif alive:
            self.z2[tid] = z2
            self.escalated += 1
        if alive:
            self.news[tid] = record

    def stats(self) -> dict:
        ms = sorted(self.ms)
        d = {"escalated_tracks": self.escalated, "failed": self.failed, "second": self.second.path.name,
             "band": round(self.band, 4), "rule": self.rule, "second_ms_p50": round(ms[len(ms) // 2], 2) if ms else None}
        d["line"] = (f"{self.escalated} track(s) escalated to {d['second']} ({self.failed} failed; second model p50 "
                     f"{d['second_ms_p50']} ms per escalation)")
        return d


def from_config(backend, escalate: dict | None) -> Escalation | None:
    """``live``'s Escalation from ``LiveConfig.escalate`` = {"model": spec, "fraction": F (DEFAULT_FRACTION), "calib_data":
    [folders], "hz": escalations per second (DEFAULT_RATE_HZ; ``LiveConfig.escalate_hz``)}; None without one. The second model loads and runs
    once here, before any frame."""
    if not escalate:
        return None
    import sys

    from edge_dfd.runtime.cascade import load_cascade
    from edge_dfd.runtime.options import DEFAULT_FRACTION

    # one runtime thread: the second model then runs inside the (lower-priority) escalation thread itself
    cas = load_cascade(backend, escalate["model"], escalate.get("fraction", DEFAULT_FRACTION),
                       calib_data=list(escalate.get("calib_data") or ()) or None, threads=1,
                       log=lambda m: print(m, file=sys.stderr))
    return Escalation(cas, rate_hz=escalate.get("hz", DEFAULT_RATE_HZ))


class EscalationWorker(threading.Thread):
    """Runs escalations picked by the frame loop, one at a time, off the frame loop and the classifier."""

    def __init__(self, pipe):
        super().__init__(name="edge-dfd-escalation", daemon=True)
        self.pipe, self.jobs, self.error, self._halt = pipe, deque(), None, False
        self._wake = threading.Event()

    def submit(self, job) -> None:
        self.jobs.append(job)
        self._wake.set()

    def run(self) -> None:
        import os

        try:  # Linux: a thread has its own nice value; the frame loop and the first stage come first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except (AttributeError, OSError):
            pass
        while not self._halt:
            self._wake.wait(0.5)
            self._wake.clear()
            while self.jobs and not self._halt:
                self.pipe.run_escalation(*self.jobs.popleft())

    def stop(self) -> None:
        self._halt = True
        self._wake.set()
        self.join(timeout=5)
