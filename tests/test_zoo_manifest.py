"""The bundled model's manifest (edge_dfd/assets/default/manifest.json): written from the files present, checked
the first time a bundled file is used in a process; a corrupted or truncated file is a one-line error."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from edge_dfd.core.errors import ModelError
from edge_dfd.runtime import zoo


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    """A fake bundle (tiny files named like the real ones) with its manifest, used as the default model dir."""
    d = tmp_path / "bundle"
    d.mkdir()
    for i, name in enumerate(("detector_fp32.tflite", "detector.onnx", "detector_int8.tflite")):
        (d / name).write_bytes(bytes(range(256)) * (i + 3))
    (d / "MODEL_CARD.md").write_text("card\n")
    zoo.write_manifest(d, version="test-1")
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(d))
    monkeypatch.setattr(zoo, "_VERIFIED", {})
    return d


def test_manifest_lists_every_file_with_hash_and_size(bundle):
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["model_version"] == "test-1" and man["stem"] == "detector"
    assert set(man["files"]) == {"tflite-fp32", "onnx", "tflite-int8"}  # not the model card
    for e in man["files"].values():
        data = (bundle / e["file"]).read_bytes()
        assert e["sha256"] == hashlib.sha256(data).hexdigest() and e["bytes"] == len(data)
    assert man["files"]["onnx"]["file"] == "detector.onnx" and man["files"]["onnx"]["bytes"] == 256 * 4
    zoo.write_manifest(bundle)  # unchanged files: the version is kept
    assert zoo.read_manifest(bundle)["model_version"] == "test-1"


def test_intact_files_pass_and_are_hashed_once(bundle, monkeypatch):
    from edge_dfd.core import fsutil

    calls = []
    real = fsutil.sha256_file
    monkeypatch.setattr(fsutil, "sha256_file", lambda p, *a, **k: calls.append(p) or real(p, *a, **k))
    for _ in range(3):
        assert zoo.default_path("onnx") == bundle / "detector.onnx"
    assert zoo.default_path() == bundle / "detector_fp32.tflite"
    assert len(calls) == 2  # one hash per file per process


def test_corrupted_file_is_one_line_error_naming_it_and_the_hash(bundle, cli_run):
    want = zoo.read_manifest(bundle)["files"]["tflite-fp32"]["sha256"]
    p = bundle / "detector_fp32.tflite"
    data = bytearray(p.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    p.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"detector_fp32.tflite is corrupted: .* expects {want}"):
        zoo.default_path()
    code, out, err = cli_run("predict", "--model", "default", str(bundle / "MODEL_CARD.md"))
    assert code == 1 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: bundled model file {p} is corrupted") and want in line
    assert zoo.default_path("onnx")  # the other files are still fine


def test_truncated_file_names_the_size_and_hash(bundle):
    from edge_dfd.runtime import load_model

    want = zoo.read_manifest(bundle)["files"]["onnx"]["sha256"]
    p = bundle / "detector.onnx"
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(ModelError) as exc:
        load_model("default", format="onnx")
    msg = str(exc.value)
    assert f"{p} is 500 bytes, the manifest says 1024" in msg and want in msg and "\n" not in msg


def test_no_manifest_means_no_check(bundle):
    (bundle / "manifest.json").unlink()
    (bundle / "detector.onnx").write_bytes(b"anything")
    assert zoo.default_path("onnx") == bundle / "detector.onnx"


def test_damaged_manifest_is_an_error_and_regenerates(bundle):
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable bundled-model manifest .*--write-manifest"):
        zoo.default_path()
    zoo.write_manifest(bundle)
    assert zoo.read_manifest(bundle)["model_version"].startswith("src-")
    assert zoo.default_path()


def test_write_manifest_command_and_check(bundle):
    (bundle / "detector_int8.tflite").write_bytes(b"replaced model")
    cmd = [sys.executable, "-m", "edge_dfd.runtime.zoo"]
    bad = subprocess.run(cmd + [str(bundle)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "detector_int8.tflite" in bad.stderr and "Traceback" not in bad.stderr
    ok = subprocess.run(cmd + ["--write-manifest", "--version", "v2", str(bundle)], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "3 file(s), model version v2" in ok.stdout
    assert zoo.read_manifest(bundle)["files"]["tflite-int8"]["bytes"] == len(b"replaced model")
    assert subprocess.run(cmd + [str(bundle)], capture_output=True, text=True, timeout=60).returncode == 0


def test_the_shipped_bundle_matches_its_manifest():
    """Fails when the bundled files were replaced without `python -m edge_dfd.runtime.zoo --write-manifest`."""
    man = zoo.read_manifest(zoo.DEFAULT_DIR)
    assert man is not None, "edge_dfd/assets/default/manifest.json is missing"
    present = {n for n, f in zoo.FORMATS.items() if (zoo.DEFAULT_DIR / f.filename(zoo.STEM)).is_file()}
    assert set(man["files"]) == present
    for name, e in man["files"].items():
        zoo.verify_bundled(zoo.DEFAULT_DIR / e["file"], name)


def test_named_bundled_model_resolves_its_own_format_and_is_checked(tmp_path, monkeypatch):
    """'ten-pass' (a NAMED set with only an int8 file) resolves to that file by default, refuses a format it
    does not have in one line naming what it has, and is checked against its own manifest."""
    from edge_dfd.runtime import resolve_model

    d = tmp_path / "ten_pass"
    d.mkdir()
    (d / "detector_int8.tflite").write_bytes(b"int8 model bytes" * 10)
    zoo.write_manifest(d, version="t-1")
    monkeypatch.setattr(zoo, "NAMED", {"ten-pass": d})
    monkeypatch.setattr(zoo, "_VERIFIED", {})
    assert zoo.is_bundled_name("ten-pass") and zoo.is_bundled_name("default") and not zoo.is_bundled_name("x.tflite")
    assert resolve_model("ten-pass") == d / "detector_int8.tflite"
    with pytest.raises(ModelError, match=r"'ten-pass' is missing in format 'onnx': it ships tflite-int8 only"):
        resolve_model("ten-pass", "onnx")
    (d / "detector_int8.tflite").write_bytes(b"INT8 model bytes" * 10)  # same size, other bytes
    monkeypatch.setattr(zoo, "_VERIFIED", {})
    with pytest.raises(ModelError, match="corrupted.*the manifest expects"):
        resolve_model("ten-pass")


def test_release_figures_are_written_kept_and_dropped_with_the_files(bundle):
    results = {"time": "t0", "data": ["setA"], "scores": {"student": {
        "onnx": {"file": "detector.onnx", "threshold": 0.4, "setA": {"clean": {"accuracy": 0.9, "auc": 0.95, "n": 10}}},
        "onnx-int8": {"file": "detector_int8.onnx", "threshold": 0.5, "setA": {"clean": {"accuracy": 0.8}}}}}}
    zoo.write_manifest(bundle, release=zoo.release_table(results, "student"))
    rel = zoo.release_figures()
    assert set(rel["formats"]) == {"onnx"}  # only files this bundle has
    assert rel["formats"]["onnx"] == {"file": "detector.onnx", "threshold": 0.4,
                                      "setA": {"accuracy": 0.9, "auc": 0.95, "n": 10}}
    zoo.write_manifest(bundle)  # same files: kept
    assert zoo.release_figures() == rel
    (bundle / "detector.onnx").write_bytes(b"another model")
    zoo.write_manifest(bundle)  # the files changed: the old figures would describe other files
    assert zoo.release_figures() is None


def test_release_figures_from_the_documented_pipelines_bench_json(bundle):
    """docs/release.md step 3 writes bench.json; its per-set rows become the manifest's release figures."""
    bench = {"run": {"time": "2026-12-07T10:00:00"}, "rows": [
        {"format": "keras", "status": "ok", "path": "x/detector.keras", "threshold": 0.4,
         "by_set": {"faces140k": {"n": 150, "accuracy": 0.91, "auc": 0.96}}},
        {"format": "onnx", "status": "ok", "path": "x/detector.onnx", "threshold": 0.4,
         "by_set": {"faces140k": {"n": 150, "accuracy": 0.9, "auc": 0.962}, "tpdne128": {"n": 510, "accuracy": 0.915,
                                                                                         "auc": 0.97}}},
        {"format": "onnx-int8", "status": "failed", "path": "x/detector_int8.onnx", "by_set": None}]}
    rel = zoo.release_table(bench)
    assert rel["sets"] == ["faces140k-sample", "ffhq-tpdne-128"] and rel["time"] == "2026-12-07T10:00:00"
    assert rel["formats"] == {"onnx": {"file": "detector.onnx", "threshold": 0.4,
                                       "faces140k-sample": {"accuracy": 0.9, "auc": 0.962, "n": 150},
                                       "ffhq-tpdne-128": {"accuracy": 0.915, "auc": 0.97, "n": 510}}}
    zoo.write_manifest(bundle, release=rel)
    assert zoo.release_figures()["formats"]["onnx"]["ffhq-tpdne-128"]["n"] == 510
    with pytest.raises(ModelError, match="no measured export with per-set figures"):
        zoo.release_table({"rows": [{"format": "onnx", "status": "ok", "by_set": None}]})
