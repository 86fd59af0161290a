"""Per-frame work of ``edge-dfd live``: detect -> track -> crop, and the face classifier's schedule."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edge_dfd.errors import EdgeDFDError
from edge_dfd.faces import FaceDetector, square_box
from edge_dfd.preprocess import prepare_batch
from edge_dfd.tracking import Tracker

DEFAULT_MARGIN = 0.33  # 140k training images are ~1.6-1.7x the BlazeFace box (measured on the shared sample)


@dataclass
class FaceResult:
    track: int
    box: tuple[int, int, int, int]  # the face box (detected or carried), frame pixels x1, y1, x2, y2
    crop: tuple[int, int, int, int]  # the square (box + margin) that was classified
    det_score: float
    score: float  # P(fake) of this frame's crop
    smoothed: float  # mean P(fake) over the track's last N frames
    verdict: str  # "fake" | "real" (smoothed >= threshold)
    detected: bool  # True when the detector ran on this frame, False when the box was carried


class LivePipeline:
    """Per-frame work: detect (every ``detect_every`` calls) -> track -> square crops -> one predict call.

    ``backend`` is anything with ``input_size``, ``predict(uint8 batch) -> P(fake)`` and ``meta.threshold``
    (``edge_dfd.runtime.load_model``); frames are OpenCV BGR. ``last_ms`` holds this call's stage times.
    """

    def __init__(self, backend, detector: FaceDetector, detect_every: int = 1, threshold: float | None = None,
                 smooth: int = 8, margin: float = DEFAULT_MARGIN):
        if detect_every < 1 or smooth < 1:
            raise EdgeDFDError(f"detect_every={detect_every}, smooth={smooth}: expected integers >= 1")
        self.backend, self.detector = backend, detector
        self.detect_every, self.margin = detect_every, margin
        self.threshold = float(backend.meta.threshold if threshold is None else threshold)
        self.tracker = Tracker(smooth=smooth)
        self.frames = 0
        self.last_ms: dict[str, float] = {}

    def process(self, frame: np.ndarray) -> list[FaceResult]:
        import cv2

        t0 = time.perf_counter()
        detected = self.frames % self.detect_every == 0
        self.frames += 1
        if detected:
            boxes, det_scores = self.detector.detect(frame)
            ids = self.tracker.update(boxes)
        else:
            boxes, ids = self.tracker.current()
            det_scores = np.full(len(ids), np.nan, np.float32)
        t1 = time.perf_counter()
        squares = [square_box(b, frame.shape, self.margin) for b in boxes]
        crops = [cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB) for x1, y1, x2, y2 in squares]
        batch = prepare_batch(crops, self.backend.input_size)
        t2 = time.perf_counter()
        p = self.backend.predict(batch) if len(batch) else np.zeros(0, np.float32)
        t3 = time.perf_counter()
        smoothed = self.tracker.add_scores(ids, p)
        self.last_ms = {"detect": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "infer": (t3 - t2) * 1e3}
        return [
            FaceResult(tid, tuple(int(round(v)) for v in b), sq, float(ds), float(pi), sm,
                       "fake" if sm >= self.threshold else "real", detected)
            for tid, b, sq, ds, pi, sm in zip(ids, boxes, squares, det_scores, p, smoothed)
        ]



def draw(img: np.ndarray, faces: list[FaceResult], fps: float | None = None, stage_ms: dict | None = None):
    """Boxes coloured by verdict (red fake, green real) with track id and smoothed P(fake); FPS and the last
    frame's per-stage ms in the corners. Draws on ``img`` and returns it."""
    import cv2

    font, aa = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
    for f in faces:
        colour = (0, 0, 255) if f.verdict == "fake" else (0, 200, 0)
        x1, y1, x2, y2 = f.box
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        label = f"#{f.track} {f.verdict} {f.smoothed:.2f}"
        cv2.putText(img, label, (x1 + 2, max(14, y1 - 6)), font, 0.5, colour, 1, aa)
    if fps:
        cv2.putText(img, f"{fps:.1f} FPS", (8, 22), font, 0.6, (255, 255, 255), 2, aa)
    if stage_ms:
        text = "  ".join(f"{k} {v:.1f}" for k, v in stage_ms.items()) + " ms"
        cv2.putText(img, text, (8, img.shape[0] - 10), font, 0.45, (255, 255, 255), 1, aa)
    return img
