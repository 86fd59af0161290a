"""Aligned face crops: similarity fit, warp geometry, box fallback, detector key points, the fit / check CLI."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import FACES140K, REPO, needs_faces140k

from edge_dfd.core.meta import CROP_MODES
from edge_dfd.images.align import SIDE_RANGE, TEMPLATE, aligned_crop, quad_iou, similarity_transform
from edge_dfd.images.crop import crop_face, face_crops
from edge_dfd.images.faces import DEFAULT_MARGIN, BlazeFace, YuNet, make_detector, square_box, ssd_anchors, weighted_nms


def similarity(deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    th = np.deg2rad(deg)
    return np.array([[scale * np.cos(th), -scale * np.sin(th), tx], [scale * np.sin(th), scale * np.cos(th), ty]])


def apply(m, pts) -> np.ndarray:
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def texture(side: int, seed: int = 0) -> np.ndarray:
    """A smooth BGR texture (blurred noise + a few stripes): interpolation errors stay small, misplacement does not."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (side, side, 3)).astype(np.float32), (0, 0), side / 40)
    img = (img - img.min()) / (img.max() - img.min()) * 200
    img[:, :, 0] += 50 * (np.arange(side) / side)[None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


def to_pixel_grid(m):
    """Continuous-pixel matrix -> OpenCV's pixel-centre matrix (as edge_dfd.images.align does)."""
    a, t = m[:, :2], m[:, 2]
    return np.concatenate([a, (t + a.sum(axis=1) * 0.5 - 0.5)[:, None]], axis=1)


@pytest.mark.parametrize("deg,scale", [(20.0, 0.5), (-10.0, 2.0), (0.0, 1.0)])
def test_similarity_transform_recovers_rotation_scale_and_shift(deg, scale):
    g = similarity(deg, scale, 37.2, -11.5)
    src = TEMPLATE * 256
    m = similarity_transform(src, apply(g, src))
    np.testing.assert_allclose(m, g, atol=1e-9)
    cv_m, _ = cv2.estimateAffinePartial2D(src, apply(g, src).astype(np.float32), method=cv2.LMEDS)
    np.testing.assert_allclose(m, cv_m, atol=1e-3)  # OpenCV agrees (to its float precision)
    noisy = apply(g, src) + np.random.default_rng(1).normal(0, 2, (4, 2))
    ls = similarity_transform(src, noisy)  # least squares: no worse than the true transform on noisy points
    assert ((apply(ls, src) - noisy) ** 2).sum() <= ((apply(g, src) - noisy) ** 2).sum() + 1e-9
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((4, 2)), src)


@pytest.mark.parametrize("deg,scale,side", [(20.0, 0.5, 256), (-10.0, 2.0, 128)])
def test_aligned_crop_undoes_a_known_similarity(deg, scale, side):
    """A face image placed in a frame by a known similarity: the aligned crop is that image again."""
    face = texture(side)
    g = similarity(deg, scale, 300.0, 90.0)  # face crop pixels -> frame pixels
    frame = cv2.warpAffine(face, to_pixel_grid(g), (640, 480), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    marks = apply(g, TEMPLATE * side)
    crop, quad = aligned_crop(frame, marks)
    native = round(side * scale)
    assert crop.shape == (native, native, 3) and crop.dtype == np.uint8  # the face's native scale
    corners = np.array([[0, 0], [side, 0], [side, side], [0, side]], np.float64)
    np.testing.assert_allclose(quad, apply(g, corners), atol=1e-2)  # TL, TR, BR, BL in frame pixels
    expected = cv2.cvtColor(cv2.resize(face, (native, native), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    inner = slice(2, native - 2)  # the rim of the generated frame is reflected, not the face
    assert np.abs(crop[inner, inner].astype(float) - expected[inner, inner]).mean() < 2.0  # 1 px off: > 2
    full, quad2 = aligned_crop(frame, marks, side=side)  # explicit side: same quad, the face at that size
    assert full.shape == (side, side, 3)
    np.testing.assert_allclose(quad2, quad, atol=1e-2)
    rgb = cv2.cvtColor(face, cv2.COLOR_BGR2RGB).astype(float)
    assert np.abs(full[4:-4, 4:-4].astype(float) - rgb[4:-4, 4:-4]).mean() < 1.0


def test_aligned_crop_side_is_clamped_and_reflects_outside_the_frame():
    frame = texture(200)
    tiny = TEMPLATE * 10 + 50  # a 10-px face -> at least SIDE_RANGE[0]
    assert aligned_crop(frame, tiny)[0].shape[0] == SIDE_RANGE[0]
    huge = TEMPLATE * 2000 - 900  # a 2000-px face, mostly outside the frame -> SIDE_RANGE[1], reflected pixels
    crop, quad = aligned_crop(frame, huge)
    assert crop.shape[0] == SIDE_RANGE[1] and crop.std() > 5  # reflected texture, never a flat fill
    np.testing.assert_allclose(quad[0], [-900, -900], atol=1e-2)


def test_box_crop_and_fallbacks():
    frame = cv2.copyMakeBorder(texture(300), 90, 90, 170, 170, cv2.BORDER_REFLECT_101)  # 480 x 640
    box = np.array([250, 150, 350, 270], np.float32)
    crop, quad = crop_face(frame, box, None, "box")
    x1, y1, x2, y2 = square_box(box, frame.shape, DEFAULT_MARGIN)
    assert DEFAULT_MARGIN == 0.33 and crop.shape == (y2 - y1, x2 - x1, 3)
    np.testing.assert_array_equal(crop, cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(quad, [[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    good = TEMPLATE * 160 + np.array([220, 130])
    nan = np.full((4, 2), np.nan, np.float32)
    close = good.copy()
    close[1] = close[0] + 1.0  # eyes 1.4 px apart: degenerate
    marks = np.stack([good, nan, close]).astype(np.float32)
    boxes = np.stack([box] * 3)
    out = face_crops(frame, boxes, marks, "aligned")
    assert len(out) == 3
    np.testing.assert_allclose(out[0][1], aligned_crop(frame, good)[1], atol=1e-4)
    for crop_q in out[1:]:  # NaN and degenerate key points -> the box crop
        np.testing.assert_array_equal(crop_q[1], quad)
    for _, q in face_crops(frame, boxes, None, "aligned") + face_crops(frame, boxes, marks, "box"):
        np.testing.assert_array_equal(q, quad)
    assert face_crops(frame, np.zeros((0, 4)), None) == [] and CROP_MODES == ("aligned", "box")
    with pytest.raises(ValueError):
        face_crops(frame, boxes, marks, "tight")


def test_quad_iou():
    sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    assert quad_iou(sq, sq) == pytest.approx(1.0)
    assert quad_iou(sq, sq + [5, 0]) == pytest.approx(50 / 150)
    assert quad_iou(sq, sq + [20, 0]) == 0.0


def test_blazeface_key_points_decoded_merged_and_mapped_to_the_frame():
    """A fake interpreter returns two overlapping detections with key points: they are averaged with the box
    weights and mapped back through the letterbox like the boxes; detect() is unchanged."""
    det = BlazeFace("blazeface", threads=1)
    k1, k2 = 512 + 6 * (8 * 3 + 4), 512 + 6 * (8 * 3 + 4) + 1  # same cell: centre (72, 56) input px
    raw = np.zeros((1, 896, 16), np.float32)
    raw[0, k1, :4] = [0.0, 0.0, 32.0, 32.0]
    raw[0, k2, :4] = [2.0, 0.0, 32.0, 32.0]
    kp = np.array([[-8, -6], [8, -6], [0, 2], [0, 9], [-15, -2], [15, -2]], np.float32)
    raw[0, k1, 4:] = kp.ravel()
    raw[0, k2, 4:] = (kp + [2, 0]).ravel()
    logits = np.full((1, 896, 1), -20.0, np.float32)
    logits[0, k1], logits[0, k2] = 4.0, 0.0  # weights sigmoid(4) and 0.5

    class FakeInterp:
        def set_tensor(self, i, x):
            pass

        def invoke(self):
            pass

        def get_tensor(self, i):
            return raw if i == det._boxes else logits

    det.interpreter = FakeInterp()
    frame = np.full((480, 640, 3), 255, np.uint8)
    boxes, scores, marks = det.detect_landmarks(frame)
    b2, s2 = det.detect(frame)
    np.testing.assert_array_equal(boxes, b2)
    np.testing.assert_array_equal(scores, s2)
    w1, w2 = 1 / (1 + np.exp(-4.0)), 0.5
    dx = 2 * w2 / (w1 + w2)  # the weighted mean shift of the merged group
    expected = ((np.array([72, 56]) + kp[:4] + [dx, 0]) - [0, 16]) / 0.2  # letterbox: scale 0.2, pad_y 16
    assert marks.shape == (1, 4, 2) and marks.dtype == np.float32
    np.testing.assert_allclose(marks[0], expected, atol=1e-2)
    np.testing.assert_allclose(boxes[0, [0, 2]], (np.array([56, 88]) + dx) / 0.2, atol=1e-2)
    # weighted_nms without key points keeps its two-array form
    assert len(weighted_nms(boxes, scores)) == 2
    assert len(weighted_nms(boxes, scores, 0.3, keypoints=marks)) == 3
    assert ssd_anchors(128, (8, 16, 16, 16)).shape == (896, 2)


def test_yunet_landmarks_mapped_to_the_four_points():
    """YuNet's 5 points -> eyes, nose, mouth centre (the mean of the two corners); no model file needed."""
    det = YuNet.__new__(YuNet)
    det._size = (640, 480)
    row = [100, 80, 120, 150, 130, 140, 190, 142, 160, 175, 138, 200, 182, 204, 0.93]

    class FakeYN:
        def detect(self, frame):
            return 1, np.array([row], np.float32)

        def setInputSize(self, size):
            pass

    det.det = FakeYN()
    frame = np.zeros((480, 640, 3), np.uint8)
    boxes, scores, marks = det.detect_landmarks(frame)
    np.testing.assert_allclose(boxes, [[100, 80, 220, 230]])
    np.testing.assert_allclose(scores, [0.93], rtol=1e-6)
    np.testing.assert_allclose(marks[0], [[130, 140], [190, 142], [160, 175], [160, 202]])
    np.testing.assert_array_equal(det.detect(frame)[0], boxes)


@pytest.mark.parametrize("name", ["blazeface", "blazeface-full"])
def test_blazeface_no_face_gives_empty_key_points(name):
    frame = cv2.GaussianBlur(np.random.default_rng(0).uniform(0, 255, (480, 640, 3)).astype(np.uint8), (0, 0), 9)
    boxes, scores, marks = make_detector(name, threads=1).detect_landmarks(frame)
    assert boxes.shape == (0, 4) and scores.shape == (0,) and marks.shape == (0, 4, 2)
    assert face_crops(frame, boxes, marks) == []


@pytest.mark.parametrize("name", ["haar", "none"])
def test_detectors_without_key_points_return_none(name):
    det = make_detector(name)
    frame = np.zeros((480, 640, 3), np.uint8)
    boxes, scores, marks = det.detect_landmarks(frame)
    assert marks is None
    b2, s2 = det.detect(frame)
    np.testing.assert_array_equal(boxes, b2)
    np.testing.assert_array_equal(scores, s2)


@needs_faces140k
@pytest.mark.parametrize("name", ["blazeface", "blazeface-full"])
def test_blazeface_key_points_on_real_faces(name):
    """Real 140k faces (both classes) in a 640x480 frame: key points inside the box, in LANDMARKS order, and the
    aligned crop covers the pasted image far better than chance."""
    from edge_dfd.images.align import _scene
    from edge_dfd.images.data import load_split

    recs = load_split(FACES140K, "test")
    det, rng = make_detector(name, threads=1), np.random.default_rng(0)
    for r in recs[::15][:10]:
        frame, (x, y, s) = _scene(cv2.imread(str(r.path)), rng)
        boxes, _, marks = det.detect_landmarks(frame)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        i = int(np.argmin(((centres - [x + s / 2, y + s / 2]) ** 2).sum(1)))
        (lx, ly), (rx, ry), (nx, ny), (mx, my) = marks[i]
        x1, y1, x2, y2 = boxes[i]
        assert all(x1 <= px <= x2 and y1 <= py <= y2 for px, py in marks[i]), (r.path, boxes[i], marks[i])
        assert lx < rx and max(ly, ry) < ny < my, (r.path, marks[i])
        truth = np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], np.float32)
        assert quad_iou(face_crops(frame, boxes[i:i + 1], marks[i:i + 1])[0][1], truth) > 0.75, r.path


@pytest.mark.parametrize("cmd", ["fit", "check"])
def test_cli_bad_folder_is_one_line(cmd, tmp_path):
    for bad in (tmp_path / "missing", tmp_path):
        p = subprocess.run([sys.executable, "-m", "edge_dfd.images.align", cmd, str(bad)], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
        assert p.returncode == 1, p.stderr
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr
        assert str(bad) in p.stderr


def test_align_imports_without_tensorflow():
    code = "import sys, edge_dfd.images.align; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
