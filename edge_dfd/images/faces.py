"""Face detectors: a frame in, face boxes in frame pixels out.

    from edge_dfd.images.faces import make_detector
    det = make_detector("blazeface", threads=2)
    boxes, scores = det.detect(frame_bgr)      # (N, 4) float32 x1, y1, x2, y2 pixels; (N,) float32
    boxes, scores, marks = det.detect_landmarks(frame_bgr)  # + (N, 4, 2) float32 key points, or None

Key points (``detect_landmarks``), in frame pixels, in the fixed order ``LANDMARKS``: the eye on the image's
left, the eye on the image's right, the nose tip, the mouth centre (for an upright face; they follow the face
when it is tilted). BlazeFace and YuNet give them; Haar and ``none`` give ``None``. ``edge_dfd.images.align`` turns
them into crops framed like the training images.

Frames are OpenCV's ``(H, W, 3) uint8 BGR``. Detectors (the ``--faces`` values):

* ``blazeface`` / ``blazeface-full`` - Google MediaPipe's BlazeFace short-range (128 px, faces within
  ~2 m, webcams) and full-range (192 px, faces up to ~5 m) models, bundled in ``assets/blazeface`` and run on
  the LiteRT interpreter. The SSD anchors, box decoding and weighted NMS are MediaPipe's scheme
  (``ssd_anchors_calculator``, ``tensors_to_detections_calculator``), re-implemented here in numpy.
* ``haar`` - OpenCV's frontal-face Haar cascade (no extra model file; scores are 1.0).
* ``yunet:MODEL.onnx`` - OpenCV's ``FaceDetectorYN`` with a model file the user provides.
* ``none`` - the frame's centre square is the face (pre-cropped feeds); score 1.0.

No TensorFlow is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, ModelError, require
from edge_dfd.core.meta import DEFAULT_MARGIN  # box crops' margin (the input contract, owned by core.meta)
from edge_dfd.core.util import did_you_mean

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "blazeface"
DETECTORS = ("blazeface", "blazeface-full", "haar", "yunet:MODEL.onnx", "none")
LANDMARKS = ("eye_image_left", "eye_image_right", "nose_tip", "mouth_centre")


@dataclass(frozen=True)
class SSDSpec:
    """MediaPipe's SSD anchor options for one BlazeFace model (fixed anchor size 1, one class)."""

    file: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float  # 1.0 -> two anchors per cell and layer, 0.0 -> one
    min_score: float = 0.5
    nms_iou: float = 0.3


BLAZEFACE = {
    # mediapipe/modules/face_detection/face_detection_short_range_common.pbtxt
    "blazeface": SSDSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    # mediapipe/modules/face_detection/face_detection_full_range_common.pbtxt
    "blazeface-full": SSDSpec("face_detection_full_range.tflite", 192, (4,), 0.0),
}


class FaceDetector:
    """Base class: ``detect(frame_bgr) -> (boxes (N, 4) float32 x1 y1 x2 y2 in pixels, scores (N,) float32)``."""

    name = "base"

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect_landmarks(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``detect`` plus key points: (boxes, scores, (N, 4, 2) float32 frame pixels in ``LANDMARKS`` order
        or ``None`` when this detector has none). The boxes and scores are exactly ``detect``'s."""
        boxes, scores = self.detect(frame)
        return boxes, scores, None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _empty():
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)


# --------------------------------------------------------------------------- BlazeFace


def ssd_anchors(input_size: int, strides, interpolated_scale_aspect_ratio: float = 1.0) -> np.ndarray:
    """(A, 2) anchor centres (x, y) in [0, 1], in the model's output order (MediaPipe's SsdAnchorsCalculator).

    Consecutive layers with the same stride share one feature map; each contributes 2 anchors per cell
    when ``interpolated_scale_aspect_ratio == 1`` (aspect ratio 1 plus the interpolated scale), else 1.
    """
    out, i, strides = [], 0, list(strides)
    while i < len(strides):
        j, per_cell = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            per_cell += 2 if interpolated_scale_aspect_ratio == 1.0 else 1
            j += 1
        n = input_size // strides[i]
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        xx, yy = np.meshgrid(c, c)  # row-major: y outer, x inner
        cells = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Fit ``frame`` into a ``size`` x ``size`` square keeping its aspect ratio, padding both sides equally.

    Returns (square image, scale, pad_x, pad_y): a model-input pixel (u, v) is frame pixel
    ((u - pad_x) / scale, (v - pad_y) / scale).
    """
    import cv2

    h, w = frame.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    px, py = (size - nw) // 2, (size - nh) // 2
    out = np.zeros((size, size, 3), np.uint8)
    out[py : py + nh, px : px + nw] = small
    return out, scale, float(px), float(py)


def decode_ssd(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int,
               min_score: float = 0.5, keypoints: bool = False):
    """BlazeFace regressors -> boxes (x1, y1, x2, y2) normalised to the model input, and sigmoid scores
    (and, with ``keypoints=True``, a third array: (N, K, 2) key points x, y normalised to the model input).

    ``raw_boxes`` (A, 16): x_centre, y_centre, w, h, then 6 key points (MediaPipe's order: the subject's right
    eye, left eye, nose tip, mouth centre, right and left ear tragion), all in input pixels relative to the
    anchor centre (fixed anchor size 1). Only boxes with score >= ``min_score`` and positive size are kept.
    """
    raw_boxes = np.asarray(raw_boxes, np.float32).reshape(len(anchors), -1)
    logits = np.clip(np.asarray(raw_scores, np.float32).reshape(-1), -80.0, 80.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = scores >= min_score
    r, a, s = raw_boxes[keep], anchors[keep], scores[keep]
    cx = r[:, 0] / input_size + a[:, 0]
    cy = r[:, 1] / input_size + a[:, 1]
    hw, hh = r[:, 2] / input_size / 2, r[:, 3] / input_size / 2
    boxes = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1)
    ok = (hw > 0) & (hh > 0)
    if not keypoints:
        return boxes[ok].astype(np.float32), s[ok].astype(np.float32)
    kp = r[:, 4:].reshape(len(r), (r.shape[1] - 4) // 2, 2) / input_size + a[:, None, :]
    return boxes[ok].astype(np.float32), s[ok].astype(np.float32), kp[ok].astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of (N, 4) and (M, 4) x1 y1 x2 y2 boxes -> (N, M)."""
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3, keypoints: np.ndarray | None = None):
    """MediaPipe's weighted non-maximum suppression: each kept box is the score-weighted mean of the boxes
    overlapping the best remaining one by more than ``iou``; its score is the best one's.

    With ``keypoints`` (N, K, 2) a third array is returned: each kept face's key points, averaged over the
    same group with the same weights as its box."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kps = None if keypoints is None else np.asarray(keypoints, np.float32)[order]
    out_b, out_s, out_k = [], [], []
    remaining = np.arange(len(boxes))
    while remaining.size:
        best = remaining[0]
        sim = iou_matrix(boxes[best : best + 1], boxes[remaining])[0]
        group = remaining[sim > iou]
        if group.size == 0:
            group = remaining[:1]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(axis=0) / w.sum())
        out_s.append(scores[best])
        if kps is not None:
            out_k.append((kps[group] * w[:, :, None]).sum(axis=0) / w.sum())
        remaining = remaining[sim <= iou]
        remaining = remaining[remaining != best]
    if kps is None:
        return (np.asarray(out_b, np.float32), np.asarray(out_s, np.float32)) if out_b else _empty()
    if not out_b:
        return (*_empty(), np.zeros((0,) + kps.shape[1:], np.float32))
    return np.asarray(out_b, np.float32), np.asarray(out_s, np.float32), np.asarray(out_k, np.float32)


class BlazeFace(FaceDetector):
    """BlazeFace short- or full-range on LiteRT; letterboxed input in [-1, 1], boxes mapped back to the frame."""

    def __init__(self, name: str = "blazeface", threads: int | None = None, min_score: float | None = None,
                 model_dir: Path | None = None):
        self.name = name
        self.spec = BLAZEFACE[name]
        self.min_score = self.spec.min_score if min_score is None else float(min_score)
        path = Path(model_dir or ASSETS) / self.spec.file
        if not path.is_file():
            raise ModelError(f"{path}: bundled BlazeFace model is missing (reinstall edge-dfd)")
        interp = require("ai_edge_litert.interpreter", "the BlazeFace face detector")
        self.interpreter = interp.Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        size = self.spec.input_size
        if tuple(inp["shape"]) != (1, size, size, 3):
            raise ModelError(f"{path}: input shape {tuple(inp['shape'])}, expected (1, {size}, {size}, 3)")
        self._in = inp["index"]
        self.anchors = ssd_anchors(size, self.spec.strides, self.spec.interpolated_scale_aspect_ratio)
        outs = {tuple(d["shape"][1:]): d["index"] for d in self.interpreter.get_output_details()}
        a = len(self.anchors)
        if (a, 16) not in outs or (a, 1) not in outs:
            raise ModelError(f"{path}: outputs {sorted(outs)}, expected ({a}, 16) boxes and ({a}, 1) scores")
        self._boxes, self._scores = outs[(a, 16)], outs[(a, 1)]

    def detect(self, frame):
        boxes, scores, _ = self.detect_landmarks(frame)
        return boxes, scores

    def detect_landmarks(self, frame):
        import cv2

        size = self.spec.input_size
        square, scale, px, py = letterbox(frame, size)
        x = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32) * (2.0 / 255.0) - 1.0
        self.interpreter.set_tensor(self._in, x[None])
        self.interpreter.invoke()
        boxes, scores, kps = decode_ssd(self.interpreter.get_tensor(self._boxes)[0],
                                        self.interpreter.get_tensor(self._scores)[0],
                                        self.anchors, size, self.min_score, keypoints=True)
        if len(boxes) == 0:
            return (*_empty(), np.zeros((0, 4, 2), np.float32))
        boxes, scores, kps = weighted_nms(boxes, scores, self.spec.nms_iou, keypoints=kps)
        # MediaPipe's key points 0-3 (subject's right eye = image left, left eye, nose tip, mouth centre);
        # not clipped to the frame: a clipped point would skew the alignment
        marks = (kps[:, :4] * size - np.array([px, py], np.float32)) / scale
        return _to_frame(boxes * size, scale, px, py, frame.shape), scores, marks.astype(np.float32)


def _to_frame(boxes_px: np.ndarray, scale: float, px: float, py: float, shape) -> np.ndarray:
    """Model-input pixel boxes -> frame pixel boxes, clipped to the frame."""
    h, w = shape[:2]
    b = (boxes_px - np.array([px, py, px, py], np.float32)) / scale
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    return b.astype(np.float32)


# --------------------------------------------------------------------------- OpenCV detectors


class Haar(FaceDetector):
    """OpenCV's frontal-face Haar cascade, run on a grayscale copy downscaled to at most ``max_side`` px."""

    name = "haar"

    def __init__(self, max_side: int = 320, min_face: int = 24):
        cv2 = require("cv2", "the Haar face detector")
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise EdgeDFDError(f"OpenCV {cv2.__version__} has no Haar cascades (removed in OpenCV 5); "
                               "install 'opencv-python-headless<5' or use --faces blazeface")
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ModelError(f"{path}: OpenCV cannot load the Haar cascade")
        self.max_side, self.min_face = max_side, min_face

    def detect(self, frame):
        import cv2

        h, w = frame.shape[:2]
        f = min(1.0, self.max_side / max(h, w))
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if f < 1.0:
            gray = cv2.resize(gray, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_face, self.min_face))
        if len(found) == 0:
            return _empty()
        xywh = np.asarray(found, np.float32) / f
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return boxes, np.ones(len(boxes), np.float32)


class YuNet(FaceDetector):
    """OpenCV's ``FaceDetectorYN`` with the user's YuNet .onnx model."""

    def __init__(self, model: str, min_score: float | None = None):
        cv2 = require("cv2", "the YuNet face detector")
        p = Path(model).expanduser()
        if not model:
            raise EdgeDFDError("--faces yunet needs a model file: --faces yunet:PATH/face_detection_yunet.onnx")
        if not p.is_file():
            raise ModelError(f"{p}: YuNet model file not found (--faces yunet:PATH expects an existing .onnx file, "
                             "e.g. face_detection_yunet_2023mar.onnx from the OpenCV model zoo)")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise EdgeDFDError(f"OpenCV {cv2.__version__} has no FaceDetectorYN (needs OpenCV >= 4.5.4)")
        self.name = f"yunet:{p}"
        try:
            self.det = cv2.FaceDetectorYN.create(str(p), "", (320, 320), 0.6 if min_score is None else min_score)
        except cv2.error as exc:
            why = str(exc).strip().splitlines()[-1]
            raise ModelError(f"{p}: OpenCV cannot load this YuNet model ({why})") from None
        self._size = (320, 320)

    def _faces(self, frame) -> np.ndarray | None:
        h, w = frame.shape[:2]
        if self._size != (w, h):
            self.det.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self.det.detect(frame)
        if faces is None or len(faces) == 0:
            return None
        return np.asarray(faces, np.float32)

    @staticmethod
    def _boxes(faces: np.ndarray, shape) -> np.ndarray:
        h, w = shape[:2]
        boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return boxes

    def detect(self, frame):
        boxes, scores, _ = self.detect_landmarks(frame)
        return boxes, scores

    def detect_landmarks(self, frame):
        faces = self._faces(frame)
        if faces is None:
            return (*_empty(), np.zeros((0, 4, 2), np.float32))
        # row: x, y, w, h, then the subject's right eye (image left), left eye, nose tip, right and left
        # mouth corners, then the score
        p = faces[:, 4:14].reshape(-1, 5, 2)
        marks = np.concatenate([p[:, :3], p[:, 3:5].mean(axis=1, keepdims=True)], axis=1)
        return self._boxes(faces, frame.shape), faces[:, -1].astype(np.float32), marks.astype(np.float32)


class CentreSquare(FaceDetector):
    """``--faces none``: the frame's centre square is the one face (for pre-cropped feeds)."""

    name = "none"

    def detect(self, frame):
        h, w = frame.shape[:2]
        s = min(h, w)
        x, y = (w - s) / 2, (h - s) / 2
        return np.array([[x, y, x + s, y + s]], np.float32), np.ones(1, np.float32)


# --------------------------------------------------------------------------- factory and geometry


def make_detector(spec: str, threads: int | None = None, min_score: float | None = None) -> FaceDetector:
    """A ``--faces`` value -> a detector; one-line error naming the allowed values otherwise."""
    spec = (spec or "blazeface").strip()
    if spec in BLAZEFACE:
        return BlazeFace(spec, threads=threads, min_score=min_score)
    if spec == "haar":
        return Haar()
    if spec == "none":
        return CentreSquare()
    if spec.split(":", 1)[0] == "yunet":
        return YuNet(spec.split(":", 1)[1] if ":" in spec else "", min_score)
    hint = did_you_mean(spec, ["blazeface", "blazeface-full", "haar", "yunet", "none"])
    raise EdgeDFDError(f"unknown face detector '{spec}'.{hint} Valid: {', '.join(DETECTORS)}")


def square_box(box, frame_shape, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """A square around ``box`` (x1, y1, x2, y2), ``margin`` x its longer side added on every side, shifted
    (not padded) to lie inside the frame and shrunk only if the frame is smaller. Integer pixels."""
    h, w = frame_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    side = int(round(min(max(side, 2.0), h, w)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(cx - side / 2, 0), w - side)))
    top = int(round(min(max(cy - side / 2, 0), h - side)))
    return left, top, left + side, top + side
