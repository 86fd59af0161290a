"""edge-dfd train --recipe deploy under tf.distribute (h6): MirroredStrategy on the CPU and two real
MultiWorkerMirroredStrategy worker processes on loopback ports (tests/cluster.py). The study recipe's distributed
runs, TF_CONFIG and sharding: tests/test_distribute.py."""

import json

import pytest
from cluster import assert_same_weights, finish, needs_loopback, start_workers
from lazy import lazy_module
from runtime_models import deploy_stand_in

lazy_module("tensorflow")  # skips without it; imported by the tests that use it, not while pytest collects


@pytest.mark.slow
def test_deploy_recipe_mirrored_on_cpu(cli_run, tiny140k, tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this check is for a CPU-only machine")
    run = tmp_path / "run"
    code, out, err = cli_run("train", "--recipe", "deploy", "--data", tiny140k, "--out", run, "--epochs", "1",
                             "--img-size", "32", "--batch-size", "4", "--steps-per-epoch", "2",
                             "--distribute", "mirrored", "--json")
    assert code == 0, err
    assert "per-replica batch 4 x 1 replicas = global batch 4" in err
    conf = json.loads((run / "config.json").read_text())
    assert conf["config"]["recipe"] == "deploy" and conf["distribute"]["mode"] == "mirrored"
    assert json.loads(out)["epochs_run"] == 1
    from edge_dfd.core.meta import read_meta

    assert read_meta(run / "model.keras").arch == "efficientnet_lite0_single_pass"


@needs_loopback[0]
@needs_loopback[1]
@pytest.mark.slow
def test_deploy_recipe_two_workers_on_localhost(tiny140k, tmp_path):
    """`train --recipe deploy --distribute multi-worker` on two processes: same weights on both, the chief writes.
    From the stand-in backbone (tests/runtime_models.py): the real one is traced above, in the mirrored test."""
    run, dump, tmp = tmp_path / "run", tmp_path / "dump", tmp_path / "tmp"
    tmp.mkdir()
    procs = start_workers(tiny140k, run, 1, dump, tmp, quiet=(False, False),
                          recipe_args=("--recipe", "deploy", "--init", str(deploy_stand_in()), "--img-size", "32",
                                       "--batch-size", "2", "--steps-per-epoch", "2"))
    outs = finish(procs, timeout=400)
    for _, err in outs:
        assert "per-replica batch 2 x 2 replicas = global batch 4" in err
    assert_same_weights(dump)
    from edge_dfd.core.meta import read_meta

    assert read_meta(run / "model.keras").training["recipe"] == "deploy"
    assert json.loads((run / "config.json").read_text())["distribute"]["workers"] == 2
