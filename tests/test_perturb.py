"""edge_dfd.images.perturb (bench --robustness rows) and edge_dfd.train.augment (the training views): real pixel
checks on synthetic images - sizes, where the face ends up, what the border and compression do."""

from __future__ import annotations

import numpy as np
import pytest

from edge_dfd.images import perturb as P
from edge_dfd.train import augment as A


def _scene(size=128):
    """A smooth gradient background with a bright square 'face' in the middle 30 %."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 90)], -1).astype(np.uint8)
    q = round(size * 0.35)
    img[q:size - q, q:size - q] = 250
    return img


def _bright_side(img) -> float:
    """Side length of the bright square, from its pixel count."""
    return float(np.sqrt((img.min(axis=2) > 200).sum()))


@pytest.mark.parametrize("name", P.PERTURBATIONS)
def test_every_perturbation_keeps_size_and_dtype(name):
    img = _scene()
    out = P.perturb(img, name)
    assert out.shape == img.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - img.astype(int)).mean()
    assert 0.0 < diff < 40.0, (name, diff)  # it changed the image, and it is still the same image


def test_zoom_out_shrinks_the_face_to_the_asked_fraction():
    img = _scene(200)
    assert _bright_side(img) == pytest.approx(60, abs=1)
    for fill in (0.8, 0.65):
        assert _bright_side(P.perturb(img, f"zoom{fill}")) == pytest.approx(60 * fill, abs=2)


def test_border_is_grey_and_jpeg_error_grows_as_quality_falls():
    img = _scene(128)
    framed = P.perturb(img, "border8")
    assert np.all(framed[:6, :6] == 127) and np.all(framed[-6:, -6:] == 127)
    errs = [np.abs(P.perturb(img, f"jpeg{q}").astype(int) - img).mean() for q in (90, 75, 50, 30)]
    assert errs == sorted(errs) and errs[-1] > errs[0] * 1.5


def test_mjpg_round_trip_is_close_and_unknown_names_are_refused():
    img = _scene(96)
    out = P.mjpg(img)
    assert np.abs(out.astype(int) - img).mean() < 4.0
    with pytest.raises(ValueError, match="unknown perturbation 'zoomx'"):
        P.perturb(img, "zoomx")
    with pytest.raises(ValueError, match="unknown perturbation 'sharpen'"):
        P.perturb(img, "sharpen")


def test_pad_reflects_further_than_the_image_itself():
    img = _scene(32)
    big = P.pad(img, 70, 70, 70, 70, "reflect")
    assert big.shape == (172, 172, 3)
    np.testing.assert_array_equal(big[70:102, 70:102], img)
    blurred = P.pad(img, 10, 10, 10, 10, "blurred")
    np.testing.assert_array_equal(blurred[10:42, 10:42], img)


def test_augment_is_reproducible_and_keeps_the_size():
    img = _scene(128)
    box = (32, 32, 96, 96)
    a = [A.augment(img, np.random.default_rng(7), box) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    views = [A.augment(img, np.random.default_rng(s), box) for s in range(40)]
    assert all(v.shape == img.shape and v.dtype == np.uint8 for v in views)
    changed = sum(np.abs(v.astype(int) - img).mean() > 0.5 for v in views)
    assert 25 <= changed <= 40  # about one view in six stays clean (flips aside)


def test_augment_cuts_each_view_at_the_model_size():
    img = _scene(256)[:, :240]  # not square: the views are square anyway
    box = (90, 90, 160, 160)
    views = [A.augment(img, np.random.default_rng(s), box, 96) for s in range(60)]
    assert all(v.shape == (96, 96, 3) and v.dtype == np.uint8 for v in views)
    # clean views (about one in six) are the image as inference sees it: centre square, INTER_AREA, maybe flipped
    from edge_dfd.images.preprocess import resize_square

    ref = resize_square(img, 96).astype(int)
    clean = [v for v in views if min(np.abs(v - ref).max(), np.abs(v[:, ::-1] - ref).max()) <= 1]
    assert 4 <= len(clean) <= 20


def test_fit_is_inference_resize_within_one_grey_level():
    import cv2

    rng = np.random.default_rng(0)
    for side, size in ((256, 224), (300, 224), (511, 224), (100, 224), (224, 224), (97, 40)):
        img = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), 1.0)
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        ref = cv2.resize(img, (size, size), interpolation=interp).astype(int)
        out = A.fit(img, size)
        assert out.shape == (size, size, 3) and out.dtype == np.uint8
        assert np.abs(out - ref).max() <= 1, (side, size)


def test_zoom_view_shrinks_the_face_and_extends_its_surroundings():
    img = _scene(200)  # the bright face: 60 px of 200
    for fill, modes in ((1.0, set(A.FILLS)), (0.8, set(A.FILLS)), (0.55, ("replicate", "constant"))):
        for mode in modes:  # (a reflection of a 0.55 zoom reaches the face itself: a second face)
            view = A.zoom(img, fill, mode, (0, 0, 0), 0.0, 0.0, 100)
            assert view.shape == (100, 100, 3)
            assert _bright_side(view) == pytest.approx(30 * fill, abs=2), (fill, mode)
    shifted = A.zoom(img, 0.5, "constant", (0, 0, 0), 1.0, 0.0, 100)  # dx=1: the face at the right edge
    assert shifted[:, :50].max() == 0 and shifted[:, 50:].max() > 200


def test_blurred_fill_looks_like_a_full_resolution_blur():
    import cv2

    img = cv2.resize(_scene(64), (400, 400), interpolation=cv2.INTER_NEAREST)
    soft = P._soft(img, 9.0)
    full = cv2.GaussianBlur(img, (0, 0), 9.0).astype(int)
    assert soft.shape == img.shape and np.abs(soft - full).mean() < 2.0  # grey levels, on 0..255
    assert np.abs(img.astype(int) - full).mean() > 5 * np.abs(soft - full).mean()


def test_live_crop_frames_the_box_with_a_margin():
    img = _scene(200)
    rng = np.random.default_rng(0)
    sides = [_bright_side(A.live_crop(img, (70, 70, 130, 130), rng)) for _ in range(20)]
    # the 60-px box plus 0.15..0.55 of its side on every side, resized to 200 px: the face spans 95..154 px
    assert all(90 <= s <= 160 for s in sides) and np.std(sides) > 3


def test_sensor_noise_is_gaussian_reproducible_and_saturating():
    grey = np.full((256, 256, 3), 128, np.uint8)
    a = A.sensor_noise(grey, np.random.default_rng(3), 5.0).astype(float) - 128
    assert abs(a.mean()) < 0.1 and a.std() == pytest.approx(5.0, rel=0.03)
    again = A.sensor_noise(grey, np.random.default_rng(3), 5.0).astype(float) - 128
    np.testing.assert_array_equal(again, a)  # the same seed: the same noise
    b = A.sensor_noise(grey, np.random.default_rng(4), 5.0).astype(float) - 128
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05  # another draw: another window of the bank
    white = A.sensor_noise(np.full((64, 64, 3), 254, np.uint8), np.random.default_rng(0), 8.0)
    assert white.max() == 255 and white.dtype == np.uint8  # saturates, never wraps
    big = A.sensor_noise(np.full((400, 500, 3), 128, np.uint8), np.random.default_rng(0), 5.0).astype(float) - 128
    assert big.std() == pytest.approx(5.0, rel=0.03)  # larger than a bank field: fresh draws
