"""Deployment augmentation: what a camera, a stream and ``edge-dfd live`` do to a face, applied at random.

``augment(img, rng, box=..., size=...)`` returns one ``size`` x ``size`` training view of a native-resolution
RGB face image. The geometry comes first (how the face ends up framed in the crop) and cuts the view straight
at ``size`` - one INTER_AREA shrink, as ``live`` resizes its crop once - then the pixels change (resampling,
blur, sensor noise, colour, compression), each with its own probability; about one view in six is left clean
(the image as inference resizes it) so that still-image accuracy on FFHQ-framed crops is kept. The named perturbations of
``bench --robustness`` (``edge_dfd.images.perturb``) are special cases of these draws.

Geometry (one of):
- ``live``: the square ``edge-dfd live`` cuts - the face detector's box plus a margin of 0.15-0.55 of its
  side, jittered - from the image extended by its own surroundings (reflected, replicated, blurred or a
  flat colour) where the square leaves the image;
- ``zoom``: the face fills 55-100 % of the crop, shifted, on the same kinds of surroundings;
- ``crop``: a random square of 80-100 % of the side (zoomed in, translated);
- ``none``.
Then: a thin border (letterbox / frame: the view shrinks by its width), horizontal flip, a small rotation.
Pixels: rescale x0.5-x2 and back with random interpolations, Gaussian blur, sensor noise, colour / gamma,
JPEG q30-95 (4:2:0) or an MJPG-like q60-95 (4:2:2).
"""

from __future__ import annotations

import numpy as np

from edge_dfd.images import perturb as P

FILLS = ("reflect", "reflect", "blurred", "replicate", "constant")
NOISE_FIELDS, NOISE_SIDE = 8, 320  # the sensor-noise bank: 8 fixed N(0, 1) fields of 320 x 320 x 3 (9.8 MB)
_NOISE: list = []


def _cv2():
    import cv2

    return cv2


def _fill(rng) -> tuple[str, tuple]:
    mode = FILLS[rng.integers(len(FILLS))]
    value = tuple(int(v) for v in rng.integers(0, 256, 3))
    return mode, value


def live_crop(img: np.ndarray, box, rng, size: int | None = None) -> np.ndarray:
    """The square a face detector's ``box`` (x1, y1, x2, y2) plus a random margin gives, cut from the image
    extended by its surroundings where the square leaves it (``edge_dfd.images.crop.crop_face``, the crop
    ``live`` cuts, with a random margin, centre jitter and fill), resized straight to ``size`` x ``size`` as
    ``live`` resizes its crops (None: the image's own (w, h))."""
    from edge_dfd.images.crop import crop_face

    margin = rng.uniform(0.15, 0.55)
    shift = (float(rng.normal(0, 0.04)), float(rng.normal(0, 0.04)))
    h, w = img.shape[:2]
    if size is None:
        return crop_face(img, box, None, "box", margin, (w, h), fill=_fill(rng), shift=shift, bgr=False)[0]
    crop, _ = crop_face(img, box, None, "box", margin, None, fill=_fill(rng), shift=shift, bgr=False)
    return fit(crop, size)


def fit(img: np.ndarray, size: int) -> np.ndarray:
    """``img`` resized to ``size`` x ``size`` as inference resizes (INTER_AREA when shrinking, else INTER_LINEAR),
    shrinking through float32, which OpenCV does ~20 % faster than uint8 on 256-px faces and which differs by at
    most one grey level (tests/test_perturb.py)."""
    cv2 = _cv2()
    if img.shape[0] == size and img.shape[1] == size:
        return img
    if img.shape[1] > size or img.shape[0] > size:
        return cv2.convertScaleAbs(cv2.resize(img.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA))
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)


def zoom(img: np.ndarray, fill: float, mode: str, value, dx: float, dy: float, size: int) -> np.ndarray:
    """``edge_dfd.images.perturb.zoom_out`` as a ``size`` x ``size`` view of a square image: the image shrunk
    to ``fill`` of the side first, then extended by ``pad(mode)`` (one small resize instead of extending at full
    size and shrinking the larger canvas; the same framing)."""
    side = max(1, min(size, int(round(size * fill))))
    m = size - side
    top, left = int(round(m / 2 * (1 + dy))), int(round(m / 2 * (1 + dx)))
    return P.pad(fit(img, side), top, m - top, left, m - left, mode, value)


def random_crop(img: np.ndarray, rng, size: int) -> np.ndarray:
    """A random square of 80-100 % of the shorter side, resized to ``size`` x ``size`` (``fit``)."""
    h, w = img.shape[:2]
    f = rng.uniform(0.8, 1.0)
    s = max(8, int(round(min(h, w) * f)))
    top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    return fit(img[top:top + s, left:left + s], size)


def rotate(img: np.ndarray, deg: float) -> np.ndarray:
    cv2 = _cv2()
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def augment(img: np.ndarray, rng, box=None, size: int | None = None) -> np.ndarray:
    """One random deployment view of ``img`` (RGB uint8, native size) as a ``size`` x ``size`` model input
    (None: the shorter side); ``box`` = the face detector's box on it (x1, y1, x2, y2 pixels) or None (the
    ``live`` geometry is then replaced by ``zoom``).

    The geometry cuts the view straight at its final size - one resize per view, as ``live`` resizes a crop
    once and still images are resized once (``resize_square``: INTER_AREA) - and the pixel changes act on it."""
    from edge_dfd.images.preprocess import center_square

    cv2 = _cv2()
    img = np.ascontiguousarray(img, dtype=np.uint8)
    size = int(size or min(img.shape[:2]))
    if rng.random() < 1 / 6:  # clean view: FFHQ framing, native pixels resized as inference does (flip only)
        img = fit(center_square(img), size)
        return cv2.flip(img, 1) if rng.random() < 0.5 else img
    border = int(rng.integers(2, max(3, size // 16))) if rng.random() < 0.1 else 0
    inner = size - 2 * border  # a thin frame (letterbox) around a slightly smaller view
    g = rng.random()
    if g < 0.35 and box is not None:
        img = live_crop(img, box, rng, inner)
    elif g < 0.65:
        mode, value = _fill(rng)
        img = zoom(center_square(img), rng.uniform(0.55, 1.0), mode, value, rng.uniform(-1, 1), rng.uniform(-1, 1),
                   inner)
    elif g < 0.85:
        img = random_crop(img, rng, inner)
    else:
        img = fit(center_square(img), inner)
    if border:
        img = cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_CONSTANT,
                                 value=tuple(int(v) for v in rng.integers(0, 256, 3)))
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    if rng.random() < 0.2:
        img = rotate(img, rng.uniform(-10, 10))
    if rng.random() < 0.45:
        f = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        img = P.rescale(img, f, P.INTERPOLATIONS[rng.integers(4)], P.INTERPOLATIONS[rng.integers(1, 4)])
    if rng.random() < 0.2:
        img = P.blur(img, rng.uniform(0.3, 2.0))
    if rng.random() < 0.25:
        img = color(img, rng)
    if rng.random() < 0.2:
        img = sensor_noise(img, rng, rng.uniform(2, 8))
    q = rng.random()
    if q < 0.4:
        img = P.jpeg(img, int(rng.integers(30, 96)))
    elif q < 0.55:
        img = P.jpeg(img, int(rng.integers(60, 96)), "422")
    return img


def noise_field(shape, rng) -> np.ndarray:
    """N(0, 1) float32 noise of ``shape`` (h, w, 3): a window at a random offset of one of ``NOISE_FIELDS`` fixed
    fields (drawn once per process from seed 0), which is 10x cheaper than drawing every pixel
    (``python -m benchmarks.train_pipeline``); images larger than a field get fresh draws from ``rng``."""
    h, w = shape[:2]
    if h > NOISE_SIDE or w > NOISE_SIDE or len(shape) != 3 or shape[2] != 3:
        return rng.standard_normal(shape, dtype=np.float32)
    if not _NOISE:
        bank = np.random.default_rng(0).standard_normal((NOISE_FIELDS, NOISE_SIDE, NOISE_SIDE, 3), dtype=np.float32)
        _NOISE.append(bank)  # two threads may both draw it: the same values, one is kept
    k, y, x = int(rng.integers(NOISE_FIELDS)), int(rng.integers(NOISE_SIDE - h + 1)), int(rng.integers(NOISE_SIDE - w + 1))
    return _NOISE[0][k, y:y + h, x:x + w]


def sensor_noise(img: np.ndarray, rng, sigma: float) -> np.ndarray:
    """``img`` + N(0, sigma) per pixel and channel, saturating to 0..255 and rounded (uint8)."""
    cv2 = _cv2()
    return cv2.addWeighted(img.astype(np.float32), 1.0, noise_field(img.shape, rng), float(sigma), 0.0, dtype=cv2.CV_8U)


def color(img: np.ndarray, rng) -> np.ndarray:
    """Brightness, contrast, saturation and gamma, each drawn from a camera-like range.

    Saturation, contrast and brightness are one affine map of the RGB vector (``cv2.transform``, saturating to
    0..255 as the clip does), gamma a look-up table: the same draws as the float formula
    ``clip((gray + (x - gray) * s - 0.5) * c + 0.5 + b, 0, 1) ** g`` within two grey levels, at a fraction of its cost.
    """
    cv2 = _cv2()
    s = rng.uniform(0.7, 1.3)    # saturation
    c = rng.uniform(0.75, 1.25)  # contrast
    b = rng.uniform(-0.1, 0.1)   # brightness
    g = rng.uniform(0.75, 1.35)  # gamma
    m = c * (s * np.eye(3) + (1.0 - s) / 3.0)
    offset = 255.0 * (0.5 * (1.0 - c) + b)
    lin = cv2.transform(img, np.hstack([m, np.full((3, 1), offset)]).astype(np.float32))
    lut = np.clip((np.arange(256) / 255.0) ** g * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(lin, lut)
