"""Face detectors: BlazeFace anchors / decoding / NMS / letterbox mapping, Haar, none, YuNet errors, geometry."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from conftest import FACES140K, needs_faces140k
from stubs import background, cartoon_face

from edge_dfd.core.errors import EdgeDFDError, ModelError
from edge_dfd.images.faces import (
    BLAZEFACE,
    BlazeFace,
    decode_ssd,
    iou_matrix,
    letterbox,
    make_detector,
    square_box,
    ssd_anchors,
    weighted_nms,
)


def test_anchor_layout_matches_mediapipe():
    short = ssd_anchors(128, (8, 16, 16, 16), 1.0)
    full = ssd_anchors(192, (4,), 0.0)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8: 16x16 cells x 2 anchors, row-major (y outer, x inner), then stride 16: 8x8 cells x 6 anchors
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[1], short[0])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[32], [0.5 / 16, 1.5 / 16])
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[1], [1.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(full[-1], [47.5 / 48, 47.5 / 48])


def test_bundled_models_output_shapes_match_anchors():
    for name, _spec in BLAZEFACE.items():
        det = BlazeFace(name, threads=1)
        assert len(det.anchors) == {"blazeface": 896, "blazeface-full": 2304}[name]
        assert det.spec.input_size == {"blazeface": 128, "blazeface-full": 192}[name]


def test_decode_ssd_one_anchor():
    anchors = ssd_anchors(128, (8, 16, 16, 16))
    raw = np.zeros((896, 16), np.float32)
    scores = np.full((896, 1), -10.0, np.float32)
    k = 2 * (16 * 5 + 7)  # cell x=7, y=5 of the stride-8 map: centre (7.5/16, 5.5/16)
    raw[k, :4] = [4.0, -2.0, 40.0, 48.0]  # dx, dy, w, h in input pixels
    scores[k] = 2.0
    boxes, s = decode_ssd(raw, scores, anchors, 128, min_score=0.5)
    assert boxes.shape == (1, 4)
    cx, cy = 7.5 / 16 + 4 / 128, 5.5 / 16 - 2 / 128
    np.testing.assert_allclose(boxes[0], [cx - 20 / 128, cy - 24 / 128, cx + 20 / 128, cy + 24 / 128], atol=1e-6)
    np.testing.assert_allclose(s, [1 / (1 + np.exp(-2.0))], rtol=1e-6)
    raw[k, 2] = -5.0  # negative width: dropped
    assert decode_ssd(raw, scores, anchors, 128)[0].shape == (0, 4)


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    boxes = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [100, 100, 140, 140]], np.float32)
    scores = np.array([0.6, 0.9, 0.8], np.float32)
    out, s = weighted_nms(boxes, scores, 0.3)
    assert len(out) == 2
    np.testing.assert_allclose(s, [0.9, 0.8])
    np.testing.assert_allclose(out[0], (boxes[0] * 0.6 + boxes[1] * 0.9) / 1.5, atol=1e-5)
    np.testing.assert_allclose(out[1], boxes[2])
    np.testing.assert_allclose(iou_matrix(boxes[:1], boxes[:1]), [[1.0]])
    assert iou_matrix(boxes[:1], boxes[2:]).item() == 0.0


def test_blazeface_maps_letterboxed_boxes_back_to_frame_pixels():
    """A fake interpreter returns one known detection; the box must land at the right place in a 640x480 frame."""
    det = BlazeFace("blazeface", threads=1)
    k = 512 + 6 * (8 * 3 + 4)  # stride-16 map cell x=4, y=3: centre (4.5/8, 3.5/8) = (72, 56) input px
    raw = np.zeros((1, 896, 16), np.float32)
    raw[0, k, :4] = [0.0, 0.0, 32.0, 32.0]
    logits = np.full((1, 896, 1), -20.0, np.float32)
    logits[0, k] = 4.0
    fed = {}

    class FakeInterp:
        def set_tensor(self, i, x):
            fed["x"] = x

        def invoke(self):
            pass

        def get_tensor(self, i):
            return raw if i == det._boxes else logits

    det.interpreter = FakeInterp()
    boxes, scores = det.detect(np.full((480, 640, 3), 255, np.uint8))
    # letterbox: scale 128/640 = 0.2, image 128x96, padded 16 px top and bottom
    x = fed["x"]
    assert x.shape == (1, 128, 128, 3) and x.dtype == np.float32
    assert x[0, 0].max() == -1.0 and x[0, 64].min() == pytest.approx(1.0)  # padding black, image white in [-1, 1]
    np.testing.assert_allclose(boxes, [[(56 - 0) / 0.2, (40 - 16) / 0.2, 88 / 0.2, (72 - 16) / 0.2]], atol=1e-3)
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-4.0)))


def test_letterbox_geometry():
    img, scale, px, py = letterbox(np.zeros((100, 300, 3), np.uint8), 192)
    assert img.shape == (192, 192, 3) and scale == pytest.approx(0.64) and px == 0 and py == 64


@pytest.mark.parametrize("name", ["blazeface", "blazeface-full", "haar"])
def test_no_face_in_a_blank_frame(name):
    boxes, scores = make_detector(name, threads=1).detect(background())
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_haar_finds_a_drawn_face():
    frame = background()
    frame[150:310, 300:460] = cv2.cvtColor(cartoon_face(False, 160), cv2.COLOR_RGB2BGR)
    boxes, scores = make_detector("haar").detect(frame)
    assert len(boxes) == 1 and scores[0] == 1.0
    assert iou_matrix(boxes, [[300, 150, 460, 310]]).item() > 0.6


@needs_faces140k
@pytest.mark.parametrize("name", ["blazeface", "blazeface-full"])
def test_blazeface_finds_real_faces(name):
    """Real 140k faces (both classes) pasted at 200 px into a 640x480 frame: one box each, inside the face."""
    root = FACES140K
    rows = list(csv.DictReader(open(root / "test.csv")))[::15][:10]
    det = make_detector(name, threads=1)
    for r in rows:
        img = cv2.imread(str(root / "real_vs_fake" / "real-vs-fake" / r["path"]))
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[140:340, 300:500] = cv2.resize(img, (200, 200), interpolation=cv2.INTER_AREA)
        boxes, scores = det.detect(frame)
        assert len(boxes) == 1, (r["path"], boxes, scores)
        x1, y1, x2, y2 = boxes[0]
        assert 300 <= x1 < x2 <= 500 and 140 <= y1 < y2 <= 340 and 60 < x2 - x1 < 200, (r["path"], boxes[0])
        assert scores[0] > 0.6


def test_none_detector_and_square_box():
    boxes, scores = make_detector("none").detect(np.zeros((480, 640, 3), np.uint8))
    np.testing.assert_array_equal(boxes, [[80, 0, 560, 480]])
    assert square_box([100, 100, 200, 160], (480, 640), 0.25) == (75, 55, 225, 205)  # 100 * 1.5 = 150 px side
    assert square_box([0, 0, 50, 50], (480, 640), 0.5) == (0, 0, 100, 100)  # shifted inside, not padded
    assert square_box([600, 400, 640, 480], (480, 640), 1.0) == (400, 240, 640, 480)  # 240 px, at the corner
    assert square_box([0, 0, 640, 480], (480, 640), 0.5) == (80, 0, 560, 480)  # never larger than the frame


def test_detector_spec_errors(tmp_path):
    with pytest.raises(EdgeDFDError, match="unknown face detector 'blazefase'. Did you mean 'blazeface'"):
        make_detector("blazefase")
    with pytest.raises(ModelError, match=r"nope\.onnx: YuNet model file not found"):
        make_detector(f"yunet:{tmp_path / 'nope.onnx'}")
    with pytest.raises(EdgeDFDError, match="needs a model file"):
        make_detector("yunet")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="junk.onnx: OpenCV cannot load this YuNet model"):
        make_detector(f"yunet:{junk}")


def test_cli_bad_faces_value(cli_run, tmp_path):
    code, _, err = cli_run("live", "--source", tmp_path, "--faces", "hair", "--model", tmp_path / "m.onnx")
    assert code == 1 and err.startswith("error: unknown face detector 'hair'") and "Did you mean 'haar'" in err
