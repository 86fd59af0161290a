"""Face tracks across frames by box overlap (IoU), with per-track smoothing of P(fake).

    tracker = Tracker(smooth=8)
    ids = tracker.update(boxes)            # on frames where the detector ran
    boxes, ids = tracker.current()         # carried boxes on frames in between
    smoothed = tracker.add_scores(ids, p_fake)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge_dfd.images.faces import iou_matrix


@dataclass
class Track:
    id: int
    box: np.ndarray
    scores: deque = field(default_factory=deque)
    missed: int = 0  # detection rounds in a row without a matching box

    @property
    def smoothed(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")


class Tracker:
    """Greedy IoU matching of new boxes to live tracks.

    A box matches the unmatched track it overlaps most if IoU >= ``iou`` and the change passes a motion gate: the
    box side changed by at most ``max_scale`` x and its centre moved by at most ``max_shift`` x the side since the
    track's last detection (a real face does not do more between two detections; a cut to another face in the
    same place usually does - without the gate the new face would inherit the old one's smoothed verdict).
    Unmatched boxes start new tracks (ids count up from 1); a track unmatched for more than ``max_missed``
    detection rounds is dropped. ``smooth`` is how many recent scores each track averages.
    """

    def __init__(self, iou: float = 0.3, max_missed: int = 2, smooth: int = 8, max_scale: float = 1.25,
                 max_shift: float = 0.4):
        if smooth < 1:
            raise ValueError("smooth must be >= 1")
        self.iou, self.max_missed, self.smooth = iou, max_missed, smooth
        self.max_scale, self.max_shift = max_scale, max_shift
        self.tracks: dict[int, Track] = {}
        self._next = 1

    def update(self, boxes) -> list[int]:
        """Match this frame's detected ``boxes`` (N, 4); returns one track id per box, in box order."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        live = list(self.tracks.values())
        ids: list[int | None] = [None] * len(boxes)
        if live and len(boxes):
            sim = iou_matrix(boxes, np.stack([t.box for t in live]))
            for flat in np.argsort(-sim, axis=None, kind="stable"):
                i, j = divmod(int(flat), len(live))
                if sim[i, j] < self.iou:
                    break
                if ids[i] is None and live[j].missed >= 0 and self._plausible(live[j].box, boxes[i]):
                    ids[i] = live[j].id
                    live[j].box, live[j].missed = boxes[i].copy(), -1  # -1 marks "matched this round"
        for t in live:
            t.missed = 0 if t.missed < 0 else t.missed + 1
            if t.missed > self.max_missed:
                del self.tracks[t.id]
        for i, box in enumerate(boxes):
            if ids[i] is None:
                t = Track(self._next, box.copy(), deque(maxlen=self.smooth))
                self.tracks[t.id] = t
                ids[i] = t.id
                self._next += 1
        return [int(i) for i in ids]

    def _plausible(self, old, new) -> bool:
        so, sn = max(old[2] - old[0], old[3] - old[1], 1e-6), max(new[2] - new[0], new[3] - new[1], 1e-6)
        if max(so, sn) / min(so, sn) > self.max_scale:
            return False
        shift = np.hypot((new[0] + new[2] - old[0] - old[2]) / 2, (new[1] + new[3] - old[1] - old[3]) / 2)
        return shift <= self.max_shift * max(so, sn)

    def current(self) -> tuple[np.ndarray, list[int]]:
        """Boxes and ids of the tracks seen at the last detection (carried on frames without detection)."""
        seen = [t for t in self.tracks.values() if t.missed == 0]
        boxes = np.stack([t.box for t in seen]) if seen else np.zeros((0, 4), np.float32)
        return boxes, [t.id for t in seen]

    def add_scores(self, ids, scores) -> list[float]:
        """Append one P(fake) per track id; returns each track's mean over its last ``smooth`` scores."""
        out = []
        for tid, s in zip(ids, np.asarray(scores, np.float32).ravel()):
            t = self.tracks[tid]
            t.scores.append(float(s))
            out.append(t.smoothed)
        return out
