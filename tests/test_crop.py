"""The model says how to feed it: crop mode and margin come from the model's metadata (written at training time,
copied by convert, a fallback for older files in one place), and every face is cut by one crop function."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge_dfd.core.errors import ModelError
from edge_dfd.core.meta import DEFAULT_MARGIN, LEGACY_BOX_ARCHS, ModelMeta, crop_spec, read_meta
from edge_dfd.images.align import TEMPLATE, aligned_crop
from edge_dfd.images.crop import crop_bounds, crop_face
from edge_dfd.images.faces import square_box
from edge_dfd.images.preprocess import prepare_batch

ASSETS = Path(__file__).resolve().parents[1] / "edge_dfd" / "assets"
BOX = np.array([250, 150, 370, 280], np.float32)
# key points of a face tilted by ~12 degrees inside BOX: the aligned crop is rotated, the box crop is not
_ROT = cv2.getRotationMatrix2D((0.5, 0.6), 12, 1.0)
MARKS = ((TEMPLATE @ _ROT[:, :2].T + _ROT[:, 2]) * 150 + np.array([235, 130])).astype(np.float32)


def frame() -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    return cv2.resize(small, (640, 480), interpolation=cv2.INTER_LINEAR)  # textured, every crop differs


class Recorder:
    """A backend whose metadata states (or omits) the crop; records every batch it is given."""

    input_size = 32

    def __init__(self, arch="efficientnet_lite0_single_pass", crop_mode=None, crop_margin=None, p=0.5):
        self.meta = SimpleNamespace(arch=arch, threshold=0.5, input_size=32, crop_mode=crop_mode,
                                    crop_margin=crop_margin)
        self.threshold, self.path, self.p, self.batches = 0.5, Path(f"{arch}.stub"), p, []

    def predict(self, batch):
        self.batches.append(np.asarray(batch).copy())
        return np.full(len(batch), self.p, np.float32)


class WithMarks:
    """A detector with one fixed face and its key points."""

    name = "fixed"

    def detect_landmarks(self, f):
        return BOX[None].copy(), np.ones(1, np.float32), MARKS[None].copy()

    def detect(self, f):
        return BOX[None].copy(), np.ones(1, np.float32)


def _first_face(backend, **kw):
    from edge_dfd.video.pipeline import LivePipeline

    img = frame()
    faces = LivePipeline(backend, WithMarks(), **kw).process(img, t=0.0)
    assert len(faces) == 1 and len(backend.batches) == 1
    return img, faces[0], backend.batches[0]


def test_metadata_box_gets_box_crops_with_its_margin():
    img, face, batch = _first_face(Recorder(crop_mode="box", crop_margin=0.5))
    x1, y1, x2, y2 = square_box(BOX, img.shape, 0.5)
    assert face.crop == (x1, y1, x2, y2) and x2 - x1 == 260  # 130-px box side x (1 + 2 x 0.5)
    expected = cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(batch, prepare_batch([expected], 32))


def test_metadata_aligned_gets_aligned_crops():
    img, face, batch = _first_face(Recorder(arch="mobilenet_v2_single_pass", crop_mode="aligned"))
    crop, quad = aligned_crop(img, MARKS)  # the metadata wins over the arch's fallback (box)
    assert face.crop == crop_bounds(quad) and face.crop != square_box(BOX, img.shape, DEFAULT_MARGIN)
    np.testing.assert_array_equal(batch, prepare_batch([crop], 32))


def test_file_without_crop_fields_gets_todays_crop_by_arch():
    img, face, batch = _first_face(Recorder(arch=LEGACY_BOX_ARCHS[0]))  # box, DEFAULT_MARGIN
    x1, y1, x2, y2 = square_box(BOX, img.shape, DEFAULT_MARGIN)
    assert face.crop == (x1, y1, x2, y2)
    np.testing.assert_array_equal(batch, prepare_batch([cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)], 32))
    img, face, batch = _first_face(Recorder(arch="efficientnet_lite0_single_pass"))  # aligned
    np.testing.assert_array_equal(batch, prepare_batch([aligned_crop(img, MARKS)[0]], 32))


def test_crop_spec_reads_the_metadata_and_falls_back_in_one_place():
    stated = crop_spec(ModelMeta(arch=LEGACY_BOX_ARCHS[0], input_size=64, crop_mode="aligned", crop_margin=0.2))
    assert tuple(asdict(stated).values()) == ("aligned", 0.2, 64, "metadata")
    old = ModelMeta.from_json(json.dumps({"arch": "mobilenet_v2_single_pass", "input_size": 224}))  # no crop keys
    assert (old.crop_mode, old.crop_margin) == (None, None)
    s = crop_spec(old)
    assert (s.mode, s.margin, s.size, s.source) == ("box", DEFAULT_MARGIN, 224, "fallback: arch mobilenet_v2_single_pass")
    for arch in ("efficientnet_lite0_single_pass", "mobilenet_v2+efficientnet_lite0_multicrop", "cnn", ""):
        assert crop_spec(ModelMeta(arch=arch)).mode == "aligned"
    assert (crop_spec(None).mode, crop_spec(None).margin) == ("aligned", DEFAULT_MARGIN)  # no metadata at all


@pytest.mark.parametrize("path", ["default/detector.keras", "default/detector_int8.tflite", "ten_pass/detector_int8.tflite"])
def test_bundled_models_keep_todays_crop_through_the_fallback(path):
    """The shipped files predate the crop fields (and are not rewritten): the fallback gives them aligned crops,
    the crop `--align auto` gave them before, with the 0.33 margin."""
    meta = read_meta(ASSETS / path)
    assert meta.crop_mode is None and meta.crop_margin is None
    s = crop_spec(meta)
    assert (s.mode, s.margin, s.size) == ("aligned", 0.33, 256 if "ten_pass" in path else 224)
    assert s.source.startswith("fallback")


def test_crop_fields_are_validated_and_travel_in_every_container(tmp_path):
    with pytest.raises(ModelError, match="crop_mode='tight'"):
        ModelMeta(crop_mode="tight").validate()
    with pytest.raises(ModelError, match="crop_margin=3"):
        ModelMeta(crop_margin=3).validate()
    with pytest.raises(ModelError, match="crop_margin=True"):
        ModelMeta(crop_margin=True).validate()
    from benchmarks.synth import tiny_onnx
    from edge_dfd.core.meta import tflite_meta_from_bytes, tflite_with_meta, write_meta

    onnx = tiny_onnx(tmp_path / "m.onnx")
    meta = read_meta(onnx)
    meta.crop_mode, meta.crop_margin = "box", 0.4
    write_meta(onnx, meta)
    assert (read_meta(onnx).crop_mode, read_meta(onnx).crop_margin) == ("box", 0.4)
    buf = (ASSETS / "blazeface" / "face_detection_short_range.tflite").read_bytes()  # any small flatbuffer
    got = tflite_meta_from_bytes(tflite_with_meta(buf, ModelMeta(crop_mode="box", crop_margin=1).to_json().encode()),
                                 "t.tflite")
    assert (got.crop_mode, got.crop_margin) == ("box", 1.0)


def test_convert_copies_the_crop_into_every_format():
    from edge_dfd.core.formats import FORMATS
    from edge_dfd.export.convert import _export_meta

    src = ModelMeta(arch="mobilenet_v2_single_pass", input_size=224, crop_mode="aligned", crop_margin=0.25)
    for fmt in FORMATS.values():
        out = _export_meta(src, fmt, 224, "ab" * 32, 0.4, None, 17)
        assert (out.format, out.crop_mode, out.crop_margin) == (fmt.name, "aligned", 0.25)


def test_escalation_model_gets_the_crop_its_own_metadata_states():
    """--escalate: the first model says aligned, the second box: each classifies its own crop of the face."""
    from edge_dfd.runtime.cascade import GRID, TABLE_VERSION, Cascade
    from edge_dfd.video.escalation import Escalation
    from edge_dfd.video.pipeline import LivePipeline

    first, second = Recorder(crop_mode="aligned"), Recorder(arch="second", crop_mode="box", crop_margin=0.1, p=0.9)
    table = {"version": TABLE_VERSION, "rule": "replace", "fractions": GRID, "band": [2.0 * f for f in GRID],
             "first": {"sha256": "a"}, "second": {"sha256": "b"}, "source": "test", "n": 101}
    pipe = LivePipeline(first, WithMarks(), classify_hz=None, escalation=Escalation(Cascade(first, second, table, 1.0),
                                                                                     rate_hz=0))
    assert pipe._esc_crop == ("box", 0.1)
    img = frame()
    for i in range(4):
        pipe.process(img, t=i / 10)
    assert len(second.batches) == 1 and len(second.batches[0]) == 3  # after 3 classifications: its 3 sharpest crops
    x1, y1, x2, y2 = square_box(BOX, img.shape, 0.1)
    box_rgb = cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(second.batches[0], prepare_batch([box_rgb] * 3, 32))
    np.testing.assert_array_equal(first.batches[0], prepare_batch([aligned_crop(img, MARKS)[0]], 32))
    same = LivePipeline(first, WithMarks(), escalation=Escalation(Cascade(first, first, table, 1.0)))
    assert same._esc_crop is None  # same crop: cut once
    forced = LivePipeline(first, WithMarks(), align="box", margin=0.2,
                          escalation=Escalation(Cascade(first, second, table, 1.0)))
    assert forced._esc_crop is None  # explicit --align / --margin apply to both models


def test_crop_face_rgb_and_bgr_inputs_give_the_same_crop():
    img = frame()
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    for mode in ("aligned", "box"):
        a, qa = crop_face(img, BOX, MARKS, mode)
        b, qb = crop_face(rgb, BOX, MARKS, mode, bgr=False)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(qa, qb)
    small, _ = crop_face(img, BOX, MARKS, "aligned", size=48)
    assert small.shape == (48, 48, 3)
    with pytest.raises(ValueError, match="unknown crop mode 'tight'"):
        crop_face(img, BOX, None, "tight")


def _live_crop_before(img, box, rng):
    """edge_dfd.train.augment.live_crop as it was before it used crop_face (verbatim)."""
    from edge_dfd.images import perturb as P
    from edge_dfd.train.augment import _fill

    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * rng.uniform(0.15, 0.55))
    cx = (x1 + x2) / 2 + rng.normal(0, 0.04) * side
    cy = (y1 + y2) / 2 + rng.normal(0, 0.04) * side
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    pt, pl = max(0, -top), max(0, -left)
    pb, pr = max(0, top + s - h), max(0, left + s - w)
    mode, value = _fill(rng)
    ext = P.pad(img, pt, pb, pl, pr, mode, value) if (pt or pb or pl or pr) else img
    sq = ext[top + pt: top + pt + s, left + pl: left + pl + s]
    return cv2.resize(sq, (w, h), interpolation=cv2.INTER_AREA if s > w else cv2.INTER_LINEAR)


def test_training_live_crop_is_crop_face_and_unchanged():
    from edge_dfd.train.augment import live_crop

    img = cv2.cvtColor(frame()[:200, :240], cv2.COLOR_BGR2RGB)
    for seed in range(40):  # boxes inside, at the edges and partly outside: every fill mode and a pad side
        box = np.array([seed * 5 - 30, 40 + seed, seed * 5 + 60, 130 + seed], np.float32)
        new = live_crop(img, box, np.random.default_rng(seed))
        np.testing.assert_array_equal(new, _live_crop_before(img, box, np.random.default_rng(seed)))
        assert new.shape == img.shape
