"""The geometry of ``aligned`` face crops: warp detector key points onto the 140k / FFHQ framing.

Faces are cut by ``edge_dfd.images.crop.crop_face`` (the one crop function); this module holds what its
``aligned`` mode needs: ``aligned_crop`` maps the 4 key points (``edge_dfd.images.faces.LANDMARKS``) onto
``TEMPLATE`` with a least-squares similarity (rotation, uniform scale, shift), at the face's native scale;
``usable`` says whether key points can be used (else the crop is the ``box`` one). Coordinates are continuous
pixels: pixel (i, j) covers [j, j + 1) x [i, i + 1), as the detector boxes. Only numpy and OpenCV: no TensorFlow.

    python -m edge_dfd.images.align fit DATA_DIR [--split train] [--json OUT]     # measures TEMPLATE
    python -m edge_dfd.images.align check DATA_DIR --split test [--n 200] [--out benchmarks/results]
"""

from __future__ import annotations

import sys

import numpy as np

from edge_dfd.core.meta import CROP_MODES, DEFAULT_MARGIN

SIDE_RANGE = (32, 512)  # aligned crops keep the face's native scale within these bounds (px)
METRICS = ("iou", "mae", "side_ratio", "dx", "dy")  # check: per crop mode
FIT_PAD = 128  # px of reflected border around a 256-px image for fit: the face fills ~half the detector input

# The 4 key points as fractions of the training images' square, in LANDMARKS order: measured by
# `python -m edge_dfd.images.align fit /work/shared/data/faces140k-sample --split train` (BlazeFace short-range,
# 256-px images reflect-padded by 128 px): per-point medians over n = 699 images (350 real, 349 fake, both
# FFHQ-aligned), none missed. Spread (median absolute deviation, px of 256, x / y): eyes 2.1 / 1.5 and
# 2.0 / 1.7, nose tip 5.3 / 3.8, mouth 3.3 / 2.9. The independent ffhq-tpdne-128 train set (n = 4080) gives
# the same points within 0.002. Check: benchmarks/results/align.md (`python -m edge_dfd.images.align check`).
TEMPLATE = np.array([[0.3790, 0.4750], [0.6303, 0.4798],   # eyes: image left, image right
                     [0.5035, 0.6286], [0.5000, 0.7493]], np.float32)  # nose tip, mouth centre


def similarity_transform(src, dst) -> np.ndarray:
    """Least-squares similarity (rotation + uniform scale + shift, no reflection) taking ``src`` (K, 2) onto
    ``dst`` (K, 2): the 2x3 float64 matrix M with dst ~ M @ [x, y, 1]. Closed form (complex-number Umeyama)."""
    s = np.asarray(src, np.float64).reshape(-1, 2)
    d = np.asarray(dst, np.float64).reshape(-1, 2)
    zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    ms, md = zs.mean(), zd.mean()
    var = np.sum(np.abs(zs - ms) ** 2)
    if len(s) < 2 or len(s) != len(d) or var <= 0:
        raise ValueError("similarity_transform needs >= 2 distinct source points and as many destination points")
    c = np.sum(np.conj(zs - ms) * (zd - md)) / var
    t = md - c * ms
    return np.array([[c.real, -c.imag, t.real], [c.imag, c.real, t.imag]], np.float64)


def _warp(frame_bgr, m: np.ndarray, side: int, to_rgb: bool = True) -> np.ndarray:
    """Warp with a continuous-pixel matrix ``m`` (frame -> crop) into a side x side crop (BGR frame -> RGB crop
    with ``to_rgb``; channels kept without), reflected border."""
    import cv2

    a, t = m[:, :2], m[:, 2]
    w = np.concatenate([a, (t + a.sum(axis=1) * 0.5 - 0.5)[:, None]], axis=1)  # to OpenCV's pixel-centre grid
    crop = cv2.warpAffine(frame_bgr, w, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB) if to_rgb else crop


def aligned_crop(frame_bgr, landmarks, side: int | None = None, to_rgb: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The square crop whose ``TEMPLATE`` points land on ``landmarks`` (4, 2) frame pixels, as (uint8 RGB crop,
    (4, 2) float32 crop corners in frame pixels: top-left, top-right, bottom-right, bottom-left).

    ``side=None``: the face's native scale (the crop's side in frame pixels) clamped to ``SIDE_RANGE``, so that
    the model's own resize does the downscaling, as for box crops. Outside the frame: reflected pixels."""
    unit = similarity_transform(landmarks, TEMPLATE)  # frame -> [0, 1] crop coordinates
    if side is None:
        native = 1.0 / np.sqrt(abs(np.linalg.det(unit[:, :2])))
        side = int(np.clip(round(native), *SIDE_RANGE))
    side = int(side)
    m = unit * side
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    corners = np.array([[0, 0, 1], [side, 0, 1], [side, side, 1], [0, side, 1]], np.float64)
    return _warp(frame_bgr, m, side, to_rgb), (corners @ inv.T).astype(np.float32)


def usable(landmarks) -> bool:
    """Key points an aligned crop can use: 4 finite points, eyes at least 2 px apart."""
    if landmarks is None:
        return False
    p = np.asarray(landmarks, np.float64)
    return p.shape == (4, 2) and bool(np.isfinite(p).all()) and float(np.hypot(*(p[1] - p[0]))) >= 2.0


# --------------------------------------------------------------------------- fit and check (the evidence)


def _images(data_dir, split: str, n: int | None, size: int = 256):
    """256-px BGR images of a split (stratified sample of ``n``), via edge_dfd.images.data; the split is validated
    (DataError) before the first image is read."""
    import cv2

    from edge_dfd.images.data import load_split, stratified_sample
    from edge_dfd.images.preprocess import load_image

    recs = load_split(data_dir, split)
    recs = recs if n is None else stratified_sample(recs, n)
    return (cv2.cvtColor(load_image(r.path, size), cv2.COLOR_RGB2BGR) for r in recs)


def _nearest(boxes, centre) -> int | None:
    """Index of the box whose centre is nearest ``centre``, or None when there is no box."""
    if len(boxes) == 0:
        return None
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(((c - centre) ** 2).sum(axis=1)))


def fit(data_dir, split: str = "train", detector: str = "blazeface", pad: int = FIT_PAD) -> dict:
    """Measure ``TEMPLATE``: per-point median of the detector's key points on the 256-px images."""
    import cv2

    from edge_dfd.images.faces import make_detector

    images = _images(data_dir, split, None)
    det, pts, missed = make_detector(detector, threads=1), [], 0
    for img in images:
        frame = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        boxes, _, marks = det.detect_landmarks(frame)
        i = _nearest(boxes, np.array([128 + pad, 128 + pad]))
        if i is None or marks is None or not usable(marks[i]):
            missed += 1
            continue
        pts.append(marks[i] - pad)
    if not pts:
        from edge_dfd.core.errors import DataError

        raise DataError(f"{data_dir}: {detector} found no face key points in the '{split}' images")
    pts = np.asarray(pts, np.float64)
    med = np.median(pts, axis=0)
    return {"template": np.round(med / 256, 4).tolist(), "mad_px": np.round(np.median(np.abs(pts - med), 0), 1)
            .tolist(), "n": len(pts), "missed": missed, "detector": detector, "pad": pad, "split": split}


def _scene(img, rng, frame_wh=(640, 480)):
    """``img`` at a random scale (0.8-1.5x) and place in a frame whose surroundings are a blurred reflection
    of itself, feathered in (no hard edge). Returns (frame, (x, y, side) of the image square)."""
    import cv2

    fw, fh = frame_wh
    side = int(round(img.shape[0] * rng.uniform(0.8, 1.5)))
    x, y = int(rng.integers(0, fw - side + 1)), int(rng.integers(0, fh - side + 1))
    small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA if side < img.shape[0] else cv2.INTER_LINEAR)
    ext = cv2.copyMakeBorder(small, y, fh - side - y, x, fw - side - x, cv2.BORDER_REFLECT_101)
    blur = cv2.GaussianBlur(ext, (0, 0), 6)
    outside = np.ones((fh, fw), np.uint8)
    outside[y:y + side, x:x + side] = 0
    alpha = np.clip(1 - cv2.distanceTransform(outside, cv2.DIST_L2, 3) / 16, 0, 1)[..., None]
    return (ext * alpha + blur * (1 - alpha)).astype(np.uint8), (x, y, side)


def quad_iou(a, b) -> float:
    """Intersection over union of two convex quads (4, 2)."""
    import cv2

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = cv2.contourArea(a) + cv2.contourArea(b) - inter
    return float(inter / union) if union > 0 else 0.0


def check(data_dir, split: str = "test", n: int = 200, detector: str = "blazeface", seed: int = 0) -> dict:
    """Per mode: how well the crop from a synthetic frame reproduces the original image (IoU, pixel MAE)."""
    import cv2

    from edge_dfd.images.faces import make_detector
    from edge_dfd.images.preprocess import resize_square

    images = _images(data_dir, split, n)
    det, rng = make_detector(detector, threads=1), np.random.default_rng(seed)
    from edge_dfd.images.crop import crop_face

    rows, missed = {m: [] for m in ("oracle",) + CROP_MODES}, 0
    for img in images:
        frame, (x, y, s) = _scene(img, rng)
        truth = np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], np.float32)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
        boxes, _, marks = det.detect_landmarks(frame)
        i = _nearest(boxes, np.array([x + s / 2, y + s / 2]))
        if i is None or not (x <= (boxes[i, 0] + boxes[i, 2]) / 2 <= x + s and y <= boxes[i, 1] <= y + s):
            missed += 1
            continue
        crops = {"oracle": (cv2.cvtColor(frame[y:y + s, x:x + s], cv2.COLOR_BGR2RGB), truth),
                 "aligned": crop_face(frame, boxes[i], None if marks is None else marks[i], "aligned"),
                 "box": crop_face(frame, boxes[i], None, "box")}
        for m, (crop, quad) in crops.items():
            mae = float(np.abs(resize_square(crop, img.shape[0]).astype(np.float32) - rgb).mean())
            dx, dy = (quad.mean(axis=0) - truth.mean(axis=0)) / s
            rows[m].append((quad_iou(quad, truth), mae, float(np.hypot(*(quad[1] - quad[0]))) / s, dx, dy))
    res = {"n": len(rows["box"]), "missed": missed, "split": split, "detector": detector, "seed": seed,
           "margin": DEFAULT_MARGIN, "template": [[round(float(v), 4) for v in p] for p in TEMPLATE]}
    for m, v in rows.items():
        a = np.asarray(v, np.float64).reshape(-1, len(METRICS))
        res[m] = {k: round(float(f(a[:, j])), 3) if len(a) else None
                  for k, j, f in [(k, j, np.median) for j, k in enumerate(METRICS)]
                  + [("iou_p10", 0, lambda c: np.percentile(c, 10))]}
    return res


def _main(argv=None) -> int:
    import argparse
    import datetime

    from edge_dfd.core.errors import EdgeDFDError
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text, ensure_writable_dir

    ap = argparse.ArgumentParser(prog="python -m edge_dfd.images.align", description="Measure / check the face TEMPLATE.")
    ap.add_argument("cmd", choices=("fit", "check"))
    ap.add_argument("data", help="dataset folder (140k or folder layout)")
    ap.add_argument("--split", default=None, help="split [fit: train, check: test]")
    ap.add_argument("--n", type=int, default=200, help="check: images sampled [200]")
    ap.add_argument("--faces", default="blazeface", help="detector [blazeface]")
    ap.add_argument("--json", default=None, help="fit: write the result as JSON here")
    ap.add_argument("--out", default=None, help="check: write align.md and align.json into this folder")
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error(f"--n must be >= 1, got {a.n}")
    try:
        if a.cmd == "fit":
            r = fit(a.data, a.split or "train", a.faces)
            print(f"TEMPLATE ({r['n']} faces, {r['missed']} missed; {a.faces}, {r['split']}):")
            for name, p, d in zip(("eye L", "eye R", "nose", "mouth"), r["template"], r["mad_px"]):
                print(f"  {name:6s} {p[0]:.4f} {p[1]:.4f}   MAD {d[0]:.1f} / {d[1]:.1f} px of 256")
            if a.json:
                atomic_write_json(a.json, r)
            return 0
        r = check(a.data, a.split or "test", a.n, a.faces)
        r.update(command="python -m edge_dfd.images.align " + " ".join(argv if argv is not None else sys.argv[1:]),
                 date=datetime.date.today().isoformat())
        lines = [f"n = {r['n']} faces ({r['missed']} not detected), {r['split']} split, {r['detector']}, "
                 f"box margin {r['margin']}; medians (IoU also its 10th percentile):", "",
                 "| crop | IoU with the image square (p10) | MAE (0-255) vs the original at 256 px | crop side / "
                 "image side | centre offset x, y / side |", "|---|---|---|---|---|"]
        lines += [f"| {m} | {r[m]['iou']} ({r[m]['iou_p10']}) | {r[m]['mae']} | {r[m]['side_ratio']} | "
                  f"{r[m]['dx']:+.3f}, {r[m]['dy']:+.3f} |" for m in ("oracle",) + CROP_MODES]
        print("\n".join(lines))
        if a.out:
            d = ensure_writable_dir(a.out)
            atomic_write_json(d / "align.json", r)
            atomic_write_text(d / "align.md", "\n\n".join(["# Crop framing: aligned vs box", f"`{r['command']}` "
                              f"({r['date']})", "\n".join(lines), CHECK_NOTE.format(r["template"])]) + "\n")
    except EdgeDFDError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


CHECK_NOTE = ("Each test image is shown at a random scale (0.8-1.5x) and place in a 640x480 frame whose "
              "surroundings are a blurred reflection of itself (feathered, no hard edge); the detector runs on the "
              "frame and each mode's crop is compared with the image's true square (IoU of the crop quad, in frame "
              "pixels) and with the original image (crop resized to 256 px as the model's resize does). `oracle` is "
              "the true square itself: the resampling floor of the MAE.\n\nTEMPLATE (eyes, nose tip, mouth "
              "centre; fractions of the crop side): {}")

if __name__ == "__main__":
    sys.exit(_main())
