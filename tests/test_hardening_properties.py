"""Property-based guarantees (hypothesis): for ANY bytes,

* ``decode_image`` returns an (H, W, 3) uint8 RGB array or raises ImageError naming the input - never
  another exception, never a hang (random bytes, and valid images with bytes flipped, cut or inserted);
* a split CSV either loads into records that are exactly its rows (labels 0/1, paths inside the images
  folder, nothing silently dropped) or raises one DataError naming the CSV.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
from hostile import HEADER, IMAGES_SUBDIR, good_jpeg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_dfd.core.errors import DataError, ImageError
from edge_dfd.images import data
from edge_dfd.images.preprocess import decode_image

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _encoded_samples() -> list[bytes]:
    import cv2
    from PIL import Image
    from synth import synth_face

    rgb = synth_face(True, 24, 3)
    out = [good_jpeg(size=24)]
    for ext in (".png", ".bmp", ".webp"):
        out.append(cv2.imencode(ext, rgb[..., ::-1])[1].tobytes())
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "GIF")
    return out + [buf.getvalue()]


SAMPLES = _encoded_samples()


def _check_decodes_or_image_error(data_: bytes):
    try:
        img = decode_image(data_, "fuzz.img")
    except ImageError as exc:
        assert exc.path == "fuzz.img" and "\n" not in str(exc)
        return None
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] >= 1 and img.shape[1] >= 1
    return img


@SETTINGS
@given(st.binary(max_size=2048))
def test_decode_arbitrary_bytes(blob):
    _check_decodes_or_image_error(blob)


@SETTINGS
@given(st.sampled_from(range(len(SAMPLES))), st.data())
def test_decode_damaged_images(which, draw):
    blob = bytearray(SAMPLES[which])
    for _ in range(draw.draw(st.integers(1, 6), label="edits")):
        kind = draw.draw(st.sampled_from(["flip", "cut", "insert", "zero"]), label="kind")
        at = draw.draw(st.integers(0, max(len(blob) - 1, 0)), label="at")
        if kind == "flip" and blob:
            blob[at] ^= draw.draw(st.integers(1, 255), label="mask")
        elif kind == "cut":
            del blob[at:]
        elif kind == "insert":
            blob[at:at] = draw.draw(st.binary(min_size=1, max_size=64), label="bytes")
        elif kind == "zero":
            blob[at : at + 16] = bytes(min(16, len(blob) - at))
    _check_decodes_or_image_error(bytes(blob))


# ---------------------------------------------------------------- CSV


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A dataset folder with four real images; each example overwrites test.csv."""
    r = tmp_path_factory.mktemp("fuzzcsv")
    for rel in ("test/real/a.jpg", "test/fake/b.jpg", "test/c.jpg", "d.jpg"):
        p = r / IMAGES_SUBDIR / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(good_jpeg(size=16))
    return r


def _load(root, blob: bytes):
    (root / "test.csv").write_bytes(blob)
    try:
        recs = data.load_split(root, "test")
    except DataError as exc:
        msg = str(exc)
        assert str(root / "test.csv") in msg and "\n" not in msg
        return None
    base = os.path.realpath(root / IMAGES_SUBDIR)
    for r in recs:
        assert r.label in (0, 1) and os.path.realpath(r.path).startswith(base + os.sep) and r.path.is_file()
    return recs


@SETTINGS
@given(st.binary(max_size=1024))
def test_csv_arbitrary_bytes(root, blob):
    _load(root, blob)


@SETTINGS
@given(st.binary(max_size=512))
def test_csv_valid_header_then_arbitrary_bytes(root, blob):
    _load(root, (",".join(HEADER) + "\n").encode() + blob)


CELL = st.one_of(st.text(max_size=12), st.sampled_from(["0", "1", "real", "fake", "test/real/a.jpg",
                                                       "test/fake/b.jpg", "test/c.jpg", "d.jpg", "../d.jpg", "/d.jpg",
                                                       " 1 ", "", "test/real/../c.jpg"]))


@SETTINGS
@given(st.lists(st.lists(CELL, min_size=0, max_size=8), max_size=8))
def test_csv_rows_are_all_kept_or_refused(root, rows):
    """Whatever the cells, a CSV that loads yields exactly one record per data row: nothing silently dropped."""
    buf = io.StringIO()
    csv.writer(buf).writerows([HEADER] + rows)
    recs = _load(root, buf.getvalue().encode())
    if recs is not None:
        assert len(recs) == len(rows)
        for rec, row in zip(recs, rows):
            assert rec.label == int(row[3].strip()) and str(rec.path).endswith(row[5].strip())


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["test/real/a.jpg", "test/fake/b.jpg", "test/c.jpg", "d.jpg"]),
                          st.sampled_from([0, 1])), min_size=1, max_size=4, unique_by=lambda t: t[0]))
def test_csv_valid_rows_always_load(root, rows):
    buf = io.StringIO()
    csv.writer(buf).writerows([HEADER] + [[i, "o", i, lab, "real" if lab else "fake", rel]
                                          for i, (rel, lab) in enumerate(rows)])
    recs = _load(root, buf.getvalue().encode())
    assert recs is not None and [(r.path.name, r.label) for r in recs] == [(os.path.basename(p), lab)
                                                                           for p, lab in rows]
