"""Stand-ins for the live / scan / cascade tests: a generated background and video, a stub classifier, a
fixed-box detector and readers of what ``live`` writes (no training, no TensorFlow).

The classifier stand-ins score P(fake) = sigmoid(40 * (mean(B - R) + 0.15)): synth "real" cartoon faces are warm
(B - R ~ -0.25), "fake" ones cool (B - R ~ -0.05), and the background sits exactly at the threshold
(B - R = -0.15), so crop margins cannot flip a verdict. ``tiny_onnx`` is the same rule as a hand-built ONNX file.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from benchmarks.synth import cartoon_face, tiny_onnx  # noqa: F401  (re-exported for the tests)

BG_RGB = (150, 130, 112)  # (B - R) / 255 = -0.15: exactly the tiny model's threshold
W, H = 640, 480


def background() -> np.ndarray:
    return np.full((H, W, 3), BG_RGB[::-1], np.uint8)  # BGR


def make_video(path: Path, plan, fps: float = 30.0, size: int = 160) -> list[tuple | None]:
    """Write an MJPG .avi; ``plan`` is one entry per frame: None (no face) or (fake, x, y) of a pasted face.
    Returns the plan with the pasted box (x1, y1, x2, y2) for face frames."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert vw.isOpened()
    faces = {True: cv2.cvtColor(cartoon_face(True, size, 1), cv2.COLOR_RGB2BGR),
             False: cv2.cvtColor(cartoon_face(False, size, 2), cv2.COLOR_RGB2BGR)}
    out = []
    for item in plan:
        frame = background()
        if item is None:
            out.append(None)
        else:
            fake, x, y = item
            frame[y : y + size, x : x + size] = faces[fake]
            out.append((fake, (x, y, x + size, y + size)))
        vw.write(frame)
    vw.release()
    return out


class StubBackend:
    """Stands in for a runtime backend: P(fake) = mean blue-minus-red as above, counts predict calls."""

    input_size = 32

    class meta:
        threshold = 0.5

    def __init__(self):
        self.calls, self.batch_sizes = 0, []

    def predict(self, batch):
        self.calls += 1
        self.batch_sizes.append(len(batch))
        d = batch[..., 2].mean(axis=(1, 2)) / 255 - batch[..., 0].mean(axis=(1, 2)) / 255
        return 1 / (1 + np.exp(-40 * (d + 0.15)))


class Boxes:
    """A detector that returns fixed boxes (no keypoints: box crops)."""

    name = "fixed"

    def __init__(self, n: int):
        self.boxes = np.array([[20 + 150 * i, 100, 140 + 150 * i, 220] for i in range(n)], np.float32)

    def detect(self, frame):
        return self.boxes.copy(), np.ones(len(self.boxes), np.float32)


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n
