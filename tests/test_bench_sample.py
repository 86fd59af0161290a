"""The bundled evaluation sample and what `edge-dfd bench` / `evaluate` measure on it: the sample is found and
labelled right, rows carry accuracy / intervals / paired differences with real values, a damaged install leaves out
(and names) the damaged images, `bench FOLDER`, `--format` with the bundled models, one-class data (AUC n/a)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
from conftest import FACES140K, TPDNE128, needs_faces140k, needs_tpdne
from runtime_models import build_tiny_models

from edge_dfd.bench import accuracy as acc
from edge_dfd.core.verdicts import auc_ci, balanced_accuracy_ci, paired_accuracy_diff, paired_auc_diff
from edge_dfd.runtime import sample, zoo

FAST = ("--runs", "5", "--warmup", "1")
SAMPLE_COUNTS = {"faces140k": {"real": 75, "fake": 75}, "tpdne128": {"real": 250, "fake": 260}}


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


@pytest.fixture
def tiny_bundle(models, tmp_path, monkeypatch):
    """A bundle of tiny models (fp32 tflite, int8 tflite, fp32 onnx) as the default model, and a tiny ten-pass."""
    d = tmp_path / "bundle"
    d.mkdir()
    for name in ("tflite-fp32", "tflite-int8", "onnx"):
        shutil.copy(models[name], d / zoo.FORMATS[name].filename(zoo.STEM))
    t = tmp_path / "ten_pass"
    t.mkdir()
    shutil.copy(models["tflite-int8"], t / "detector_int8.tflite")
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(d))
    monkeypatch.setitem(zoo.NAMED, "ten-pass", t)
    return d


# ---------------------------------------------------------------- the sample itself


def test_sample_is_found_and_labelled_right():
    smp = sample.eval_sample()
    assert smp.problems == [] and smp.counts == SAMPLE_COUNTS and len(smp.records) == 660
    for r, s in zip(smp.records, smp.sets):
        assert r.path.is_file() and r.path.parts[-3] == "test"
        assert r.path.parent.name == ("real" if r.label == 1 else "fake")  # label 1 = real, as in the CSV
        assert sample.EVAL_SAMPLE_DIR / s in r.path.parents
    # only the test splits ship, and every image is in the sample's manifest
    images = {p.relative_to(sample.EVAL_SAMPLE_DIR).as_posix() for p in sample.EVAL_SAMPLE_DIR.rglob("*.jpg")}
    listed = json.loads((sample.EVAL_SAMPLE_DIR / "manifest.json").read_text())["files"]
    assert images == set(listed) and len(images) == 660
    assert not any("/train/" in p or "/valid/" in p for p in images)
    assert sorted(p.name for p in sample.EVAL_SAMPLE_DIR.iterdir()) == ["README.md", "faces140k", "manifest.json",
                                                                      "tpdne128"]
    readme = (sample.EVAL_SAMPLE_DIR / "README.md").read_text()
    notice = (sample.EVAL_SAMPLE_DIR.parents[2] / "NOTICE").read_text()
    for text in (readme, notice):
        assert "CC BY-NC-SA 4.0" in text and "zoya2244/AI-Lab-Final-Project-FALL25" in text
        assert "bhunakit/HeadshotClassification" in text


@needs_faces140k
@needs_tpdne
def test_sample_bytes_and_csvs_equal_the_shared_test_splits():
    for name, src in (("faces140k", FACES140K), ("tpdne128", TPDNE128)):
        dst = sample.EVAL_SAMPLE_DIR / name
        assert (dst / "test.csv").read_bytes() == (src / "test.csv").read_bytes()
        rows = list(csv.DictReader((src / "test.csv").open()))
        for row in rows:
            rel = f"real_vs_fake/real-vs-fake/{row['path']}"
            assert hashlib.sha256((dst / rel).read_bytes()).digest() == hashlib.sha256((src / rel).read_bytes()).digest()


def test_damaged_install_leaves_out_and_names_the_damaged_images(tmp_path):
    root = tmp_path / "eval_sample"
    shutil.copytree(sample.EVAL_SAMPLE_DIR, root)
    gone = root / "faces140k/real_vs_fake/real-vs-fake/test/real/00733.jpg"
    gone.unlink()
    bad = sorted((root / "tpdne128/real_vs_fake/real-vs-fake/test/fake").glob("*.jpg"))[0]
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped: still decodes, but it is not the shipped image
    bad.write_bytes(bytes(data))
    smp = sample.eval_sample(root)
    assert len(smp.records) == 658
    assert smp.counts == {"faces140k": {"real": 74, "fake": 75}, "tpdne128": {"real": 250, "fake": 259}}
    assert len(smp.problems) == 2
    assert str(gone) in smp.problems[0] and "missing" in smp.problems[0]
    assert str(bad) in smp.problems[1] and "damaged" in smp.problems[1]
    shutil.rmtree(root / "faces140k")  # a whole set gone: the other is still measured
    smp = sample.eval_sample(root)
    assert len(smp.records) == 509 and any("faces140k" in p and "left out" in p for p in smp.problems)
    shutil.rmtree(root / "tpdne128")
    from edge_dfd.core.errors import DataError

    with pytest.raises(DataError, match="no usable image"):
        sample.eval_sample(root)


def test_release_figures_come_from_the_release_results():
    rel = zoo.release_figures("default")
    results = json.loads((zoo.DEFAULT_DIR.parents[2] / "benchmarks/results/detector_v2.json").read_text())
    man = zoo.read_manifest(zoo.DEFAULT_DIR)
    assert set(rel["formats"]) == set(man["files"]) - {"keras"}  # the release pipeline scores every export
    assert rel == {**zoo.release_table(results, "student"),
                   "formats": {k: v for k, v in zoo.release_table(results, "student")["formats"].items()
                               if k in man["files"]}}
    int8 = rel["formats"]["tflite-int8"]
    assert int8["faces140k-sample"]["n"] == 150 and int8["ffhq-tpdne-128"]["n"] == 510
    assert int8["threshold"] == results["scores"]["student"]["tflite-int8"]["threshold"]
    assert set(zoo.release_figures("ten-pass")["formats"]) == {"tflite-int8"}


# ---------------------------------------------------------------- the statistics


def test_accuracy_fields_and_paired_fields_real_values():
    y = np.array([1] * 40 + [0] * 60)
    rng = np.random.default_rng(1)
    p_ref = np.clip(y * 0.6 + rng.random(100) * 0.5, 0, 1)
    p = p_ref.copy()
    p[:8] = 0.0  # eight fakes the export now misses
    f = acc.accuracy_fields(y, p, 0.5)
    ok = (p >= 0.5) == y.astype(bool)
    assert f["n"] == 100 and f["accuracy"] == ok.mean()
    assert f["accuracy_ci95_low"] < f["accuracy"] < f["accuracy_ci95_high"]
    bal = balanced_accuracy_ci(y, ok)
    assert f["balanced_accuracy"] == pytest.approx((ok[y == 1].mean() + ok[y == 0].mean()) / 2)
    assert (f["balanced_accuracy_ci95_low"], f["balanced_accuracy_ci95_high"]) == (bal["low"], bal["high"])
    a = auc_ci(y, p)
    assert f["auc"] == pytest.approx(a["auc"]) and f["auc_ci95_low"] == a["low"] and f["auc_note"] is None
    d = acc.paired_fields(y, p_ref, 0.5, p, 0.5, "keras")
    ok_ref = (p_ref >= 0.5) == y.astype(bool)
    want = paired_accuracy_diff(ok_ref, ok)
    assert d["reference"] == "keras" and d["acc_diff"] == pytest.approx(ok.mean() - ok_ref.mean())
    assert d["acc_diff"] < 0 and (d["acc_diff_ci95_low"], d["acc_diff_ci95_high"]) == (-want["high"], -want["low"])
    auc_d = paired_auc_diff(y, p_ref, p)
    assert d["auc_diff"] == pytest.approx(-auc_d["diff"]) and d["auc_diff_ci95_high"] == -auc_d["low"]
    one = acc.accuracy_fields(np.ones(10, int), np.linspace(0, 1, 10), 0.5)
    assert one["auc"] is None and one["auc_note"].startswith("n/a: one class only") and one["accuracy"] == 0.5


def test_pareto_flags():
    assert acc.pareto_flags([(1.0, 0.90), (2.0, 0.95), (3.0, 0.94), (1.0, 0.89), (2.0, 0.95)]) == \
        [True, True, False, False, True]


# ---------------------------------------------------------------- bench and evaluate on the sample


@pytest.mark.slow
def test_no_argument_bench_measures_accuracy_on_the_sample(tiny_bundle, tmp_path, cli_run):
    from edge_dfd.bench.evaluate import evaluate

    out = tmp_path / "b"
    code, stdout, stderr = cli_run("bench", "--out", out, "--json", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    rows = {r["format"]: r for r in doc["rows"]}
    assert list(rows) == ["tflite-fp32", "tflite-int8", "onnx"]
    assert doc["settings"]["n_images"] == 660 and doc["settings"]["eval_sample"]
    for name, r in rows.items():
        assert r["status"] == "ok" and r["n"] == 660 and r["reference"] == "tflite-fp32"  # no keras: fp32
        assert r["accuracy_ci95_low"] <= r["accuracy"] <= r["accuracy_ci95_high"]
        assert r["auc_ci95_low"] <= r["auc"] <= r["auc_ci95_high"]
        assert r["balanced_accuracy_ci95_low"] <= r["balanced_accuracy"] <= r["balanced_accuracy_ci95_high"]
        assert {k: v["n"] for k, v in r["by_set"].items()} == {"faces140k": 150, "tpdne128": 510}
        assert r["acc_diff"] == pytest.approx(r["accuracy"] - rows["tflite-fp32"]["accuracy"], abs=1e-12)
        assert r["acc_diff_ci95_low"] <= r["acc_diff"] <= r["acc_diff_ci95_high"]
        assert isinstance(r["pareto"], bool) and r["release"] is None  # tiny bundle: no release figures
        ev = evaluate(zoo.bundled_path("default", name), None, write=False, threads=2)  # evaluate: same numbers
        assert ev["accuracy"] == r["accuracy"] and ev["auc"] == pytest.approx(r["auc"]) and ev["n"] == 660
        assert ev["by_set"] == r["by_set"]
    assert rows["tflite-fp32"]["acc_diff"] == 0.0 and rows["onnx"]["auc_diff"] == pytest.approx(0.0, abs=1e-3)
    pts = [(r["latency_ms_p50"], r["accuracy"]) for r in rows.values()]
    assert [r["pareto"] for r in rows.values()] == acc.pareto_flags(pts) and any(acc.pareto_flags(pts))
    assert "acc [95% CI]" in stdout or "acc [95% CI]" in stderr
    assert "bundled evaluation sample" in (out / "bench.md").read_text()
    assert (out / "pareto.png").stat().st_size > 1000
    head = next(csv.reader((out / "bench.csv").open()))
    assert {"acc_diff", "auc_ci95_low", "faces140k_acc", "tpdne128_n"} <= set(head)


@pytest.mark.slow
def test_bench_on_a_damaged_install_measures_the_rest(tiny_bundle, tmp_path, cli_run, monkeypatch):
    root = tmp_path / "eval_sample"
    shutil.copytree(sample.EVAL_SAMPLE_DIR, root)
    gone = root / "tpdne128/real_vs_fake/real-vs-fake/test/real/data__real__r1384.jpg"
    gone.unlink()
    monkeypatch.setattr(sample, "EVAL_SAMPLE_DIR", root)
    code, stdout, stderr = cli_run("bench", "--formats", "tflite-int8", "--out", tmp_path / "b", "--json", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    (row,) = doc["rows"]
    assert row["status"] == "ok" and row["n"] == 659 and row["by_set"]["tpdne128"]["n"] == 509
    assert any(str(gone) in n and "missing" in n for n in doc["notes"])


@pytest.mark.slow
def test_one_class_data_auc_na_accuracy_shown(models, tiny140k, tmp_path, cli_run):
    one = tmp_path / "one"
    shutil.copytree(tiny140k, one)
    lines = (one / "test.csv").read_text().splitlines()
    (one / "test.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ",real," in ln]) + "\n")
    code, stdout, stderr = cli_run("bench", models["tflite-fp32"], models["onnx"], "--data", one, "--out",
                                   tmp_path / "b", *FAST)
    assert code == 0, stderr
    doc = json.loads((tmp_path / "b" / "bench.json").read_text())
    for r in doc["rows"]:
        assert r["n"] == 8 and r["accuracy"] is not None and r["auc"] is None
        assert r["auc_note"] == "n/a: one class only (8 real, 0 fake); AUC needs both"
    lines = [ln for ln in stdout.splitlines() if ln.startswith(("tiny", "tflite", "onnx"))]
    assert any("n/a" in ln for ln in lines), stdout
    assert "note: AUC n/a: one class only (8 real, 0 fake); AUC needs both" in stdout


@pytest.mark.slow
def test_bench_folder_measures_a_convert_output(models, tiny140k, tmp_path, cli_run):
    out = tmp_path / "converted"
    out.mkdir()
    for name in ("tflite-fp32", "tflite-int8", "onnx"):  # what `edge-dfd convert tiny.keras --out DIR` writes
        shutil.copy(models[name], out / zoo.FORMATS[name].filename("tiny"))
    (out / "notes.txt").write_text("not a model\n")
    code, stdout, stderr = cli_run("bench", out, "--data", tiny140k, "--out", tmp_path / "b", "--json", *FAST)
    assert code == 0, stderr
    rows = json.loads(stdout)["rows"]
    assert [(r["model"], r["format"]) for r in rows] == [("converted", "tflite-fp32"), ("converted", "tflite-int8"),
                                                         ("converted", "onnx")]
    assert all(r["status"] == "ok" and r["n"] == 16 and r["reference"] == "tflite-fp32" for r in rows)
    assert rows[2]["acc_diff"] == 0.0 and rows[1]["acc_diff"] == rows[1]["accuracy"] - rows[0]["accuracy"]
    # with the source .keras in the folder, it is the paired reference
    shutil.copy(models["keras"], out / "tiny.keras")
    code, stdout, stderr = cli_run("bench", out, "--format", "keras,tflite-int8", "--data", tiny140k,
                                   "--out", tmp_path / "c", "--json", *FAST)
    assert code == 0, stderr
    rows = json.loads(stdout)["rows"]
    assert [r["format"] for r in rows] == ["keras", "tflite-int8"] and rows[1]["reference"] == "keras"
    code, _, stderr = cli_run("bench", tmp_path / "empty_dir_that_exists", "--out", tmp_path / "d")
    assert code == 1 and "not found" in stderr
    (tmp_path / "empty").mkdir()
    code, _, stderr = cli_run("bench", tmp_path / "empty", "--out", tmp_path / "d")
    assert code == 1 and "no model file" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_format_with_the_bundled_models(tiny_bundle, models, tmp_path, cli_run):
    code, stdout, stderr = cli_run("evaluate", "default", "--format", "tflite-int8", "--sample", "40",
                                   "--out", tmp_path / "e", "--json")
    assert code == 0, stderr
    rep = json.loads(stdout)
    assert rep["format"] == "tflite-int8" and rep["n"] == 40 and rep["model"].endswith("detector_int8.tflite")
    assert rep["data"].startswith("bundled evaluation sample")
    for args in (("evaluate", "ten-pass", "--format", "tflite-fp32", "--out", tmp_path / "e2"),
                 ("predict", str(tiny_bundle), "--model", "ten-pass", "--format", "onnx"),
                 ("bench", "ten-pass", "--format", "tflite-fp32", "--out", tmp_path / "b")):
        code, _, stderr = cli_run(*args)
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        assert code == 1 and "tflite-int8" in lines[-1] and "Traceback" not in stderr, stderr
    for cmd in ("bench", "evaluate default"):
        code, _, stderr = cli_run(*cmd.split(), "--split", "valid", "--out", tmp_path / "v")
        assert code == 2 and "--split valid applies to --data" in stderr
    code, stdout, stderr = cli_run("bench", "ten-pass", "--format", "tflite-int8", "--data", tmp_path / "nope",
                                   "--out", tmp_path / "b")
    assert code == 1 and "not found" in stderr
    code, stdout, stderr = cli_run("bench", "default", "--format", "onnx", "--sample", "60", "--out", tmp_path / "b",
                                   "--json", *FAST)
    assert code == 0, stderr
    (row,) = json.loads(stdout)["rows"]
    assert row["format"] == "onnx" and row["n"] == 60 and row["reference"] is None  # alone: nothing to pair with


@pytest.mark.heavy
@pytest.mark.slow
def test_no_argument_bench_of_the_bundled_model_matches_its_release_figures(tmp_path):
    """The real no-argument run (about 2 minutes here): every bundled format measured on the sample, the keras
    source as the paired reference, and the release-time figures (same images, per set) reproduced."""
    import subprocess
    import sys

    from edge_dfd.bench.plan import have_tensorflow

    proc = subprocess.run([sys.executable, "-m", "edge_dfd", "bench", "--json", "-q", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["format"]: r for r in json.loads(proc.stdout)["rows"]}
    assert set(rows) == set(zoo.available_formats())
    ref = "keras" if have_tensorflow() else "tflite-fp32"
    for name, r in rows.items():
        assert r["status"] == "ok" and r["n"] == 660 and r["reference"] == ref
        if name == "keras":
            continue
        for st, rel_name in sample.EVAL_SAMPLE_RELEASE_SET.items():
            rel, here = r["release"][rel_name], r["by_set"][st]
            assert here["n"] == rel["n"]
            assert here["accuracy"] == pytest.approx(rel["accuracy"], abs=0.011), (name, st)  # 1-2 images / CPU
            assert here["auc"] == pytest.approx(rel["auc"], abs=0.005), (name, st)
    assert rows["tflite-fp32"]["acc_diff"] == pytest.approx(0.0, abs=0.002)
    assert any(r["pareto"] for r in rows.values())


@pytest.mark.slow
def test_bench_folder_of_convert_default_uses_the_bundled_source(models, tiny140k, tmp_path, cli_run, monkeypatch):
    """A folder written by `convert default`: its files' metadata names the bundled detector.keras (sha256 in the
    bundle's manifest), which bench measures as the source and paired reference."""
    from edge_dfd.core.fsutil import sha256_file
    from edge_dfd.core.meta import read_meta, write_meta

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(models["keras"], bundle / "detector.keras")
    shutil.copy(models["tflite-fp32"], bundle / "detector_fp32.tflite")
    zoo.write_manifest(bundle, version="t")
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(bundle))
    out = tmp_path / "exports"
    out.mkdir()
    sha = sha256_file(bundle / "detector.keras")
    for name in ("tflite-int8", "onnx"):
        dst = out / zoo.FORMATS[name].filename("detector")
        shutil.copy(models[name], dst)
        meta = read_meta(dst)
        meta.source_sha256 = sha
        write_meta(dst, meta)
    code, stdout, stderr = cli_run("bench", out, "--data", tiny140k, "--out", tmp_path / "b", "--json", *FAST)
    assert code == 0, stderr
    doc = json.loads(stdout)
    rows = doc["rows"]
    assert [(r["format"], r["path"]) for r in rows] == [("keras", str(bundle / "detector.keras")),
                                                        ("tflite-int8", str(out / "detector_int8.tflite")),
                                                        ("onnx", str(out / "detector.onnx"))]
    assert all(r["reference"] == "keras" and r["status"] == "ok" for r in rows)
    assert rows[2]["acc_diff"] == 0.0 and rows[1]["agreement"] is not None
    assert any("converted from the bundled detector.keras" in n for n in doc["notes"])
