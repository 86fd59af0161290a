"""edge-dfd train --recipe deploy: run folder + metadata, two data sets sampled equally, corrupt images skipped and
counted, the face-box cache (reuse, full disk), deterministic draws, --init checks, bad input, resume after a kill."""

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lazy import lazy_module
from procs import kill_after_first_backup
from runtime_models import deploy_stand_in, stand_in_model
from synth import IMAGES_SUBDIR, make_140k

from edge_dfd.core.meta import read_meta  # noqa: E402
from edge_dfd.images import data  # noqa: E402
from edge_dfd.train import SkipLog, read_history  # noqa: E402

lazy_module("tensorflow")  # skips without it; imported by the tests that use it, not while pytest collects

SIZE = 32  # efficientnet_lite0's smallest input: tiny and fast
TINY = ["--img-size", SIZE, "--batch-size", 4, "--steps-per-epoch", 2, "--seed", 0]


def _corrupt(ds: Path, split: str, n: int) -> list[Path]:
    files = sorted((ds / IMAGES_SUBDIR / split).rglob("*.jpg"))[::3][:n]
    for f in files:
        f.write_bytes(b"\xff\xd8 not a jpeg")
    return files


EPOCHS = 3
# a `python -m edge_dfd train` process with deterministic TensorFlow ops: the same command twice gives the same run
DETERMINISTIC = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1", "TF_ENABLE_ONEDNN_OPTS": "0"}


def _deploy_cmd(data_dirs, run: Path) -> list[str]:
    """The recipe from the stand-in backbone (tests/runtime_models.py): these tests are about the run - files,
    skips, threshold, resume - and the real EfficientNet-Lite0 graph takes ~20 s to trace per process. A high
    --lr makes every epoch move the losses, so that a resume which lost any training state shows in them."""
    data = [a for d in data_dirs for a in ("--data", str(d))]
    return [sys.executable, "-m", "edge_dfd", "train", "--recipe", "deploy", *data, "--out", str(run),
            "--init", str(deploy_stand_in()), "--lr", "3e-3", "--epochs", str(EPOCHS), "--patience", "0", "--json",
            *map(str, TINY)]


@pytest.fixture(scope="module")
def deploy_run(tmp_path_factory):
    """One deploy run on two data sets (10 % of the first one's train images are corrupt), left alone from start to
    end: the run the folder / metadata tests read and the uninterrupted reference of the resume test."""
    tmp = tmp_path_factory.mktemp("deploy")
    a = make_140k(tmp / "a", counts={"train": 10, "valid": 4, "test": 4}, size=48, seed=1)
    b = make_140k(tmp / "b", counts={"train": 6, "valid": 2, "test": 2}, size=40, seed=2)
    bad = _corrupt(a, "train", 2)  # 2 of 20
    run = tmp / "run"
    res = subprocess.run(_deploy_cmd([a, b], run), env={**os.environ, **DETERMINISTIC}, capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    return {"a": a, "b": b, "run": run, "bad": bad, "res": json.loads(res.stdout), "stderr": res.stderr}


@pytest.mark.slow
def test_deploy_run_folder_metadata_and_skips(deploy_run):
    run, res = deploy_run["run"], deploy_run["res"]
    assert [r["epoch"] for r in read_history(run / "history.csv")] == list(range(1, EPOCHS + 1))
    meta = read_meta(run / "model.keras")
    assert meta.arch == "efficientnet_lite0_single_pass" and meta.input_size == SIZE and meta.output == "P(fake)"
    assert (meta.crop_mode, meta.crop_margin) == ("aligned", 0.33)  # written at training time: how to feed it
    assert meta.threshold_source.startswith("valid split as-is and perturbed")
    assert meta.training["recipe"] == "deploy" and meta.training["init"] == str(deploy_stand_in())
    assert meta.training["data"] == [str(deploy_run["a"].resolve()), str(deploy_run["b"].resolve())]
    conf = json.loads((run / "config.json").read_text())
    assert conf["config"]["status"] == "complete" and conf["results"]["skipped_count"] == 2
    assert sorted(conf["results"]["skipped_images"]) == sorted(str(p) for p in deploy_run["bad"])
    assert res["skipped"] == conf["results"]["skipped_images"]
    assert "warning: skipped 2 unreadable image(s)" in deploy_run["stderr"]
    # the valid report covers every valid image twice (as-is + perturbed): 2 x (8 + 4)
    assert meta.training["valid"]["n"] == 24 and meta.training["test"]["n"] == 12
    assert (run / "boxes").is_dir() and len(list((run / "boxes").rglob("part-*.npy"))) == 2


@pytest.mark.slow
def test_deploy_model_reproduces_its_test_report(deploy_run):
    """The saved model + load_image + the metadata threshold give the run's test report (the crop is live's)."""
    from edge_dfd.core.metrics import binary_report
    from edge_dfd.images.preprocess import load_image
    from edge_dfd.modelling.kerasio import load_keras

    run = deploy_run["run"]
    meta = read_meta(run / "model.keras")
    model = load_keras(run / "model.keras")
    recs = data.load_split(deploy_run["a"], "test") + data.load_split(deploy_run["b"], "test")
    x = np.stack([load_image(r.path, SIZE) for r in recs]).astype(np.float32)
    p = np.asarray(model(x, training=False)).ravel()
    rep = json.loads((run / "report.json").read_text())
    again = binary_report([r.is_fake for r in recs], p, meta.threshold)
    assert again["confusion_matrix"] == rep["confusion_matrix"]
    assert again["auc"] == pytest.approx(rep["auc"], abs=1e-6)


def test_draws_are_deterministic_and_sets_alternate(tiny140k, tmp_path):
    from edge_dfd.train import deploy

    recs_a = data.load_split(tiny140k, "train")
    other = make_140k(tmp_path / "b", counts={"train": 3}, size=40, seed=3, splits=("train",))
    recs_b = data.load_split(other, "train")
    boxes = [np.full((len(recs_a), 4), np.nan, np.float32), np.full((len(recs_b), 4), np.nan, np.float32)]
    sets = deploy.TrainSets(["a", "b"], [recs_a, recs_b], boxes, SkipLog())
    drawn = [sets.draw(0, 0, pos)[0] for pos in range(40)]
    assert all(Path(p).is_relative_to(tiny140k) for p in drawn[0::2])
    assert all(Path(p).is_relative_to(other) for p in drawn[1::2])  # sampled equally, whatever the sizes

    state = deploy.EpochState()

    def epoch(e):
        state.epoch = e
        ds = deploy.train_dataset(sets, state, seed=5, size=SIZE, steps=2, global_batch=4, batch_size=4,
                                  skips=SkipLog())
        return np.concatenate([x.numpy() for x, _ in ds]), np.concatenate([y.numpy() for _, y in ds])

    x0, y0 = epoch(0)
    x0b, y0b = epoch(0)
    x1, _ = epoch(1)
    assert x0.shape == (8, SIZE, SIZE, 3) and x0.dtype == np.uint8  # the model casts inside its step
    np.testing.assert_array_equal(x0, x0b)
    np.testing.assert_array_equal(y0, y0b)
    assert np.abs(x0.astype(float) - x1).mean() > 1.0


def test_eval_dataset_is_clean_then_perturbed(tiny140k):
    from edge_dfd.images.perturb import PERTURBATIONS, perturb
    from edge_dfd.images.preprocess import decode_image, load_image, resize_square
    from edge_dfd.train.deploy import eval_dataset

    recs = data.load_split(tiny140k, "valid")[:5]
    ds = eval_dataset(recs, size=SIZE, batch_size=3, skips=SkipLog())
    x = np.concatenate([b.numpy() for b, _ in ds])
    y = np.concatenate([b.numpy() for _, b in ds])
    clean = np.stack([load_image(r.path, SIZE) for r in recs]).astype(np.float32)
    pert = np.stack([resize_square(perturb(decode_image(r.path), PERTURBATIONS[i]), SIZE)
                     for i, r in enumerate(recs)]).astype(np.float32)
    np.testing.assert_array_equal(x, np.concatenate([clean, pert]))
    np.testing.assert_array_equal(y, [r.is_fake for r in recs] * 2)
    assert np.abs(clean - pert).mean() > 0.5


def test_box_cache_reused_and_full_disk_leaves_only_whole_parts(tiny140k, tmp_path, monkeypatch):
    from edge_dfd.core.errors import EdgeDFDError
    from edge_dfd.train import boxes as B

    monkeypatch.setattr(B, "PART", 8)
    recs = data.load_split(tiny140k, "train")  # 32 images: 4 parts
    calls = []

    class Det:
        def detect(self, frame):
            calls.append(1)
            h, w = frame.shape[:2]
            return np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], np.float32), np.array([0.9])

    real_save = np.save

    def failing_save(f, arr, **kw):
        if len(list((tmp_path / "boxes").rglob("part-*.npy"))) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(f, arr, **kw)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(EdgeDFDError) as exc:
        B.cached_boxes(tmp_path, "tiny", recs, detector_factory=Det)
    msg = str(exc.value)
    assert "\n" not in msg and "the disk is full" in msg and "part-00002.npy" in msg
    parts = sorted((tmp_path / "boxes").rglob("*"))
    assert [p.name for p in parts if p.is_file()] == ["part-00000.npy", "part-00001.npy"]  # no temporary left
    monkeypatch.setattr(np, "save", real_save)
    calls.clear()
    got = B.cached_boxes(tmp_path, "tiny", recs, detector_factory=Det)
    assert len(calls) == 16  # only the two missing parts
    side = 64  # tiny140k images: 64 px, padded by half on each side -> 128; the box is its middle half
    np.testing.assert_allclose(got, np.tile([0, 0, side, side], (32, 1)), atol=1e-4)
    calls.clear()
    np.testing.assert_array_equal(B.cached_boxes(tmp_path, "tiny", recs, detector_factory=Det), got)
    assert calls == []


def _tiny_model(path: Path, size: int, views: int = 1):
    """A stand-in detector (tests/runtime_models.py) of ``size`` px over ``views`` views: what --init checks (input
    size, backbone name, head, views) without building EfficientNet-Lite0's graph."""
    stand_in_model("efficientnet_lite0", size, views).save(path)
    return path


@pytest.mark.slow
def test_init_path_mismatch_is_one_line(cli_run, tiny140k, tmp_path):
    other_size = _tiny_model(tmp_path / "s48.keras", 48)
    code, _, err = cli_run("train", "--recipe", "deploy", "--data", tiny140k, "--out", tmp_path / "r1",
                           "--init", other_size, *TINY)
    assert code == 1 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith(f"error: --init {other_size}: input is 48x48, this run trains at 32x32")
    assert not (tmp_path / "r1").exists()
    five_views = _tiny_model(tmp_path / "five.keras", SIZE, views=5)
    code, _, err = cli_run("train", "--recipe", "deploy", "--data", tiny140k, "--out", tmp_path / "r2",
                           "--init", five_views, *TINY)
    assert code == 1 and "not a single-pass efficientnet_lite0 detector with the multi-depth head" in err, err
    code, _, err = cli_run("train", "--recipe", "deploy", "--data", tiny140k, "--out", tmp_path / "r3",
                           "--init", tmp_path / "nope.keras", *TINY)
    assert code == 1 and "file not found" in err


@pytest.mark.slow
def test_init_default_is_the_bundled_detector():
    from edge_dfd.modelling.kerasio import load_keras
    from edge_dfd.runtime import zoo
    from edge_dfd.train.deploy import build_model

    model = build_model("efficientnet_lite0", 224, "default")
    bundled = load_keras(zoo.default_path("keras"))
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(bundled(x)), atol=1e-6)
    assert all(w.trainable for w in model.get_layer("efficientnet_lite0").layers if "bn" not in w.name.lower()
               and not w.__class__.__name__.startswith("BatchNorm") and w.weights)


def _rewrite_csv(path: Path, keep):
    rows = list(csv.reader(open(path)))
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [r for r in rows[1:] if keep(r)])


def test_bad_data_is_one_line_naming_the_file(cli_run, tmp_path):
    one = make_140k(tmp_path / "one", counts={"train": 3, "valid": 2}, size=32, splits=("train", "valid"))
    _rewrite_csv(one / "train.csv", lambda r: r[4] == "real")
    code, _, err = cli_run("train", "--recipe", "deploy", "--data", one, "--out", tmp_path / "r1", *TINY)
    assert code == 1 and err.count("\n") == 1
    assert f"{one / 'train.csv'}: the train split needs real and fake images (has 3 real, 0 fake)" in err
    empty = make_140k(tmp_path / "empty", counts={"train": 3, "valid": 2}, size=32, splits=("train", "valid"))
    _rewrite_csv(empty / "valid.csv", lambda r: False)
    code, _, err = cli_run("train", "--recipe", "deploy", "--data", empty, "--out", tmp_path / "r2", *TINY)
    assert code == 1 and str(empty / "valid.csv") in err and err.count("\n") == 1, err
    cols = make_140k(tmp_path / "cols", counts={"train": 3, "valid": 2}, size=32, splits=("train", "valid"))
    rows = list(csv.reader(open(cols / "train.csv")))
    with open(cols / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([r[:3] + r[4:5] for r in rows])  # no label, no path
    code, _, err = cli_run("train", "--recipe", "deploy", "--data", cols, "--out", tmp_path / "r3", *TINY)
    assert code == 1 and str(cols / "train.csv") in err and "missing column" in err and err.count("\n") == 1, err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3").exists()


@pytest.mark.parametrize("args, needle", [
    (["--recipe", "deploy", "--weights", "imagenet"], "--weights: study-recipe option"),
    (["--recipe", "deploy", "--no-augment"], "--augment: study-recipe option"),
    (["--init", "default"], "--init: deploy-recipe option"),
    (["--steps-per-epoch", "3"], "--steps-per-epoch: deploy-recipe option"),
    (["--recipe", "deploy", "--arch", "cnn"], "--arch cnn: the deploy recipe trains efficientnet_lite0 or"),
])
def test_recipe_options_do_not_mix(cli_run, tiny140k, tmp_path, args, needle):
    code, _, err = cli_run("train", "--data", tiny140k, "--out", tmp_path / "r", *args)
    assert code in (1, 2) and needle in err, err
    assert not (tmp_path / "r" / "model.keras").exists()


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(deploy_run, tmp_path):
    """SIGKILL a deploy run after epoch 1's backup; the same command plus --resume continues from there and ends
    with the weights and history of the same run left alone (deploy_run: same data, seed and draws)."""
    cmd = _deploy_cmd([deploy_run["a"], deploy_run["b"]], tmp_path / "run")
    env = {**os.environ, **DETERMINISTIC}
    run = tmp_path / "run"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_first_backup([proc], run, timeout=300)
    assert not (run / "model.keras").exists()
    done = [r["epoch"] for r in read_history(run / "history.csv")]
    assert done and done[-1] < EPOCHS
    res = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    assert f"resuming from epoch {done[-1] + 1}" in res.stderr
    h_whole, h_run = read_history(deploy_run["run"] / "history.csv"), read_history(run / "history.csv")
    assert [r["epoch"] for r in h_run] == list(range(1, EPOCHS + 1))
    for a, b in zip(h_whole, h_run):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-5)
    assert read_meta(run / "model.keras").threshold == pytest.approx(
        read_meta(deploy_run["run"] / "model.keras").threshold, abs=1e-4)


def test_training_crop_per_recipe_and_arch():
    """What a run writes as crop_mode / crop_margin: the deploy recipe's per-arch crop, aligned for study; the
    same choice the fallback for older files makes from the arch name they carry."""
    from edge_dfd.core.meta import ModelMeta, crop_spec
    from edge_dfd.train.deploy import ARCHS, CROP_MODES, meta_arch, training_crop

    assert set(CROP_MODES) == set(ARCHS)
    assert training_crop("deploy", "efficientnet_lite0") == ("aligned", 0.33)
    assert training_crop("deploy", "mobilenet_v2") == ("box", 0.33)
    assert training_crop("study", "mobilenet_v2") == ("aligned", 0.33)
    for arch in ARCHS:
        assert crop_spec(ModelMeta(arch=meta_arch(arch))).mode == training_crop("deploy", arch)[0]


def test_recipe_defaults():
    from edge_dfd.train import TrainConfig

    study = TrainConfig(data="d", out="o")
    assert (study.arch, study.img_size, study.lr, study.init) == ("cnn", 256, 1e-3, None)
    fresh = TrainConfig(data=["d"], out="o", recipe="deploy")
    assert (fresh.arch, fresh.img_size, fresh.lr, fresh.init, fresh.data) == ("efficientnet_lite0", 224, 1e-4,
                                                                              "imagenet", "d")
    tune = TrainConfig(data=["a", "b"], out="o", recipe="deploy", init="default")
    assert tune.lr == 1e-5 and tune.data_dirs == [Path("a"), Path("b")]
    assert TrainConfig(data="d", out="o", recipe="deploy", init="default", lr=3e-4).lr == 3e-4
