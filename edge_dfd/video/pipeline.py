"""Per-frame work of ``edge-dfd live``: detect -> track -> crop, and the face classifier's schedule.

Detection, tracking and cropping run on every frame the caller passes in; classification runs on a schedule
(``classify_hz``): tracks never classified first, then the one that waited longest, each at most
``classify_hz`` times per second, always on the track's newest crop. With ``worker=True`` a background
thread does the classifying, so a slow model refreshes verdicts less often but never slows the frame loop;
without it the due tracks are classified inline (deterministic: the schedule then runs on the caller's
clock, e.g. a video file's own time). ``classify_hz=None`` classifies every face on every frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.core.meta import CROP_MODES, crop_spec
from edge_dfd.core.verdicts import verdict
from edge_dfd.images.crop import crop_bounds, crop_face
from edge_dfd.images.faces import FaceDetector
from edge_dfd.images.preprocess import prepare_batch
from edge_dfd.video.tracking import Tracker

ALIGN_MODES = ("auto", *CROP_MODES)
DEFAULT_ALIGN = "auto"
DEFAULT_CLASSIFY_HZ = 10.0
MAX_BATCH = 8  # faces per classifier call
CUT_CORRELATION = 0.7  # same face between frames: > 0.8 (pan, zoom, rotation, brightness drift); a cut: lower


@dataclass
class FaceResult:
    track: int
    box: tuple[int, int, int, int]  # the face box (detected or carried), frame pixels x1, y1, x2, y2
    crop: tuple[int, int, int, int]  # bounding box of the crop that is classified (aligned crops are rotated)
    det_score: float
    score: float  # newest P(fake) of the track (NaN until its first classification)
    smoothed: float  # mean P(fake) over the track's last N classifications (NaN while pending)
    verdict: str  # "fake" | "real" (smoothed >= threshold) | "pending" (not classified yet)
    detected: bool  # True when the detector ran on this frame, False when the box was carried
    age: float | None = None  # seconds between the crop behind `score` and this frame (None while pending)
    fresh: bool = False  # a new classification of this track arrived since the previous frame
    stage: int = 1  # 2 once the --escalate model gave this track its second opinion (``smoothed`` combines both)
    escalation: dict | None = None  # on the frame a second opinion arrives: before / after verdict, both scores

    def escalation_fields(self) -> dict:
        """The event log's --escalate fields: "stage" once a track was escalated, "escalation" when it happened."""
        return {**({"stage": self.stage} if self.stage != 1 else {}),
                **({"escalation": self.escalation} if self.escalation else {})}


class Scheduler:
    """Which tracks to classify now: never-classified tracks first (oldest id first), then the ones whose
    last classification is at least ``1 / hz`` old, longest-waiting first. ``hz=None``: every track."""

    def __init__(self, hz: float | None):
        if hz is not None and not hz > 0:
            raise EdgeDFDError(f"classify_hz={hz!r}: expected a rate > 0 (or None for every frame)")
        self.period = 0.0 if hz is None else 1.0 / hz
        self.last: dict[int, float] = {}  # track -> time of its last classification (crop time)

    def due(self, ids, now: float, limit: int | None = None) -> list[int]:
        new = sorted(i for i in ids if i not in self.last)
        old = sorted((i for i in ids if i in self.last and now - self.last[i] >= self.period - 1e-9),
                     key=lambda i: self.last[i])
        out = new + old
        return out if limit is None else out[:limit]

    def next_due(self, ids, now: float) -> float:
        """Seconds until some track is due (0 if one is now; inf without tracks)."""
        if not ids:
            return float("inf")
        if any(i not in self.last for i in ids):
            return 0.0
        return max(0.0, min(self.last[i] for i in ids) + self.period - now)

    def done(self, tid: int, t: float) -> None:
        self.last[tid] = t

    def forget(self, keep) -> None:
        for tid in set(self.last) - set(keep):
            del self.last[tid]


def resolve_align(align: str, backend) -> str:
    """``auto`` -> the crop mode the model's metadata states (``edge_dfd.core.meta.crop_spec``: ``crop_mode``,
    written at training time; files without it fall back on their arch there, in one place); ``aligned`` /
    ``box`` -> itself."""
    return crop_spec(getattr(backend, "meta", None)).mode if align == "auto" else align


class LivePipeline:
    """Per-frame work: detect (every ``detect_every`` calls) -> track -> crop -> classify on a schedule.

    ``backend`` is anything with ``input_size``, ``predict(uint8 batch) -> P(fake)`` and ``meta.threshold``
    (``edge_dfd.runtime.load_model``); frames are OpenCV BGR. ``align``: "auto" (what the model's metadata says,
    ``resolve_align``), "aligned" (the detector's eye / nose / mouth keypoints onto the training images' framing;
    box crop for faces without keypoints) or "box" (square box + ``margin``); ``margin`` None: the model's
    metadata's. Every crop is ``edge_dfd.images.crop.crop_face``. ``last_ms`` holds this call's stage
    times; ``worker_ms()`` drains the classifier thread's. Call ``close()`` when done with a worker.
    ``escalation``: an ``edge_dfd.video.escalation.Escalation`` (``--escalate``: per-track second opinions, in
    their own thread with a worker, inline without); with ``align="auto"`` and no ``margin`` its model gets the
    crops its own metadata asks for (cut beside the first model's when they differ).
    """

    def __init__(self, backend, detector: FaceDetector, detect_every: int = 1, threshold: float | None = None,
                 smooth: int = 8, margin: float | None = None, align: str = DEFAULT_ALIGN,
                 classify_hz: float | None = None, worker: bool = False, escalation=None):
        if detect_every < 1 or smooth < 1:
            raise EdgeDFDError(f"detect_every={detect_every}, smooth={smooth}: expected integers >= 1")
        if align not in ALIGN_MODES:
            raise EdgeDFDError(f"align={align!r}: expected one of {', '.join(ALIGN_MODES)}")
        self.backend, self.detector = backend, detector
        self.detect_every, self.align = detect_every, resolve_align(align, backend)
        self.margin = crop_spec(getattr(backend, "meta", None)).margin if margin is None else float(margin)
        self._esc_crop = None  # (mode, margin) of the escalation model's own crops, when they differ
        if escalation is not None:
            second = crop_spec(getattr(escalation.second, "meta", None))
            mine = (second.mode if align == "auto" else self.align, second.margin if margin is None else self.margin)
            self._esc_crop = None if mine == (self.align, self.margin) else mine
        self.threshold = float(backend.meta.threshold if threshold is None else threshold)
        self.tracker = Tracker(smooth=smooth)
        self.sched = Scheduler(classify_hz)
        self.frames = self.classified = 0
        self.last_ms: dict[str, float] = {}
        self._landmarks: dict[int, np.ndarray | None] = {}
        self._latest: dict[int, tuple] = {}  # track -> (newest crop, its time, the escalation's crop or None)
        self._result: dict[int, tuple[float, float]] = {}  # track -> (newest P(fake), time of its crop)
        self._fresh: set[int] = set()
        self._thumbs: dict[int, np.ndarray] = {}
        self.cuts = 0
        self._lock = threading.Condition()
        self._worker_ms: list[tuple[str, float]] = []
        self._worker = _Worker(self) if worker else None
        self.escalation, self._esc_worker = escalation, None
        if escalation is not None and worker:
            from edge_dfd.video.escalation import EscalationWorker

            self._esc_worker = EscalationWorker(self)
            self._esc_worker.start()
        if self._worker is not None:
            self._worker.start()

    # ------------------------------------------------------------------ frame loop side

    def process(self, frame: np.ndarray, t: float | None = None) -> list[FaceResult]:
        """Detect, track and crop this frame's faces; classify the due ones (inline without a worker).
        ``t``: the frame's time in seconds on the schedule's clock (default: now; ignored with a worker,
        which always runs on the wall clock)."""
        if self._worker is not None:
            self._worker.check()
        t0 = time.perf_counter()
        now = time.monotonic() if self._worker is not None or t is None else float(t)
        detected = self.frames % self.detect_every == 0
        self.frames += 1
        with self._lock:
            if detected:
                boxes, det_scores, marks = _detect(self.detector, frame)
                ids = self.tracker.update(boxes)
                for i, tid in enumerate(ids):
                    self._landmarks[tid] = None if marks is None else marks[i]
            else:
                boxes, ids = self.tracker.current()
                det_scores = np.full(len(ids), np.nan, np.float32)
            for gone in set(self._landmarks) - set(self.tracker.tracks):
                for d in (self._landmarks, self._latest, self._result, self._thumbs):
                    d.pop(gone, None)
            self.sched.forget(self.tracker.tracks)
            if self.escalation is not None:
                self.escalation.forget(self.tracker.tracks)
        t1 = time.perf_counter()
        marks = [self._landmarks.get(i) for i in ids]
        crops = self.crops(frame, boxes, marks)
        second = self.crops(frame, boxes, marks, *self._esc_crop) if self._esc_crop else [(None,)] * len(crops)
        with self._lock:
            for tid, (crop, _) in zip(ids, crops):
                self._check_cut(tid, crop)
            self._latest = {tid: (c[0], now, c2[0]) for tid, c, c2 in zip(ids, crops, second)}
            self._lock.notify_all()
        t2 = time.perf_counter()
        self.last_ms = {"detect": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3}
        if self._worker is None:
            due = self.sched.due(ids, now)
            if due:
                self._classify(due, {tid: self._latest[tid] for tid in due})
        if self.escalation is not None:
            self._escalate(now)
        return self._results(ids, boxes, crops, det_scores, detected, now)

    def _escalate(self, now: float) -> None:
        """Pick an uncertain track for the second model (rate-limited); run it in the escalation thread, or
        inline without a classifier worker."""
        with self._lock:
            job = self.escalation.pick(self.tracker.tracks, self.threshold, now)
        if job is None:
            return
        if self._esc_worker is not None:
            self._esc_worker.submit(job)
        else:
            self.run_escalation(*job)

    def run_escalation(self, tid: int, crops, z1: float) -> None:
        z2, record = self.escalation.run(tid, crops, z1, self.threshold)
        with self._lock:
            self.escalation.finish(tid, z2, record, tid in self.tracker.tracks)

    def _check_cut(self, tid: int, crop: np.ndarray) -> None:
        """Another face in the same place (a cut): when the crop's coarse appearance no longer matches the
        track's previous crop, the track's scores are dropped and it is classified again as a new one."""
        import cv2

        g = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (16, 16), interpolation=cv2.INTER_AREA)
        g = g.astype(np.float32).ravel()
        if g.std() < 2.0:  # a flat crop carries no appearance to compare
            self._thumbs.pop(tid, None)
            return
        g = (g - g.mean()) / g.std()
        prev = self._thumbs.get(tid)
        self._thumbs[tid] = g
        if prev is not None and float(np.mean(g * prev)) < CUT_CORRELATION and tid in self.tracker.tracks:
            self.tracker.tracks[tid].scores.clear()
            self._result.pop(tid, None)
            self.sched.last.pop(tid, None)
            if self.escalation is not None:
                self.escalation.reset(tid)
            self.cuts += 1

    def crops(self, frame: np.ndarray, boxes, landmarks, mode: str | None = None,
              margin: float | None = None) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
        """(RGB crop, its bounding box in the frame) per face, framed by ``self.align`` / ``self.margin`` (or the
        ``mode`` / ``margin`` given)."""
        mode, margin = mode or self.align, self.margin if margin is None else margin
        out = []
        for box, marks in zip(np.asarray(boxes, np.float32).reshape(-1, 4), landmarks):
            crop, quad = crop_face(frame, box, marks, mode, margin)
            out.append((crop, crop_bounds(quad)))
        return out

    def _results(self, ids, boxes, crops, det_scores, detected, now) -> list[FaceResult]:
        out = []
        with self._lock:
            fresh, self._fresh = self._fresh, set()
            for tid, b, (_, sq), ds in zip(ids, boxes, crops, det_scores):
                track = self.tracker.tracks.get(tid)
                p, t_crop = self._result.get(tid, (float("nan"), None))
                sm = track.smoothed if track is not None else float("nan")
                stage, news = 1, None
                if self.escalation is not None:
                    sm, stage = self.escalation.adjust(tid, sm, self.threshold)
                    news = self.escalation.news.pop(tid, None)
                out.append(FaceResult(tid, tuple(int(round(v)) for v in b), sq, float(ds), float(p), float(sm),
                                      "pending" if np.isnan(sm) else verdict(sm, self.threshold), detected, None if t_crop is None else max(0.0, now - t_crop),
                                      tid in fresh, stage, news))
        return out

    # ------------------------------------------------------------------ classifier side

    def _classify(self, due: list[int], crops: dict[int, tuple[np.ndarray, float]]) -> None:
        for start in range(0, len(due), MAX_BATCH):
            part = due[start:start + MAX_BATCH]
            t0 = time.perf_counter()
            batch = prepare_batch([crops[i][0] for i in part], self.backend.input_size)
            t1 = time.perf_counter()
            p = np.asarray(self.backend.predict(batch), np.float32).ravel()
            t2 = time.perf_counter()
            with self._lock:
                for tid, pi in zip(part, p):
                    self.sched.done(tid, crops[tid][1])
                    if tid in self.tracker.tracks:  # the track may have ended meanwhile
                        self.tracker.add_scores([tid], [pi])
                        if self.escalation is not None:
                            self.escalation.observe(tid, crops[tid][0] if crops[tid][2] is None else crops[tid][2])
                        self._result[tid] = (float(pi), crops[tid][1])
                        self._fresh.add(tid)
                self.classified += len(part)
                if self._worker is None:
                    self.last_ms["preprocess"] = self.last_ms.get("preprocess", 0.0) + (t1 - t0) * 1e3
                    self.last_ms["infer"] = self.last_ms.get("infer", 0.0) + (t2 - t1) * 1e3
                else:
                    self._worker_ms += [("resize", (t1 - t0) * 1e3), ("infer", (t2 - t1) * 1e3)]

    def worker_ms(self) -> list[tuple[str, float]]:
        """The classifier thread's (stage, ms) samples since the last call."""
        with self._lock:
            out, self._worker_ms = self._worker_ms, []
        return out

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        if self._esc_worker is not None:
            self._esc_worker.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Worker(threading.Thread):
    """Classifies due tracks' newest crops in the background (``LivePipeline(worker=True)``)."""

    def __init__(self, pipe: LivePipeline):
        super().__init__(name="edge-dfd-classifier", daemon=True)
        self.pipe, self.error, self._halt = pipe, None, False

    def run(self) -> None:
        pipe = self.pipe
        try:
            while True:
                with pipe._lock:
                    while not self._halt:
                        now = time.monotonic()
                        due = pipe.sched.due(list(pipe._latest), now, MAX_BATCH)
                        if due:
                            crops = {tid: pipe._latest[tid] for tid in due}
                            break
                        pipe._lock.wait(min(0.5, pipe.sched.next_due(list(pipe._latest), now)) or 0.005)
                    if self._halt:
                        return
                pipe._classify(due, crops)
        except Exception as exc:  # surfaced by the frame loop's next process() call
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def stop(self) -> None:
        with self.pipe._lock:
            self._halt = True
            self.pipe._lock.notify_all()
        self.join(timeout=5)


def _detect(detector, frame):
    """boxes, scores, landmarks (N, 4, 2) or None: the detector's keypoints when it has them."""
    fn = getattr(detector, "detect_landmarks", None)
    if fn is not None:
        return fn(frame)
    boxes, scores = detector.detect(frame)
    return boxes, scores, None


def draw(img: np.ndarray, faces: list[FaceResult], fps: float | None = None, stage_ms: dict | None = None):
    """Boxes coloured by verdict (red fake, green real, grey pending) with track id, smoothed P(fake) and the
    verdict's age; FPS and the last frame's per-stage ms in the corners. Draws on ``img`` and returns it."""
    import cv2

    font, aa = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
    colours = {"fake": (0, 0, 255), "real": (0, 200, 0), "pending": (160, 160, 160)}
    for f in faces:
        colour = colours.get(f.verdict, (160, 160, 160))
        x1, y1, x2, y2 = f.box
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        label = f"#{f.track} pending" if f.verdict == "pending" else f"#{f.track} {f.verdict} {f.smoothed:.2f}"
        if f.age is not None and f.age >= 1.0:
            label += f" ({f.age:.0f}s)"
        if f.stage == 2:  # --escalate: the second model's opinion is in the verdict
            label += " [2]"
        cv2.putText(img, label, (x1 + 2, max(14, y1 - 6)), font, 0.5, colour, 1, aa)
    if fps:
        cv2.putText(img, f"{fps:.1f} FPS", (8, 22), font, 0.6, (255, 255, 255), 2, aa)
    if stage_ms:
        text = "  ".join(f"{k} {v:.1f}" for k, v in stage_ms.items()) + " ms"
        cv2.putText(img, text, (8, img.shape[0] - 10), font, 0.45, (255, 255, 255), 1, aa)
    return img
