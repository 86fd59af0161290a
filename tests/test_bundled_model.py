"""The bundled default detector as shipped: its files exist, carry consistent metadata and agree with each other.

Runtime-only (no TensorFlow): loads the .tflite and .onnx files through edge_dfd.runtime.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_dfd import zoo
from edge_dfd.formats import EXPORT_FORMATS, FORMATS
from edge_dfd.meta import read_meta
from edge_dfd.runtime import load_model

DIR = zoo.DEFAULT_DIR


def test_every_export_format_is_bundled_with_one_source_and_threshold():
    metas = {f: read_meta(DIR / FORMATS[f].filename("detector")) for f in EXPORT_FORMATS}
    assert all(m is not None for m in metas.values()), [f for f, m in metas.items() if m is None]
    assert {m.format for m in metas.values()} == set(EXPORT_FORMATS)
    assert len({m.source_sha256 for m in metas.values()}) == 1  # all converted from the same .keras file
    # float files share the Keras threshold; each int8 file may carry its own, re-matched by `convert` on its
    # calibration images (recorded with the agreement it bought)
    floats = {round(m.threshold, 6) for f, m in metas.items() if not FORMATS[f].quantized}
    assert len(floats) == 1 and 0.0 < (t_keras := floats.pop()) < 1.0
    for f, m in metas.items():
        if FORMATS[f].quantized and round(m.threshold, 6) != t_keras:
            match = m.extra["threshold_match"]
            assert match["keras_threshold"] == pytest.approx(t_keras, abs=1e-6) and match["images"] >= 50
            assert match["agreement_after"] > match["agreement_before"] and 0.0 < m.threshold < 1.0
            assert m.verification["export_threshold"] == m.threshold
    assert all(m.input_size == 256 and m.verification is not None for m in metas.values())
    assert metas["tflite-int8"].calibration and metas["tflite-int8"].calibration.get("size", 0) > 0


def test_model_card_states_the_shipped_threshold():
    meta = read_meta(DIR / FORMATS[zoo.DEFAULT_FORMAT].filename("detector"))
    card = (DIR / "MODEL_CARD.md").read_text()
    assert f"{meta.threshold:.4f}" in card


def test_float_exports_agree_and_discriminate():
    """tflite-fp32 and onnx give the same P(fake) (1e-4) on generated images, and the outputs differ
    between images (a broken export often answers a constant)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 256, 256, 3)).astype(np.uint8)
    x[2:] = np.clip(x[2:].astype(int) // 4 + 96, 0, 255).astype(np.uint8)  # low-contrast pair
    p_tfl = load_model(DIR / "detector_fp32.tflite", threads=2).predict(x)
    p_onnx = load_model(DIR / "detector.onnx", threads=2).predict(x)
    assert p_tfl.shape == (4,) and np.all((p_tfl >= 0) & (p_tfl <= 1))
    np.testing.assert_allclose(p_onnx, p_tfl, atol=1e-4, rtol=0)
    assert np.ptp(p_tfl) > 1e-3


@pytest.mark.parametrize("fmt", ["tflite-int8", "tflite-int8-io", "onnx-int8", "onnx-int8-arm", "tflite-fp16"])
def test_reduced_precision_exports_stay_close_to_fp32(fmt):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (3, 256, 256, 3)).astype(np.uint8)
    p_ref = load_model(DIR / "detector_fp32.tflite", threads=2).predict(x)
    p = load_model(DIR / FORMATS[fmt].filename("detector"), threads=2).predict(x)
    assert np.abs(p - p_ref).max() < (0.05 if fmt == "tflite-fp16" else 0.5), (fmt, p, p_ref)
    json.dumps(read_meta(DIR / FORMATS[fmt].filename("detector")).verification)  # serialisable numbers
