"""The release is a thin sequence (docs/release.md): train --recipe deploy -> convert -> bench, and the model card
is generated from their JSON by tools/model_card.py. The old release package is gone from edge_dfd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_dfd.core.meta import ModelMeta

ROOT = Path(__file__).resolve().parents[1]


def test_release_package_left_the_runtime_package():
    assert not (ROOT / "edge_dfd" / "release").exists()
    users = [p for p in [*(ROOT / "edge_dfd").rglob("*.py"), *(ROOT / "tools").rglob("*.py"),
                         *(ROOT / "benchmarks").rglob("*.py")] if "edge_dfd.release" in p.read_text()]
    assert users == []
    text = (ROOT / "docs" / "release.md").read_text()
    for step in ("edge-dfd train --recipe deploy", "edge-dfd convert", "edge-dfd bench", "python -m tools.model_card"):
        assert step in text, step
    assert "python -m edge_dfd.release" not in text


def _meta() -> ModelMeta:
    return ModelMeta(arch="efficientnet_lite0_single_pass", input_size=224, threshold=0.61234,
                     threshold_source="valid split as-is and perturbed",
                     training={"recipe": "deploy", "init": "default", "data": ["/d/a", "/d/b"], "epochs_run": 2,
                               "best_epoch": 2, "batch_size": 32, "steps_per_epoch": 40,
                               "test": {"n": 660, "accuracy": 0.91515, "balanced_accuracy": 0.9102, "auc": 0.96789}})


BENCH = {"machine": {"cpu": "Test CPU", "usable_cores": 2}, "settings": {"threads": 2},
         "rows": [{"format": "tflite-int8", "size_mb": 4.9871, "latency_ms_p50": 7.123, "latency_ms_p90": 8.456,
                   "images_per_s": 140.44, "accuracy": 0.8873, "accuracy_ci95_low": 0.8612,
                   "accuracy_ci95_high": 0.9091, "auc": 0.95432, "n": 660, "status": "ok"},
                  {"format": "onnx-int8", "size_mb": 5.1, "latency_ms_p50": 9.0, "status": "ok"}]}
CONVERT = [{"format": "tflite-int8", "path": "/x/detector_int8.tflite", "bytes": 4987100, "ok": True,
            "agreement": 0.9733, "accuracy_keras": 0.8901, "accuracy_export": 0.8833, "verify_n": 300},
           {"format": "onnx-int8", "path": "/x/detector.onnx", "bytes": 5100000, "ok": False, "status": "unproven",
            "agreement": 0.91, "accuracy_keras": 0.8901, "accuracy_export": 0.861, "verify_n": 60}]


def test_card_numbers_come_from_the_json():
    from tools.model_card import model_card

    text = model_card(_meta(), CONVERT, BENCH, {"140k": {"n": 150, "accuracy": 0.8667, "balanced_accuracy": 0.8601,
                                                         "auc": 0.9412, "eer": 0.1333, "threshold": 0.61234}},
                      sources=["bench.json"])
    assert "`efficientnet_lite0_single_pass`, input 224x224" in text and "threshold: 0.6123" in text
    assert "recipe `deploy`, init `default`, data `/d/a`, `/d/b`, 2 epoch(s) run, best epoch 2" in text
    assert "test at training time: n 660, accuracy 0.9152, balanced accuracy 0.9102, AUC 0.9679" in text
    assert "| 140k | 150 | 0.8667 | 0.8601 | 0.9412 | 0.1333 | 0.6123 |" in text
    assert "| tflite-int8 | 4.99 | 7.12 | 8.46 | 140.4 | 0.8873 (0.861-0.909) | 0.9543 | 660 | ok |" in text
    assert "| onnx-int8 | 5.10 | 9.00 | - | - | - | - | - | ok |" in text  # missing fields are "-", not invented
    assert "| tflite-int8 | detector_int8.tflite | 4.99 | ok | 0.9733 | 0.8901 | 0.8833 | 300 |" in text
    assert "| onnx-int8 | detector.onnx | 5.10 | unproven | 0.9100 | 0.8901 | 0.8610 | 60 |" in text
    assert "- `bench.json`" in text
    assert "- face crop: `aligned`, margin 0.33 (not in the metadata; fallback: arch efficientnet_lite0_single_pass;" in text
    m = _meta()
    m.crop_mode, m.crop_margin = "box", 0.4
    assert "- face crop: `box`, margin 0.4 (from the metadata;" in model_card(m)


def test_card_cli_writes_from_files(tmp_path):
    pytest.importorskip("keras")
    from edge_dfd.core.meta import write_meta
    from tools.model_card import main

    model = tmp_path / "m.keras"
    import keras

    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)]).save(model)
    write_meta(model, _meta())
    (tmp_path / "bench.json").write_text(json.dumps(BENCH))
    (tmp_path / "convert.json").write_text(json.dumps(CONVERT))
    (tmp_path / "r.json").write_text(json.dumps({"n": 10, "accuracy": 0.9, "auc": None}))
    out = tmp_path / "MODEL_CARD.md"
    assert main(["--model", str(model), "--bench", str(tmp_path / "bench.json"), "--convert",
                 str(tmp_path / "convert.json"), "--evaluate", f"tpdne={tmp_path / 'r.json'}", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| tpdne | 10 | 0.9000 | - | - | - | - |" in text and "0.8873 (0.861-0.909)" in text
    with pytest.raises(SystemExit, match="expected NAME=REPORT.json"):
        main(["--model", str(model), "--evaluate", "no-equals-sign"])
    with pytest.raises(SystemExit, match="cannot read JSON"):
        main(["--model", str(model), "--bench", str(tmp_path / "missing.json")])
