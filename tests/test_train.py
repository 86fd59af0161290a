"""edge-dfd train: run folder, report consistency, threshold in metadata, pipeline, options, real resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from lazy import lazy_module
from procs import kill_after_first_backup
from synth import IMAGES_SUBDIR, make_140k

from edge_dfd.core.meta import read_meta  # noqa: E402
from edge_dfd.images import data  # noqa: E402
from edge_dfd.train import SkipLog, TrainConfig, make_dataset, read_history  # noqa: E402

lazy_module("tensorflow")  # skips without it; imported by the tests that use it, not while pytest collects

RUN_FILES = ("model.keras", "history.csv", "curves.png", "confusion_matrix.png", "report.json", "report.txt",
             "config.json", "checkpoints/best.keras")


@pytest.fixture(scope="module")
def trained(tiny140k, tmp_path_factory):
    """One CLI training run (32 px, 1 epoch) on a copy of tiny140k with one corrupt training image."""
    tmp = tmp_path_factory.mktemp("train")
    ds = Path(shutil.copytree(tiny140k, tmp / "ds"))
    bad = ds / IMAGES_SUBDIR / "train" / "fake" / sorted(os.listdir(ds / IMAGES_SUBDIR / "train" / "fake"))[0]
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    run = tmp / "run"
    import contextlib
    import io

    from edge_dfd.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", "--data", str(ds), "--arch", "cnn", "--epochs", "1", "--batch-size", "8",
                     "--img-size", "32", "--seed", "0", "--out", str(run), "--json"])
    assert code == 0, err.getvalue()
    return {"ds": ds, "run": run, "bad": bad, "stdout": out.getvalue(), "stderr": err.getvalue()}


def test_run_folder_contents(trained):
    run = trained["run"]
    for f in RUN_FILES:
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    assert not list(run.glob(".*tmp*")), "temporary files left behind"
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1]
    res = json.loads(trained["stdout"])
    assert res["epochs_run"] == 1 and res["best_epoch"] == 1 and Path(res["model_path"]) == run / "model.keras"
    assert "epoch 1/1  loss " in trained["stderr"] and "val_auc" in trained["stderr"]


def test_report_matches_confusion_matrix(trained):
    rep = json.loads((trained["run"] / "report.json").read_text())
    (tn, fp), (fn, tp) = rep["confusion_matrix"]
    assert rep["n"] == tn + fp + fn + tp == 16 and rep["n_real"] == tn + fp == 8 and rep["n_fake"] == fn + tp == 8
    assert rep["accuracy"] == pytest.approx((tn + tp) / 16)
    if tp + fp:
        assert rep["precision"] == pytest.approx(tp / (tp + fp))
    assert rep["recall"] == pytest.approx(tp / (tp + fn))
    assert rep["per_class"]["real"]["support"] == 8
    assert rep["split"] == "test"
    text = (trained["run"] / "report.txt").read_text()
    assert f"  real  {tn:>6d} {fp:>6d}" in text and f"  fake  {fn:>6d} {tp:>6d}" in text


def test_report_reproduced_from_saved_model(trained):
    """The saved model + preprocess + metadata threshold reproduce the test report exactly."""
    import keras

    from edge_dfd.core.metrics import binary_report
    from edge_dfd.images.preprocess import load_image

    run, ds = trained["run"], trained["ds"]
    meta = read_meta(run / "model.keras")
    model = keras.saving.load_model(run / "model.keras", compile=False)
    recs = data.load_split(ds, "test")
    x = np.stack([load_image(r.path, 32) for r in recs]).astype(np.float32)
    p = np.asarray(model(x, training=False)).ravel()
    rep = json.loads((run / "report.json").read_text())
    again = binary_report([r.is_fake for r in recs], p, meta.threshold)
    assert again["confusion_matrix"] == rep["confusion_matrix"]
    assert again["auc"] == pytest.approx(rep["auc"], abs=1e-6)


def test_threshold_and_training_facts_in_metadata(trained):
    run, ds = trained["run"], trained["ds"]
    meta = read_meta(run / "model.keras")
    rep = json.loads((run / "report.json").read_text())
    conf = json.loads((run / "config.json").read_text())
    assert meta.arch == "cnn" and meta.input_size == 32 and meta.output == "P(fake)"
    assert (meta.crop_mode, meta.crop_margin) == ("aligned", 0.33)  # the study recipe: FFHQ-aligned images
    assert 0.0 < meta.threshold < 1.0 and meta.threshold == pytest.approx(rep["threshold"])
    assert meta.threshold == pytest.approx(conf["results"]["threshold"])
    assert meta.threshold_source.startswith("valid split")
    assert meta.training["data"] == str(ds.resolve())
    assert meta.training["valid_csv"] == str((ds / "valid.csv").resolve()) == conf["valid_csv"]
    assert meta.training["epochs"] == 1 and meta.training["test"]["accuracy"] == pytest.approx(rep["accuracy"])
    c = conf["config"]
    assert (c["data"], c["arch"], c["img_size"], c["batch_size"], c["seed"], c["status"]) == (
        str(ds.resolve()), "cnn", 32, 8, 0, "complete")
    assert conf["counts"]["train"] == {"real": 16, "fake": 16}


def test_augmentation_not_in_saved_model(trained):
    with zipfile.ZipFile(trained["run"] / "model.keras") as z:
        cfg = z.read("config.json").decode()
    assert "Random" not in cfg and "augmentation" not in cfg
    assert '"Rescaling"' in cfg


def test_unreadable_image_skipped_and_reported(trained):
    bad = str(trained["bad"])
    assert "warning: skipped 1 unreadable image(s): " + bad in trained["stderr"]
    conf = json.loads((trained["run"] / "config.json").read_text())
    assert list(conf["results"]["skipped_images"]) == [bad]


def test_pipeline_matches_preprocess_and_augments(tiny140k):
    from edge_dfd.images.preprocess import load_image

    recs = data.load_split(tiny140k, "valid")[:6]
    cfg = TrainConfig(data=str(tiny140k), out="unused", img_size=32, batch_size=3, seed=1)
    plain = np.concatenate([x.numpy() for x, _ in make_dataset(recs, cfg, SkipLog(), training=False)])
    ys = np.concatenate([y.numpy() for _, y in make_dataset(recs, cfg, SkipLog(), training=False)])
    expect = np.stack([load_image(r.path, 32) for r in recs]).astype(np.float32)
    np.testing.assert_array_equal(plain, expect)
    np.testing.assert_array_equal(ys, [r.is_fake for r in recs])
    cfg.jpeg_aug = cfg.blur_aug = True
    aug = np.concatenate([x.numpy() for x, _ in make_dataset(recs, cfg, SkipLog(), training=True)])
    assert aug.dtype == np.float32 and aug.shape == plain.shape
    assert aug.min() >= 0.0 and aug.max() <= 255.0
    assert np.abs(np.sort(aug.reshape(6, -1).mean(1)) - np.sort(plain.reshape(6, -1).mean(1))).max() > 0.01


@pytest.mark.parametrize("args, needle", [
    (["--epochs", "0"], "'--epochs': 0 is not in the range x>=1"),
    (["--epochs", "-3"], "'--epochs'"),
    (["--batch-size", "0"], "'--batch-size'"),
    (["--img-size", "4"], "'--img-size'"),
    (["--lr", "0"], "'--lr'"),
    (["--arch", "cnnn"], "'--arch'"),
])
def test_bad_options_are_usage_errors(cli_run, tiny140k, tmp_path, args, needle):
    code, _, err = cli_run("train", "--data", tiny140k, "--out", tmp_path / "r", *args)
    assert code == 2 and needle in err, err
    assert not (tmp_path / "r").exists()


def test_run_errors(cli_run, tiny140k, trained, tmp_path):
    code, _, err = cli_run("train", "--data", tmp_path / "nope", "--out", tmp_path / "r")
    assert code == 1 and err.startswith("error: ") and "dataset folder not found" in err
    base = ["train", "--data", trained["ds"], "--epochs", "1", "--img-size", "32", "--batch-size", "8"]
    code, _, err = cli_run(*base, "--out", trained["run"])
    assert code == 1 and "already holds a training run; use --resume" in err
    code, _, err = cli_run(*base, "--out", trained["run"], "--resume")
    assert code == 1 and "already finished" in err
    code, _, err = cli_run(*base, "--out", tmp_path / "fresh", "--resume")
    assert code == 1 and "nothing to resume" in err
    code, _, err = cli_run("train", "--data", trained["ds"], "--out", tmp_path / "x", "--arch", "xception",
                           "--img-size", "32")
    assert code == 1 and "--img-size 32 is too small for xception (expected 71..4096)" in err
    assert not (tmp_path / "x").exists()
    only_test = make_140k(tmp_path / "t", counts={"test": 2}, size=16, splits=("test",))
    code, _, err = cli_run("train", "--data", only_test, "--out", tmp_path / "r2", "--img-size", "32")
    assert code == 1 and "has no 'train' split" in err


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    """Start a real `edge-dfd train` process, SIGKILL it after epoch 1's checkpoint, resume, check history."""
    ds = make_140k(tmp_path / "ds", counts={"train": 32, "valid": 6, "test": 2}, size=40)
    run = tmp_path / "run"
    epochs = 4
    cmd = [sys.executable, "-m", "edge_dfd", "train", "--data", str(ds), "--out", str(run), "--epochs", str(epochs),
           "--img-size", "40", "--batch-size", "4", "--patience", "0", "--seed", "0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_first_backup([proc], run, timeout=180)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model.keras").exists()
    done_before = [r["epoch"] for r in read_history(run / "history.csv")]
    assert done_before and done_before == list(range(1, len(done_before) + 1)) and done_before[-1] < epochs

    res = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resuming from epoch" in res.stderr
    hist = read_history(run / "history.csv")
    assert [r["epoch"] for r in hist] == list(range(1, epochs + 1))
    assert json.loads((run / "config.json").read_text())["config"]["status"] == "complete"
    assert read_meta(run / "model.keras").training["epochs_run"] == epochs
    assert not (run / "checkpoints" / "backup").exists()  # BackupAndRestore cleans up after a finished run
