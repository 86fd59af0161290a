"""The test videos of ``python -m benchmarks.live`` (its docstring describes the method): unseen test faces of the
shared data sets in natural surroundings (reflected, blurred farther out) - one face at a time for fidelity,
several at once, the view panning, for the FPS targets (also ``benchmarks.cascade``'s video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.common import SHARED, need_data
from edge_dfd.core.util import read_csv_rows

W, H, FPS = 640, 480, 30.0




def natural_scene(img: np.ndarray, side: int, x: int, y: int, wh: tuple[int, int] = (W, H)) -> np.ndarray:
    """``img`` (BGR) resized to ``side`` px at (x, y) in a frame of ``wh``, the rest of the frame its reflection
    (BORDER_REFLECT_101: continuous, no hard edge), sharp next to the image and blurred (sigma 0.12 x side)
    from 0.02 x side outside it on, feathered over 0.15 x side: natural surroundings, no flat background."""
    import cv2

    fw, fh = wh
    interp = cv2.INTER_AREA if side < img.shape[0] else cv2.INTER_CUBIC
    small = cv2.resize(img, (side, side), interpolation=interp)
    ext = cv2.copyMakeBorder(small, y, fh - side - y, x, fw - side - x, cv2.BORDER_REFLECT_101)
    blur = cv2.GaussianBlur(ext, (0, 0), 0.12 * side)
    outside = np.ones((fh, fw), np.uint8)
    outside[y:y + side, x:x + side] = 0
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)
    alpha = np.clip(1 - (dist - 0.02 * side) / (0.15 * side), 0, 1)[..., None]
    return np.clip(ext * alpha + blur * (1 - alpha) + 0.5, 0, 255).astype(np.uint8)


def multi_face_scene(imgs: list[np.ndarray], sides: list[int], xys: list[tuple[int, int]],
                     wh: tuple[int, int]) -> np.ndarray:
    """Several faces, each in its own reflected surroundings (natural_scene), blended by distance to each
    image (soft Voronoi, ~30 px wide seams): no hard edge anywhere."""
    import cv2

    fw, fh = wh
    scenes, weights = [], []
    for img, side, (x, y) in zip(imgs, sides, xys):
        scenes.append(natural_scene(img, side, x, y, wh).astype(np.float32))
        outside = np.ones((fh, fw), np.uint8)
        outside[y:y + side, x:x + side] = 0
        weights.append(np.exp(-cv2.distanceTransform(outside, cv2.DIST_L2, 3) / 15.0))
    wsum = np.sum(weights, axis=0)[..., None] + 1e-12
    out = sum(s * w[..., None] for s, w in zip(scenes, weights)) / wsum
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def test_images(n: int, seed: int, ffhq: int = 0) -> list[dict]:
    """n different 140k sample test images (half fake, shuffled) + ``ffhq`` ffhq-tpdne-128 test images."""
    out = []
    for name, k in (("faces140k-sample", n), ("ffhq-tpdne-128", ffhq)):
        if not k:
            continue
        root = SHARED / name
        need_data(root)  # the fidelity section needs the shared test images (one line, exit 1)
        rows = read_csv_rows(root / "test.csv")
        rng = np.random.default_rng(seed)
        fake = [r for r in rows if r["label"] == "0"]
        real = [r for r in rows if r["label"] == "1"]
        nf = k // 2
        if nf > len(fake) or k - nf > len(real):
            raise SystemExit(f"benchmarks.live: {root} has {len(fake)} fake / {len(real)} real test images, "
                             f"{nf} / {k - nf} asked")
        pick = [fake[i] for i in rng.choice(len(fake), nf, replace=False)]
        pick += [real[i] for i in rng.choice(len(real), k - nf, replace=False)]
        for r in pick:
            out.append({"set": name, "id": r["id"], "fake": r["label"] == "0",
                        "path": str(root / "real_vs_fake" / "real-vs-fake" / r["path"])})
    order = np.random.default_rng(seed + 1).permutation(len(out))
    return [out[i] for i in order]


def fidelity_video(path: Path, images: list[dict], frames_per_face: int, sizes: tuple[int, int], scale: float,
                   seed: int) -> list[dict]:
    """Write the fidelity video; returns one placement per face: its frames [f0, f1) and image square."""
    import cv2

    rng = np.random.default_rng(seed)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    if not vw.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    placements = []
    for i, im in enumerate(images):
        img = cv2.imread(im["path"], cv2.IMREAD_COLOR)
        if img is None:
            raise RuntimeError(f"cannot read {im['path']}")
        side = min(H, int(round(rng.integers(sizes[0], sizes[1] + 1) * scale)))
        x, y = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
        frame = natural_scene(img, side, x, y)
        for _ in range(frames_per_face):
            vw.write(frame)
        placements.append({"i": i, "f0": i * frames_per_face, "f1": (i + 1) * frames_per_face,
                           "x": x, "y": y, "side": side})
    vw.release()
    return placements


def fps_video(path: Path, imgs: list[np.ndarray], k: int, seconds: float, fps: float) -> int:
    """``k`` faces side by side in natural surroundings, the 640x480 view panning slowly over a 680x520 scene
    (detection boxes move as with a hand-held camera); ``seconds`` x ``fps`` frames. Returns the frame count."""
    import cv2

    cw, ch = W + 40, H + 40
    side = {1: 220, 2: 200, 3: 170}.get(k, 150)
    gap = (cw - k * side) / (k + 1)
    xys = [(int(gap + j * (side + gap)), int((ch - side) / 2 + (-15 if j % 2 else 10))) for j in range(k)]
    scene = multi_face_scene(imgs[:k], [side] * k, xys, (cw, ch))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    n = int(round(seconds * fps))
    for i in range(n):
        t = i / fps
        dx, dy = int(round(20 + 18 * np.sin(2 * np.pi * t / 4.0))), int(round(20 + 15 * np.sin(2 * np.pi * t / 3.0)))
        vw.write(np.ascontiguousarray(scene[dy:dy + H, dx:dx + W]))
    vw.release()
    return n
