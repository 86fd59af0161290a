"""`edge-dfd bench --escalate MODEL`: the cascade curve measured after the per-format pass (every point with real
values, the escalated share close to F on the calibration images), which file is the first model, and bad input
(one line before any work; usage errors). Hand-built ONNX models (benchmarks.synth.tiny_onnx): no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.synth import tiny_onnx

FAST = ("--runs", "5", "--warmup", "1", "-q")


@pytest.fixture(scope="module")
def data140k(tmp_path_factory):
    """A generated 140k-layout set with 20 + 20 valid and 8 + 8 test images."""
    from benchmarks.synth import make_140k

    return make_140k(tmp_path_factory.mktemp("esc140k"), {"valid": 20, "test": 8}, splits=("valid", "test"))


@pytest.fixture
def pair(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_DFD_CACHE", str(tmp_path / "cache"))  # no calibration table of an earlier test
    return tiny_onnx(tmp_path / "first.onnx", 32, 0.5), tiny_onnx(tmp_path / "second.onnx", 48, 0.4)


def test_bench_escalate_measures_every_point_of_the_curve(pair, data140k, tmp_path, cli_run):
    out = tmp_path / "b"
    # --split valid: the images the band was calibrated on, so each point's escalated share is F (within 1/40)
    code, stdout, stderr = cli_run("bench", pair[0], "--data", data140k, "--split", "valid", "--escalate", pair[1],
                                   "--escalate-fraction", "0.25", "--calib-data", data140k, "--out", out, "--json",
                                   *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    (row,) = doc["rows"]  # the per-format pass is unchanged: one row, its own accuracy
    assert row["status"] == "ok" and row["n"] == 40
    c = doc["cascade"]
    assert c["images"] == 40 and c["fake"] == 20 and c["escalate_fraction"] == 0.25 and c["format"] == "onnx"
    assert c["first"]["file"] == "first.onnx" and c["second"]["file"] == "second.onnx"
    assert c["fractions"] == [0.1, 0.2, 0.25, 0.3, 0.5]
    names = [p["name"] for p in c["points"]]
    assert names == ["first", "second", "cascade F=0.1", "cascade F=0.2", "cascade F=0.25", "cascade F=0.3",
                     "cascade F=0.5"]
    for p in c["points"]:
        lo, hi = p["accuracy_ci95"]
        assert 0 < lo <= p["accuracy"] <= hi <= 1 and p["images"] == 40, p
        assert p["auc_ci95"][0] <= p["auc"] <= p["auc_ci95"][1], p
        assert p["ms_per_face"] > 0 and p["stage2_failed"] == 0 and p["time_vs_second"] > 0
        if p["name"].startswith("cascade"):
            assert p["escalated_share"] == pytest.approx(p["fraction"], abs=1 / 40 + 1e-9), p
        else:
            assert p["escalated_share"] is None
    first, second = c["points"][:2]
    # the same model on the same images: the per-format accuracy (the curve stores 4 places)
    assert first["accuracy"] == pytest.approx(row["accuracy"], abs=5e-5) and first["vs_first"]["diff"] == 0.0
    assert second["vs_first"]["diff"] == pytest.approx(second["accuracy"] - first["accuracy"], abs=1e-4)
    assert doc["settings"]["escalate"]["fraction"] == 0.25
    # the table, bench.md and the plot carry it too
    # --json: the table goes to stderr; every row has every column, under its header
    lines = stderr.splitlines()
    head = next(ln for ln in lines if ln.startswith("point "))
    assert head.split("  ")[:2] == ["point", ""] and head.index("ms/face") < head.index("x second")
    p25 = next(p for p in c["points"] if p["name"] == "cascade F=0.25")
    (row25,) = [ln for ln in lines if ln.startswith("cascade F=0.25 ")]
    assert row25[head.index("acc [95% CI]"):].startswith(f"{p25['accuracy']:.4f} [")
    assert row25[head.index("ms/face"):].startswith(f"{p25['ms_per_face']:.2f}")
    assert row25.rstrip().endswith("-" if p25["gap_recovered"] is None else f"{p25['gap_recovered']:.2f}")
    assert json.loads((out / "bench.json").read_text())["cascade"]["points"] == c["points"]
    md = (out / "bench.md").read_text()
    assert "**Cascade curve" in md and "| cascade F=0.5 |" in md
    assert ("| point | escalated | acc [95% CI] | vs first [95% CI] | bal.acc | AUC [95% CI] | ms/face | x second | "
            "gap recovered |") in md
    assert all(ln.count("|") == 10 for ln in md.splitlines() if ln.startswith(("| first", "| second", "| cascade")))
    pytest.importorskip("matplotlib")
    assert (out / "cascade.png").stat().st_size > 1000 and (out / "pareto.png").is_file()


def test_without_escalate_bench_json_has_no_cascade_block(pair, data140k, tmp_path, cli_run):
    code, stdout, stderr = cli_run("bench", pair[0], "--data", data140k, "--out", tmp_path / "b", "--json", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert "cascade" not in doc and "escalate" not in doc["settings"] and "cascade" not in stderr
    assert not (tmp_path / "b" / "cascade.png").exists()


def test_bad_escalation_input_is_refused_before_any_work(pair, data140k, tmp_path, cli_run):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for i, (bad, why) in enumerate(((junk, "junk.tflite"), (text, "unknown model type"),
                                    (tmp_path / "gone.onnx", "not found"))):
        out = tmp_path / f"b{i}"
        code, stdout, stderr = cli_run("bench", pair[0], "--data", data140k, "--escalate", bad, "--out", out, *FAST)
        assert code == 1 and stdout == "" and stderr.count("\n") == 1 and why in stderr, stderr
        assert "Traceback" not in stderr and not out.exists()  # nothing measured, nothing written
    # a user pair with no calibration table and no --calib-data: one line naming --calib-data, before measuring
    out = tmp_path / "nocal"
    code, stdout, stderr = cli_run("bench", pair[0], "--data", data140k, "--escalate", pair[1], "--out", out, *FAST)
    assert code == 1 and stdout == "" and "--calib-data" in stderr.strip().splitlines()[-1]
    assert not (out / "bench.json").exists()
    for args, why in ((("--escalate", pair[1], "--escalate-fraction", "1.5"), "escalate-fraction"),
                      (("--escalate", pair[1], "--escalate-fraction", "-0.1"), "escalate-fraction"),
                      (("--escalate-fraction", "0.3"), "need --escalate"),
                      (("--calib-data", data140k), "need --escalate")):
        code, _, stderr = cli_run("bench", pair[0], "--data", data140k, *args, "--out", tmp_path / "u", *FAST)
        assert code == 2 and why in stderr and "Traceback" not in stderr, (args, stderr)
        assert not (tmp_path / "u").exists()


def test_the_first_model_is_the_first_models_int8_file():
    from edge_dfd.bench.escalation import pick_first
    from edge_dfd.bench.targets import Target
    from edge_dfd.core.errors import ModelError

    def group(*fmts, status=None):
        return [Target("m", f, Path(f"/x/{f}"), status) for f in fmts]

    assert pick_first([group("tflite-fp32", "tflite-int8", "onnx"), group("tflite-int8")]).fmt == "tflite-int8"
    assert pick_first([group("keras", "tflite-fp32", "onnx")]).fmt == "tflite-fp32"
    assert pick_first([group("keras")]).fmt == "keras"
    bad = group("tflite-int8", status="failed: converter wrote no file")
    assert pick_first([bad + group("onnx")]).fmt == "onnx"
    with pytest.raises(ModelError, match="no file that can be measured.*converter wrote no file"):
        pick_first([bad])


@pytest.mark.slow
def test_no_model_bench_escalate_starts_from_the_bundled_default(pair, data140k, tmp_path, cli_run, monkeypatch):
    """No MODEL: the first model is the bundled default's file (tflite-int8 when shipped; this tiny ONNX-only
    bundle has none, so its onnx file), the second the bundled 'ten-pass'; measured on --data's test split."""
    from edge_dfd.runtime import zoo

    d, t = tmp_path / "bundle", tmp_path / "ten_pass"
    d.mkdir()
    t.mkdir()
    tiny_onnx(d / zoo.FORMATS["onnx"].filename(zoo.STEM), 32, 0.5)
    tiny_onnx(t / zoo.FORMATS["onnx"].filename(zoo.STEM), 48, 0.4)
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(d))
    monkeypatch.setitem(zoo.NAMED, "ten-pass", t)
    code, stdout, stderr = cli_run("bench", "--data", data140k, "--escalate", "ten-pass", "--calib-data", data140k,
                                   "--out", tmp_path / "b", "--json", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    c = doc["cascade"]
    assert (c["model"], c["format"], c["escalate"], c["escalate_fraction"]) == ("default", "onnx", "ten-pass", 0.2)
    assert c["second"]["dir"] == "ten_pass" and c["images"] == 16 and c["fractions"] == [0.1, 0.2, 0.3, 0.5]
    assert [p["name"] for p in c["points"]][:2] == ["first", "second"] and len(c["points"]) == 6
    assert all(p["ms_per_face"] > 0 and p["accuracy"] is not None for p in c["points"])
    assert "cascade curve default onnx (detector.onnx) -> ten-pass onnx (detector.onnx)" in stderr
