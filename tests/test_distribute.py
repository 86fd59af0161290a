"""edge-dfd train --distribute: TF_CONFIG validation, sharding, shared BackupAndRestore, mirrored on CPU,
and two real MultiWorkerMirroredStrategy worker processes on loopback ports (tests/cluster.py). The deploy recipe
under tf.distribute: tests/test_distribute_deploy.py."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cluster import assert_same_weights, finish, needs_loopback, start_workers
from lazy import lazy_module
from procs import kill_after_first_backup

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.images import data
from edge_dfd.train import SkipLog, TrainConfig, make_dataset
from edge_dfd.train.distribute import Distribution, parse_tf_config, setup

lazy_module("tensorflow")  # skips without it; imported by the tests that use it, not while pytest collects

TWO = {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 1}}


# ---------------------------------------------------------------- TF_CONFIG


def test_tf_config_parsed():
    spec = parse_tf_config(json.dumps(TWO))
    assert (spec.num_workers, spec.task_type, spec.task_index, spec.is_chief) == (2, "worker", 1, False)
    assert parse_tf_config(json.dumps({**TWO, "task": {"type": "worker", "index": 0}})).is_chief
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}
    spec = parse_tf_config(json.dumps(with_chief))
    assert spec.num_workers == 2 and not spec.is_chief  # a "chief" job takes the chief role from worker 0


@pytest.mark.parametrize("value,needle", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster: 1", "TF_CONFIG is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "has no 'cluster' object"),
    ('{"cluster": {"worker": ["h:1"]}}', "has no 'task' object"),
    ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}', "cluster.worker must be a non-empty"),
    ('{"cluster": {"worker": ["h"]}, "task": {"type": "worker", "index": 0}}', "cluster.worker must be a non-empty"),
    ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}', "['ps']"),
    ('{"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}', "same host:port"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}', "task.type 'chief' is not a job"),
    ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}', "expected 0..1"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": "0"}}', "task.index '0' is out of range"),
])
def test_tf_config_errors_are_one_line(value, needle):
    with pytest.raises(EdgeDFDError) as e:
        parse_tf_config(value)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_setup_modes(capsys):
    d = setup("none", environ={"TF_CONFIG": json.dumps(TWO)})
    assert d.strategy is None and d.is_chief and d.num_replicas == 1 and d.global_batch(32) == 32
    assert "TF_CONFIG is set but --distribute is none" in capsys.readouterr().err
    with pytest.raises(EdgeDFDError, match="needs the TF_CONFIG"):
        setup("multi-worker", environ={})
    with pytest.raises(EdgeDFDError, match="unknown --distribute 'ring'"):
        setup("ring", environ={})


def test_cli_reports_bad_tf_config(cli_run, tiny140k, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker"}}')
    code, _, err = cli_run("train", "--data", tiny140k, "--out", tmp_path / "run", "--distribute", "multi-worker")
    assert code == 1 and "error: TF_CONFIG: task.index None is out of range for cluster.worker" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    code, _, err = cli_run("train", "--data", tiny140k, "--out", tmp_path / "run", "--distribute", "ring")
    assert code == 2 and "'ring' is not one of" in err


# ---------------------------------------------------------------- input sharding


def test_shards_are_disjoint_and_complete(tiny140k):
    recs = data.load_split(tiny140k, "train")
    cfg = TrainConfig(data=str(tiny140k), out="unused", img_size=32, augment=False)

    def images(shard, batch):
        ds = make_dataset(recs, cfg, SkipLog(), training=False, batch_size=batch, shard=shard)
        sizes = [int(x.shape[0]) for x, _ in ds]
        xs = np.concatenate([x.numpy() for x, _ in ds])
        return sizes, {x.tobytes() for x in xs.astype(np.uint8)}

    sizes_all, every = images(None, 8)
    sizes0, s0 = images((2, 0), 4)
    sizes1, s1 = images((2, 1), 4)
    assert len(every) == len(recs) == 32 and sizes_all == [8, 8, 8, 8]
    assert sizes0 == sizes1 == [4, 4, 4, 4]  # each worker: half the records, per-replica batches
    assert not s0 & s1 and s0 | s1 == every


class _FakeStrategy:
    """Records what distribute_datasets_from_function is given and calls it like TF does for one worker."""

    def __init__(self, ctx):
        self.ctx = ctx

    def distribute_datasets_from_function(self, fn):
        return fn(self.ctx)


@pytest.mark.parametrize("pipelines,replicas,expect", [(2, 2, (16, (2, 1))), (1, 4, (16, None)), (4, 8, (16, (4, 1)))])
def test_distribute_dataset_batch_and_shard(pipelines, replicas, expect):
    import tensorflow as tf

    ctx = tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=1,
                                     num_replicas_in_sync=replicas)
    dist = Distribution("multi-worker", _FakeStrategy(ctx), num_replicas=replicas, num_workers=pipelines)
    got = dist.distribute_dataset(lambda bs, shard: (bs, shard), per_replica_batch=16)
    assert got == expect  # per-replica batch = global (16 x replicas) / replicas; shard only across pipelines
    assert dist.global_batch(16) == 16 * replicas
    assert Distribution().distribute_dataset(lambda bs, shard: (bs, shard), 16) == (16, None)


# ---------------------------------------------------------------- resume state


def test_non_chief_restores_from_chief_backup_and_writes_its_own(tmp_path):
    import keras

    from edge_dfd.train.distribute import backup_and_restore

    def model():
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        m.compile("sgd", "mse")
        return m

    chief_m, shared, own = model(), tmp_path / "run" / "backup", tmp_path / "tmp" / "backup"
    chief = backup_and_restore(Distribution(), shared, shared)
    chief.set_model(chief_m)
    chief.on_epoch_end(1)  # the chief backed up after epoch 2 (0-based epoch 1)
    worker_m = model()
    assert not np.allclose(worker_m.get_weights()[0], chief_m.get_weights()[0])
    worker = backup_and_restore(Distribution(is_chief=False), shared, own)
    worker.set_model(worker_m)
    worker.on_train_begin()
    for a, b in zip(worker_m.get_weights(), chief_m.get_weights()):
        np.testing.assert_allclose(a, b, atol=0)
    assert worker_m._initial_epoch == 2 and not own.exists()
    before = {p.name: p.stat().st_mtime_ns for p in shared.iterdir()}
    worker.on_epoch_end(2)
    assert sorted(p.name for p in own.iterdir()) == ["latest.weights.h5", "training_metadata.json"]
    assert {p.name: p.stat().st_mtime_ns for p in shared.iterdir()} == before  # never writes the chief's


# ---------------------------------------------------------------- mirrored (runs on the CPU here)


@pytest.mark.slow
def test_mirrored_on_cpu(cli_run, tiny140k, tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this check is for a CPU-only machine")
    run = tmp_path / "run"
    code, out, err = cli_run("train", "--data", tiny140k, "--out", run, "--epochs", "1", "--img-size", "32",
                             "--batch-size", "8", "--no-augment", "--distribute", "mirrored", "--json")
    assert code == 0, err
    assert "no GPU visible: MirroredStrategy runs one replica on the CPU" in err
    assert "per-replica batch 8 x 1 replicas = global batch 8" in err
    conf = json.loads((run / "config.json").read_text())
    assert conf["config"]["distribute"] == "mirrored"
    assert conf["distribute"] | {"devices": None} == {"mode": "mirrored", "replicas": 1, "workers": 1,
                                                      "task": "worker:0", "is_chief": True, "devices": None,
                                                      "per_replica_batch": 8, "global_batch": 8}
    assert json.loads(out)["epochs_run"] == 1 and (run / "model.keras").is_file()


# ---------------------------------------------------------------- two real workers




@pytest.mark.parametrize("quiet", [False, True])
def test_progress_reads_per_replica_logs(quiet, tmp_path):
    """Under a strategy Keras's batch logs hold one value per local replica (an array, shape (replicas,)): the
    progress postfix and the epoch row take their mean instead of float() on the array (a TypeError before)."""
    from edge_dfd.core import progress
    from edge_dfd.train import SkipLog
    from edge_dfd.train.keeper import progress_bars, read_history, run_keeper, scalar

    assert scalar(np.float32(0.25)) == 0.25 and scalar(np.array([0.5, 0.7])) == pytest.approx(0.6)
    progress.set_quiet(quiet)
    try:
        bars = progress_bars(1, 2, None)
        bars.on_epoch_begin(0)
        bars.on_train_batch_end(0, {"loss": np.array([0.5, 0.7], np.float32), "accuracy": np.array([0.25] * 2)})
        assert bars.bar.postfix == "loss 0.6000  accuracy 0.2500"
        bars.on_epoch_end(0)
    finally:
        progress.set_quiet(False)
    keeper = run_keeper(tmp_path, 1, 0, "val_loss", SkipLog())
    keeper.set_model(_tiny_keras())
    keeper.on_epoch_begin(0)
    keeper.on_epoch_end(0, {"loss": np.array([0.5], np.float32), "val_loss": np.array([0.3, 0.5], np.float32)})
    (row,) = read_history(tmp_path / "history.csv")
    assert row["loss"] == 0.5 and row["val_loss"] == pytest.approx(0.4)


def test_restarted_worker_removes_only_its_own_stale_folders(tmp_path, monkeypatch, capsys):
    """The non-chief's temporary folder is named after its task and the run, so a worker restarted after a
    SIGKILL deletes what its killed attempt left (saying so), and nothing of another worker or another run."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run, other_run = tmp_path / "run", tmp_path / "other"
    w1 = Distribution(mode="multi-worker", task="worker:1", is_chief=False, num_workers=3)
    w2 = Distribution(mode="multi-worker", task="worker:2", is_chief=False, num_workers=3)
    mine = Path(tempfile.mkdtemp(prefix=w1.tmp_prefix(run)))
    (mine / "history.csv").write_text("epoch,loss\n1,0.5\n")
    theirs = Path(tempfile.mkdtemp(prefix=w2.tmp_prefix(run)))
    other = Path(tempfile.mkdtemp(prefix=w1.tmp_prefix(other_run)))
    assert w1.tmp_prefix(run).startswith("edge-dfd-worker1-") and w1.tmp_prefix(run) != w1.tmp_prefix(other_run)
    assert w1.tmp_prefix(run) == w1.tmp_prefix(tmp_path / "x" / ".." / "run")  # the same folder, spelled otherwise

    new = w1.work_dir(run)
    removed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("removed ")]
    assert removed == [f"removed {mine}: the temporary folder of a killed earlier attempt of worker:1 on this run"]
    assert not mine.exists()
    assert theirs.is_dir() and other.is_dir() and new.is_dir() and new != mine
    assert new.name.startswith(w1.tmp_prefix(run))
    w1.cleanup()
    assert not new.exists() and theirs.is_dir()
    chief = Distribution(mode="multi-worker", task="worker:0", is_chief=True, num_workers=3)
    assert chief.work_dir(run) == run and "removed " not in capsys.readouterr().err


def _tiny_keras():
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    return m


@pytest.mark.slow
@needs_loopback[0]
@needs_loopback[1]
def test_one_worker_multi_worker(tiny140k, tmp_path):
    """TF_CONFIG with one worker (the documented single-machine check): trains, drawing its progress bars (it
    crashed in the progress postfix: a per-replica log value given to float()). A --quiet worker: worker 1 of
    test_two_workers_on_localhost_sigkilled_and_resumed."""
    run, dump, tmp = tmp_path / "run", tmp_path / "dump", tmp_path / "tmp"
    tmp.mkdir()
    ((out, err),) = finish(start_workers(tiny140k, run, 1, dump, tmp, n=1, quiet=(False,)))
    assert "1 replica(s) on 1 worker(s)" in err and "error:" not in err
    assert json.loads(out)["epochs_run"] == 1 and (run / "model.keras").is_file()


@needs_loopback[0]
@needs_loopback[1]
@pytest.mark.slow
def test_two_workers_on_localhost_sigkilled_and_resumed(tiny140k, tmp_path):
    """Two `edge-dfd train --distribute multi-worker` processes, a real TF_CONFIG on free loopback ports (worker 0
    draws progress, worker 1 is --quiet): SIGKILL both after the chief's epoch-1 backup, restart both with
    --resume, and they finish the run as one uninterrupted run would - one test, because each run of two
    TensorFlow processes costs ~20 s of both cores."""
    from edge_dfd.modelling.kerasio import load_keras
    from edge_dfd.train import read_history

    run, dump, tmp = tmp_path / "run", tmp_path / "dump", tmp_path / "tmp"
    tmp.mkdir()
    epochs = 3
    procs = start_workers(tiny140k, run, epochs, dump, tmp)
    kill_after_first_backup(procs, run, timeout=180)
    for p in procs:
        p.communicate()
    assert not (run / "model.keras").exists()
    done = [r["epoch"] for r in read_history(run / "history.csv")]
    assert done and done == list(range(1, len(done) + 1)) and done[-1] < epochs

    # the SIGKILLed non-chief could not delete its temporary folder: the restarted one deletes it
    stale = sorted(tmp.glob("edge-dfd-worker1-*"))
    assert len(stale) == 1
    outs = finish(start_workers(tiny140k, run, epochs, dump, tmp, ["--resume"]))
    for s in stale:
        assert f"removed {s}: the temporary folder of a killed earlier attempt of worker:1" in outs[1][1]
    for _, err in outs:
        assert f"resuming from epoch {done[-1] + 1}" in err  # both restored the chief's backup
        assert "2 replica(s) on 2 worker(s)" in err and "per-replica batch 4 x 2 replicas = global batch 8" in err
    (out0, err0), (out1, err1) = outs
    assert "worker:0, chief" in err0 and "worker:1, non-chief" in err1
    history = read_history(run / "history.csv")
    assert [r["epoch"] for r in history] == list(range(1, epochs + 1))
    assert json.loads(out0)["epochs_run"] == json.loads(out1)["epochs_run"] == epochs
    # the last epoch's line (global metrics, aggregated over both workers) is the same on both
    epoch_line = [line for line in err0.splitlines() if line.startswith(f"epoch {epochs}/{epochs}  ")]
    assert epoch_line and epoch_line[0].rsplit("  ", 2)[0] in err1

    # both workers end with the same weights (MultiWorkerMirroredStrategy all-reduces every step)
    w_last = assert_same_weights(dump)

    # only the chief wrote the run folder; the backup is gone, and so are the non-chief's temporary folders of
    # both attempts (TensorFlow's own autograph files of the SIGKILLed processes stay: nobody could remove them)
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checkpoints", "config.json", "confusion_matrix.png", "curves.png", "history.csv", "model.keras",
         "report.json", "report.txt"])
    assert not (run / "checkpoints" / "backup").exists()
    assert not list(tmp.glob("edge-dfd-*"))
    conf = json.loads((run / "config.json").read_text())
    assert conf["distribute"]["global_batch"] == 8 and conf["distribute"]["workers"] == 2

    # the chief's model is the best epoch's: the workers' last weights when the last epoch was the best
    best = min(history, key=lambda r: r["val_loss"])["epoch"]
    model = load_keras(run / "model.keras")
    same = all(np.allclose(a, w_last[k], atol=1e-6) for a, k in zip(model.get_weights(), w_last.files))
    assert same == (best == epochs), f"best epoch {best} of {epochs}"
    from synth import synth_face

    x = np.stack([synth_face(f, 32, seed=900 + i) for i, f in enumerate([False, True, False, True])])
    p = np.asarray(model(x.astype(np.float32), training=False)).reshape(-1)
    assert p.shape == (4,) and np.all((p > 0) & (p < 1))
    rep = json.loads((run / "report.json").read_text())
    assert rep["n"] == 16  # the chief evaluated the whole test split, not a shard
