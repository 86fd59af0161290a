"""The ONE place that decides how an image becomes model input.

Used by training (inside tf.data via ``tf.numpy_function``), evaluation, predict, bench and live,
so there is no train/serve skew:

* decode: any JPEG/PNG/BMP/WebP that OpenCV or Pillow reads; grayscale, 16-bit, palette, alpha and
  CMYK inputs all become 8-bit RGB. Images above ``MAX_PIXELS`` are refused before decoding
  (decompression-bomb guard): the JPEG / PNG / BMP / GIF / WebP header is read here, other headers by Pillow.
  Pillow is optional (the ``images`` extra; the runtime install leaves it out): without it the rare file OpenCV
  cannot decode is an ImageError.
* colour order: **RGB** (OpenCV decodes BGR; we convert once, here).
* geometry: a non-square image is centre-cropped to a square, then resized to ``size`` x ``size``
  (``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when enlarging).
* dtype and scaling: the result is **uint8 0..255**. Models take raw pixel values (as float32, or
  uint8 for ``tflite-int8-io``); every architecture's scaling lives inside its Keras graph, so every
  exported format carries it.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import ImageError

MAX_PIXELS = 64 * 1024 * 1024  # 64 Mpx: larger images are refused (decompression-bomb guard)
MAX_FILE_BYTES = 256 * 1024 * 1024
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")  # edge-dfd scan


def _cv2():
    import cv2

    return cv2


def decode_image(src, name: str | None = None) -> np.ndarray:
    """Decode a file path or encoded bytes into an (H, W, 3) uint8 RGB array.

    Raises ImageError (path + reason) for anything unreadable; never returns None.
    """
    label = name or (str(src) if not isinstance(src, (bytes, bytearray, memoryview)) else "<bytes>")
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        p = Path(src)
        try:
            st = p.stat()
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):  # a FIFO or device would hang
                raise ImageError(label, "not a regular file (pipe, socket or device)")
            size = st.st_size
            if size > MAX_FILE_BYTES:
                raise ImageError(label, f"file is {size} bytes, above the {MAX_FILE_BYTES}-byte limit")
            data = p.read_bytes()
        except ImageError:
            raise
        except IsADirectoryError:
            raise ImageError(label, "is a folder, not an image") from None
        except PermissionError:
            raise ImageError(label, "permission denied") from None
        except FileNotFoundError:
            raise ImageError(label, "file not found") from None
        except OSError as exc:
            raise ImageError(label, f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(label, "empty file")
    _check_pixels(data, label)
    cv2 = _cv2()
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV raises (not returns None) for some damaged headers
        if "MAX_IMAGE_PIXELS" in str(exc):
            raise ImageError(label, f"image header declares more than the {MAX_PIXELS}-pixel limit") from None
        arr = None  # let Pillow try, and report its reason
    if arr is not None and arr.ndim == 3 and arr.shape[2] == 3 and arr.size:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return _decode_with_pillow(data, label)


def _pillow():
    """PIL.Image, or None when Pillow is not installed (the runtime install)."""
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def _check_pixels(data: bytes, label: str) -> None:
    # The formats we accept declare their size in a few header bytes: read those first (~10 us); Pillow (~130 us
    # a JPEG, it parses every marker) only for the other formats and headers we cannot read. OpenCV's own pixel
    # limit is an environment variable read once per process, so it is not enough when the caller decoded with
    # cv2 before importing edge_dfd.
    size = _header_size(data)
    Image = _pillow() if size is None else None
    if Image is not None:
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
        except Image.DecompressionBombError:
            raise ImageError(label, f"image is larger than the {MAX_PIXELS}-pixel limit") from None
        except Exception:  # noqa: BLE001 - unknown format or a damaged file: OpenCV's limit and errors apply
            size = None
    if size is None:
        return
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(label, f"image is {w}x{h} pixels, above the {MAX_PIXELS}-pixel limit")
    if w < 1 or h < 1:
        raise ImageError(label, f"image has no pixels ({w}x{h})")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by a PNG, JPEG, BMP, GIF or WebP header, or None (another format, or no
    readable size). Reads a few bytes per JPEG segment header; never decodes, never raises."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:2] == b"BM" and len(data) >= 26:
        if int.from_bytes(data[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
        w, h = int.from_bytes(data[18:22], "little", signed=True), int.from_bytes(data[22:26], "little", signed=True)
        return abs(w), abs(h)  # a negative height is a top-down bitmap
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return _webp_canvas(data)


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic): they carry the size
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            if i + 9 > n:
                return None
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if marker == 0xDA or length < 2:  # scan data before any frame header, or a damaged length
            return None
        i += 2 + length
    return None


def _webp_canvas(data: bytes) -> tuple[int, int] | None:
    """(width, height) declared by a WebP header (VP8, VP8L or VP8X), or None."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind, body = data[12:16], data[20:30]
    if kind == b"VP8X":
        return 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little")
    if kind == b"VP8L" and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        return int.from_bytes(body[6:8], "little") & 0x3FFF, int.from_bytes(body[8:10], "little") & 0x3FFF
    return None


def _decode_with_pillow(data: bytes, label: str) -> np.ndarray:
    Image = _pillow()
    if Image is None:  # OpenCV could not decode it; Pillow, which reads a few more, is not installed
        raise ImageError(label, "not a readable image (unknown format, or truncated or corrupt data)")
    from PIL import UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                a = (a / max(a.max(), 1.0) * 255.0).astype(np.uint8)
                return np.repeat(a[..., None], 3, axis=2)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageError(label, "not a readable image (unknown or corrupt format)") from None
    except Exception as exc:  # truncated/corrupt data raises many different types inside Pillow
        raise ImageError(label, f"corrupt image ({type(exc).__name__}: {exc})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError(label, "image has no pixels")
    return rgb


def center_square(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    if h == w:
        return img
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y : y + s, x : x + s]


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size, 3) uint8 RGB."""
    img = center_square(img)
    if img.shape[0] == size and img.shape[1] == size:
        return np.ascontiguousarray(img, dtype=np.uint8)
    cv2 = _cv2()
    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def load_image(src, size: int) -> np.ndarray:
    """decode_image + resize_square: the model input for one image, (size, size, 3) uint8 RGB."""
    return resize_square(decode_image(src), size)


def prepare_batch(images, size: int) -> np.ndarray:
    """Stack already-decoded RGB images (any sizes) into an (N, size, size, 3) uint8 batch."""
    if len(images) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([resize_square(np.asarray(im), size) for im in images]).astype(np.uint8, copy=False)


def is_image_file(path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def set_opencv_threads(n: int | None) -> None:
    if n is not None:
        _cv2().setNumThreads(int(n))


os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
