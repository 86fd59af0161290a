"""What cameras, streams and screens do to a face crop - one owner for ``bench --robustness`` and the
deployment augmentation that trains the default detector (``edge_dfd.train.augment``).

Every function takes and returns an RGB uint8 image (H, W, 3) and works at the image's own resolution;
the model's input size is applied afterwards by ``edge_dfd.images.preprocess``. OpenCV only (no TensorFlow).

``perturb(img, name)`` applies one named, deterministic perturbation; ``PERTURBATIONS`` lists the rows
of ``bench --robustness``:

=============  ===========================================================================================
jpeg90..30     JPEG re-encode at that quality (4:2:0, OpenCV's default)
down0.5/0.75   downscale by that factor (area) and back up (bilinear): a smaller face in a stream
up1.5          upscale x1.5 (bicubic) and back down (area): a digitally zoomed / resized frame
blur1, blur2   Gaussian blur, sigma 1 / 2 px: defocus, motion, a soft webcam
zoom0.8/0.65   the face fills 80 % / 65 % of the crop: the rest is its own surroundings reflected (a face
               detector's box plus margin, a zoomed-out shot), then resized back to the original size
border8        an 8-px grey border around the image, resized back (letterboxing, a frame, a screen edge)
mjpg           one round trip through OpenCV's MJPG video writer (a USB webcam's or an IP camera's stream)
=============  ===========================================================================================
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

PERTURBATIONS = ("jpeg90", "jpeg75", "jpeg50", "jpeg30", "down0.5", "down0.75", "up1.5", "blur1", "blur2",
                 "zoom0.8", "zoom0.65", "border8", "mjpg")
INTERPOLATIONS = ("nearest", "linear", "area", "cubic")


def _cv2():
    import cv2

    return cv2


def _interp(name: str) -> int:
    cv2 = _cv2()
    return {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
            "cubic": cv2.INTER_CUBIC}[name]


def jpeg(img: np.ndarray, quality: int, subsampling: str = "420") -> np.ndarray:
    """JPEG encode + decode at ``quality`` (1..100); ``subsampling`` "420", "422" (MJPG cameras) or "444"."""
    cv2 = _cv2()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    factor = {"420": getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_420", None),
              "422": getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_422", None),
              "444": getattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR_444", None)}[subsampling]
    if factor is not None and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def mjpg(img: np.ndarray) -> np.ndarray:
    """One frame through OpenCV's MJPG ``VideoWriter`` and back through ``VideoCapture``."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    fd, path = tempfile.mkstemp(suffix=".avi", prefix="edge_dfd_mjpg_")
    os.close(fd)
    try:
        wr = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
        wr.write(np.ascontiguousarray(img[..., ::-1]))
        wr.release()
        cap = cv2.VideoCapture(path)
        ok, frame = cap.read()
        cap.release()
    finally:
        os.unlink(path)
    if not ok or frame is None or frame.shape[:2] != (h, w):  # pragma: no cover - MJPG is built into OpenCV
        return jpeg(img, 90, "422")
    return np.ascontiguousarray(frame[..., ::-1])


def rescale(img: np.ndarray, factor: float, down: str = "area", up: str = "linear") -> np.ndarray:
    """Resize by ``factor`` and back to the original size (interpolations by name, see INTERPOLATIONS)."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    there = cv2.resize(img, size, interpolation=_interp(down if factor < 1 else up))
    return cv2.resize(there, (w, h), interpolation=_interp(up if factor < 1 else down))


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return _cv2().GaussianBlur(img, (0, 0), sigmaX=float(sigma))


def pad(img: np.ndarray, top: int, bottom: int, left: int, right: int, mode: str = "reflect",
        value=(127, 127, 127)) -> np.ndarray:
    """Extend the image: ``mode`` "reflect" (its own surroundings mirrored), "replicate", "constant"
    (``value``) or "blurred" (reflected, then the added part blurred like an out-of-focus background)."""
    cv2 = _cv2()
    border = {"reflect": cv2.BORDER_REFLECT_101, "blurred": cv2.BORDER_REFLECT_101,
              "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}[mode]
    h, w = img.shape[:2]
    # reflection cannot reach further than the image itself: repeat it in steps
    out = img
    t, b, lft, r = (int(v) for v in (top, bottom, left, right))
    while t > 0 or b > 0 or lft > 0 or r > 0:
        hh, ww = out.shape[:2]
        step = [min(t, hh - 1), min(b, hh - 1), min(lft, ww - 1), min(r, ww - 1)] if border == cv2.BORDER_REFLECT_101 \
            else [t, b, lft, r]
        out = cv2.copyMakeBorder(out, *step, border, value=tuple(int(v) for v in value))
        t, b, lft, r = t - step[0], b - step[1], lft - step[2], r - step[3]
    if mode == "blurred" and out.shape[:2] != (h, w):
        soft = _soft(out, max(2.0, 0.02 * max(h, w)))
        soft[top:top + h, left:left + w] = img
        out = soft
    return out


def _soft(img: np.ndarray, sigma: float) -> np.ndarray:
    """An out-of-focus copy of ``img``: Gaussian blur of ``sigma`` px, computed at a quarter of the resolution
    (sigma / 4) and scaled back when sigma is large enough for that to look the same - a 465-px canvas at sigma 9
    takes ~0.3 ms instead of ~5 ms (benchmarks/train_pipeline.py)."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    if sigma < 4.0 or min(h, w) < 32:
        return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma))
    small = cv2.resize(img, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_LINEAR)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=float(sigma) / 4.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def zoom_out(img: np.ndarray, fill: float, mode: str = "reflect", value=(127, 127, 127),
             dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """The image shrunk to ``fill`` (0 < fill <= 1) of each side of a same-size crop whose rest is filled by
    ``pad(mode)``; ``dx``/``dy`` shift the face inside the crop by that fraction of the added margin."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    big_h, big_w = round(h / fill), round(w / fill)
    mh, mw = big_h - h, big_w - w
    top = int(round(mh / 2 * (1 + dy)))
    left = int(round(mw / 2 * (1 + dx)))
    canvas = pad(img, top, mh - top, left, mw - left, mode, value)
    return cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)


def add_border(img: np.ndarray, px: int, value=(127, 127, 127)) -> np.ndarray:
    """A ``px``-pixel constant border on every side, resized back to the original size."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    framed = cv2.copyMakeBorder(img, px, px, px, px, cv2.BORDER_CONSTANT, value=tuple(int(v) for v in value))
    return cv2.resize(framed, (w, h), interpolation=cv2.INTER_AREA)


def perturb(img: np.ndarray, name: str) -> np.ndarray:
    """Apply the named perturbation (see the module docstring); ValueError for an unknown name."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    try:
        if name == "mjpg":
            return mjpg(img)
        if name.startswith("jpeg"):
            return jpeg(img, int(name[4:]))
        if name.startswith("down"):
            return rescale(img, float(name[4:]), "area", "linear")
        if name.startswith("up"):
            return rescale(img, float(name[2:]), "area", "cubic")
        if name.startswith("blur"):
            return blur(img, float(name[4:]))
        if name.startswith("zoom"):
            return zoom_out(img, float(name[4:]))
        if name.startswith("border"):
            return add_border(img, int(name[6:]))
    except ValueError:
        pass
    raise ValueError(f"unknown perturbation '{name}' (expected one of: {', '.join(PERTURBATIONS)})")
