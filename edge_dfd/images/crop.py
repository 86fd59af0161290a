"""The one face crop: every face a model sees - in ``live``, ``scan``, the ``--escalate`` second opinion and the
``deploy`` recipe's live-style training views - is cut by ``crop_face``.

    from edge_dfd.core.meta import crop_spec
    from edge_dfd.images.crop import crop_face

    spec = crop_spec(backend.meta)  # what the model's metadata says (mode, margin, input size)
    crop_rgb, quad = crop_face(frame_bgr, box, keypoints, spec.mode, spec.margin)

Modes (``CROP_MODES``, owned by ``edge_dfd.core.meta``):

* ``aligned``: the detector's 4 key points mapped onto the training images' framing by a similarity transform
  (``edge_dfd.images.align``), at the face's native scale; a face without usable key points gets ``box``.
* ``box``: a square around the detector box, ``margin`` x its longer side added on every side. Where the square
  leaves the image it is either shifted inside (``fill=None``: ``edge_dfd.images.faces.square_box``, what video
  does) or the image is extended with ``fill`` = (``edge_dfd.images.perturb.pad`` mode, colour) around a square
  kept centred on the box (the training views, which imitate a face near a frame edge).

``size``: None keeps the crop's native pixels (the runtime's resize does the downscaling); an int or (w, h)
resizes (INTER_AREA when shrinking, else INTER_LINEAR). Coordinates are continuous pixels, as the detector's.
Only numpy and OpenCV: no TensorFlow.
"""

from __future__ import annotations

import numpy as np

from edge_dfd.core.meta import CROP_MODES, DEFAULT_MARGIN
from edge_dfd.images.align import aligned_crop, usable
from edge_dfd.images.faces import square_box


def crop_face(image, box, keypoints=None, mode: str = "box", margin: float = DEFAULT_MARGIN, size=None, *,
              fill: tuple | None = None, shift: tuple[float, float] = (0.0, 0.0),
              bgr: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One face as (uint8 RGB crop, (4, 2) float32 crop corners in image pixels: top-left, top-right,
    bottom-right, bottom-left).

    ``image``: uint8, BGR (``bgr=True``: video frames) or already RGB (``bgr=False``: decoded training images).
    ``box``: the detector's (x1, y1, x2, y2); ``keypoints``: its (4, 2) key points or None. ``fill`` and
    ``shift`` (the square's centre moved by this fraction of its side) apply to box crops."""
    if mode not in CROP_MODES:
        raise ValueError(f"unknown crop mode {mode!r} (expected one of {', '.join(CROP_MODES)})")
    if mode == "aligned" and usable(keypoints):
        crop, quad = aligned_crop(image, keypoints, to_rgb=bgr)
    elif fill is None and shift == (0.0, 0.0):
        crop, quad = _shifted_box(image, box, margin, bgr)
    else:
        crop, quad = _padded_box(image, box, margin, fill or ("reflect", (0, 0, 0)), shift, bgr)
    return (crop if size is None else _resize(crop, size)), quad


def face_crops(frame_bgr, boxes, landmarks, mode: str = "aligned", margin: float = DEFAULT_MARGIN) -> list:
    """``crop_face`` for every face of a frame: one (crop_rgb, quad) per box (``landmarks``: (N, 4, 2) or None)."""
    if mode not in CROP_MODES:
        raise ValueError(f"unknown crop mode {mode!r} (expected one of {', '.join(CROP_MODES)})")
    return [crop_face(frame_bgr, box, None if landmarks is None else landmarks[i], mode, margin)
            for i, box in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4))]


def crop_bounds(quad) -> tuple[int, int, int, int]:
    """The integer bounding box (x1, y1, x2, y2) of a crop's corners (aligned crops are rotated)."""
    q = np.asarray(quad, np.float32).reshape(-1, 2)
    x1, y1 = np.floor(q.min(axis=0)).astype(int)
    x2, y2 = np.ceil(q.max(axis=0)).astype(int)
    return int(x1), int(y1), int(x2), int(y2)


def _rgb(img: np.ndarray, bgr: bool) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB) if bgr else img


def _shifted_box(image, box, margin: float, bgr: bool):
    x1, y1, x2, y2 = square_box(box, image.shape, margin)
    return _rgb(image[y1:y2, x1:x2], bgr), np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def _padded_box(image, box, margin: float, fill: tuple, shift: tuple[float, float], bgr: bool):
    from edge_dfd.images.perturb import pad

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx = (x1 + x2) / 2 + shift[0] * side
    cy = (y1 + y2) / 2 + shift[1] * side
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    pt, pl = max(0, -top), max(0, -left)
    pb, pr = max(0, top + s - h), max(0, left + s - w)
    ext = pad(image, pt, pb, pl, pr, fill[0], fill[1]) if (pt or pb or pl or pr) else image
    sq = ext[top + pt: top + pt + s, left + pl: left + pl + s]
    quad = np.array([[left, top], [left + s, top], [left + s, top + s], [left, top + s]], np.float32)
    return _rgb(sq, bgr), quad


def _resize(crop: np.ndarray, size) -> np.ndarray:
    import cv2

    w, h = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    shrink = crop.shape[1] > w
    return cv2.resize(crop, (int(w), int(h)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
