"""Guarantee: a bad image is never fatal. Every command decodes through edge_dfd.images.preprocess, which turns
anything unreadable into a one-line ImageError naming the file; batch commands (predict, evaluate, bench,
train) skip it, list it and count it, and still process every good image. Exotic but valid images
(alpha, 16-bit, grayscale, CMYK, palette, 1x1, GIF/WebP/BMP, wrong suffix) decode to 8-bit RGB.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
from hostile import (
    SIZE,
    assert_clean_failure,
    cli_subprocess,
    image_corpus,
    reading_is_blocked,
    tiny_onnx,
    tiny_onnx_p,
    write_dataset,
    write_good,
    write_images,
)
from synth import synth_face

from edge_dfd.core.errors import ImageError
from edge_dfd.images.preprocess import MAX_PIXELS, decode_image, load_image

CORPUS = image_corpus()
BAD = [c for c in CORPUS if not c.ok]
ODD_BUT_OK = [c for c in CORPUS if c.ok]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    write_images(d, CORPUS)
    write_good(d / "good", 5)
    return d


def test_pixel_limit_holds_when_cv2_decoded_first(tmp_path):
    """OpenCV reads its pixel-limit variable once, at its first decode: a caller that decoded with cv2
    before importing edge_dfd must still get the limit (this failed in CI when test order changed)."""
    import subprocess
    import sys

    bomb = next(c for c in CORPUS if c.name == "webp_huge_header.webp")
    p = tmp_path / bomb.name
    p.write_bytes(bomb.data)
    code = (
        "import cv2, numpy as np, sys\n"
        "cv2.imdecode(cv2.imencode('.png', np.zeros((4, 4, 3), np.uint8))[1], 1)\n"
        "from edge_dfd.images.preprocess import decode_image\n"
        "from edge_dfd.core.errors import ImageError\n"
        "try:\n    decode_image(sys.argv[1])\nexcept ImageError as e:\n    print(e.reason)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}  # set by our import
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120, env=env)
    assert "pixel limit" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("kind", ["lossy", "lossless", "extended"])
def test_webp_canvas_read_from_each_header_kind(kind):
    import io

    from PIL import Image

    from edge_dfd.images.preprocess import _webp_canvas

    im = Image.fromarray(np.zeros((37, 53, 3 if kind != "extended" else 4), np.uint8))
    buf = io.BytesIO()
    im.save(buf, "WEBP", lossless=kind == "lossless", quality=80, exif=b"Exif\x00\x00" if kind == "extended" else b"")
    assert _webp_canvas(buf.getvalue()) == (53, 37)
    assert _webp_canvas(b"RIFF" + bytes(40)) is None


@pytest.mark.parametrize("item", CORPUS, ids=[c.name for c in CORPUS])
def test_decode_every_corpus_item(item, tmp_path):
    p = tmp_path / item.name
    p.write_bytes(item.data)
    if item.ok:
        img = decode_image(p)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 1
        assert load_image(p, SIZE).shape == (SIZE, SIZE, 3)
    else:
        with pytest.raises(ImageError) as e:
            decode_image(p)
        assert e.value.path == str(p) and str(p) in str(e.value)
        assert item.expected in e.value.reason
        assert "\n" not in str(e.value)


def test_pixel_limit_is_enforced_before_decoding():
    bomb = next(c for c in CORPUS if c.name == "bomb.png")
    assert len(bomb.data) < 200  # a 10-gigapixel header in a few bytes: refused without allocating anything
    with pytest.raises(ImageError, match=f"{MAX_PIXELS}-pixel limit"):
        decode_image(bomb.data, "bomb.png")


@pytest.mark.parametrize("name, max_mean_diff", [("alpha.png", 0), ("sixteen_bit.png", 0), ("cmyk.jpg", 8),
                                                 ("palette.png", 20), ("image.webp", 8), ("image.bmp", 0),
                                                 ("png_named.jpg", 0)])
def test_exotic_images_keep_their_content(name, max_mean_diff):
    """Not just 'no crash': the decoded pixels are the image (alpha dropped, 16 bit scaled, CMYK converted)."""
    src = synth_face(False, 64, 7).astype(np.int32)
    item = next(c for c in CORPUS if c.name == name)
    got = decode_image(item.data, name).astype(np.int32)
    assert got.shape == src.shape
    assert np.abs(got - src).mean() <= max_mean_diff


def test_grayscale_becomes_three_equal_channels():
    img = decode_image(next(c for c in CORPUS if c.name == "gray.png").data)
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
    assert np.array_equal(img[..., 0], synth_face(False, 64, 7)[..., 0])


def test_predict_skips_and_lists_every_bad_image(onnx_model, corpus_dir, cli_run):
    code, out, err = cli_run("predict", "--model", onnx_model, corpus_dir, "--json", "--batch-size", "4")
    assert code == 0 and "Traceback" not in err, err
    doc = json.loads(out)
    good = sorted((corpus_dir / "good").glob("*.jpg"))
    processed = {r["path"]: r["p_fake"] for r in doc["results"]}
    assert len(processed) == len(good) + len(ODD_BUT_OK)
    assert doc["summary"]["unreadable"] == len(BAD)
    assert {os.path.basename(e["path"]) for e in doc["summary"]["errors"]} == {c.name for c in BAD}
    for c in BAD:
        assert f"skipped: {corpus_dir / c.name}: " in err
    # good images got the model's real output (the tiny ONNX model is a known function of the pixels)
    x = np.stack([load_image(p, SIZE) for p in good])
    np.testing.assert_allclose([processed[str(p)] for p in good], tiny_onnx_p(x), atol=1e-5)


def test_predict_in_a_real_process_prints_no_traceback(onnx_model, corpus_dir):
    res = cli_subprocess("predict", "--model", onnx_model, corpus_dir)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stdout.strip().splitlines()) == 5 + len(ODD_BUT_OK)
    assert f"{5 + len(ODD_BUT_OK)} images:" in res.stderr and f"{len(BAD)} unreadable" in res.stderr


def test_special_files_are_skipped_not_hung(onnx_model, tmp_path, cli_run):
    """A FIFO or device named .jpg would block a plain read forever; a folder named .jpg is not an image."""
    good = write_good(tmp_path, 1)[0]
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    code, out, err = cli_run("predict", "--model", onnx_model, good, fifo, "/dev/zero", tmp_path / "absent.jpg",
                             tmp_path / "nomatch*.png", "--json")
    assert code == 0 and "Traceback" not in err, err
    doc = json.loads(out)
    assert [r["path"] for r in doc["results"]] == [str(good)]
    reasons = {e["path"]: e["reason"] for e in doc["summary"]["errors"]}
    assert "not a regular file" in reasons[str(fifo)] and "not a regular file" in reasons["/dev/zero"]
    assert reasons[str(tmp_path / "absent.jpg")] == "file not found"
    assert "no file matches" in reasons[str(tmp_path / "nomatch*.png")]
    code, _, err = cli_run("predict", "--model", onnx_model, folder)
    assert_clean_failure(code, err, 1, "folder contains no images", str(folder))


def test_unreadable_permissions(onnx_model, tmp_path, cli_run, monkeypatch):
    good = write_good(tmp_path, 2)
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(good[0].read_bytes())
    locked.chmod(0)
    if not reading_is_blocked(locked):
        # running as root: chmod 000 does not stop reads, so make the read fail the way the kernel would
        real = pathlib.Path.read_bytes

        def read_bytes(self):
            if str(self) == str(locked):
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    try:
        code, out, err = cli_run("predict", "--model", onnx_model, tmp_path, "--json")
    finally:
        locked.chmod(0o644)
    assert code == 0 and "Traceback" not in err, err
    doc = json.loads(out)
    assert doc["summary"]["images"] == 2
    assert doc["summary"]["errors"] == [{"path": str(locked), "reason": "permission denied"}]


@pytest.fixture(scope="module")
def dirty_dataset(tmp_path_factory):
    """140k layout: 4 good images per class per split + every bad corpus item in train and test."""
    root = tmp_path_factory.mktemp("dirty")
    extra = {s: [(f"{s}/bad/{c.name}", i % 2, c.data) for i, c in enumerate(BAD)] for s in ("train", "test")}
    return write_dataset(root, per_class=4, extra_rows=extra)


def test_evaluate_skips_bad_images(onnx_model, dirty_dataset, tmp_path, cli_run):
    code, out, err = cli_run("evaluate", onnx_model, "--data", dirty_dataset, "--out", tmp_path / "ev", "--json")
    assert code == 0 and "Traceback" not in err, err
    rep = json.loads(out)
    assert rep["n"] == 8
    assert sorted(os.path.basename(s["path"]) for s in rep["skipped"]) == sorted(c.name for c in BAD)
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["n"] == 8


def test_bench_counts_skipped_images(onnx_model, dirty_dataset, tmp_path, cli_run):
    code, out, err = cli_run("bench", onnx_model, "--data", dirty_dataset, "--runs", "3", "--warmup", "0",
                             "--out", tmp_path / "b", "--json")
    assert code == 0 and "Traceback" not in err, err
    (row,) = json.loads(out)["rows"]
    assert row["status"] == "ok" and row["n"] == 8 and row["skipped_images"] == len(BAD)


@pytest.mark.slow
def test_train_skips_bad_images(dirty_dataset, tmp_path, cli_run):
    pytest.importorskip("tensorflow")
    code, out, err = cli_run("train", "--data", dirty_dataset, "--out", tmp_path / "run", "--epochs", "1",
                             "--img-size", "32", "--batch-size", "4", "--no-augment", "--json")
    assert code == 0 and "Traceback" not in err, err
    res = json.loads(out)
    skipped = sorted(os.path.relpath(p, dirty_dataset / "real_vs_fake" / "real-vs-fake") for p in res["skipped"])
    assert skipped == sorted(f"{s}/bad/{c.name}" for s in ("test", "train") for c in BAD)
    assert res["test"]["n"] == 8
    assert "skipped" in err and "unreadable image" in err


def test_no_images_anywhere(onnx_model, tmp_path, cli_run):
    empty = tmp_path / "empty"
    (empty / "test" / "real").mkdir(parents=True)
    (empty / "test" / "fake").mkdir(parents=True)
    code, _, err = cli_run("predict", "--model", onnx_model, empty)
    assert_clean_failure(code, err, 1, "folder contains no images")
    code, _, err = cli_run("evaluate", onnx_model, "--data", empty, "--out", tmp_path / "ev")
    assert_clean_failure(code, err, 1, "no images", str(empty / "test"))
    code, _, err = cli_run("data", empty)
    assert_clean_failure(code, err, 1, "no images")
    assert not (tmp_path / "ev").exists()
