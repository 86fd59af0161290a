"""`edge-dfd train --distribute multi-worker` clusters of real worker processes on loopback ports, for the
tests of tests/test_distribute.py (the study recipe) and tests/test_distribute_deploy.py (the deploy recipe)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from edge_dfd.train.distribute import DUMP_ENV


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def loopback_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
        return True
    except OSError:
        return False


STUDY_ARGS = ("--img-size", "32", "--batch-size", "4", "--no-augment")


def start_workers(ds, run, epochs, dump, tmp, extra=(), n=2, quiet=(False, True), recipe_args=STUDY_ARGS):
    """Start ``n`` `edge-dfd train --distribute multi-worker` processes with a real TF_CONFIG on free ports;
    worker i gets --quiet when ``quiet[i]`` (by default worker 0 draws its progress bars, worker 1 is quiet).
    ``recipe_args``: the recipe, size and batch options (the study recipe's by default)."""
    workers = [f"127.0.0.1:{p}" for p in free_ports(n)]
    cmd = [sys.executable, "-m", "edge_dfd", "train", "--data", str(ds), "--out", str(run), "--epochs", str(epochs),
           *recipe_args, "--patience", "0", "--distribute", "multi-worker", "--json", *extra]
    procs = []
    for i in range(n):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", DUMP_ENV: str(dump), "TMPDIR": str(tmp),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(cmd + (["--quiet"] if quiet[i] else []), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=240):
    """Wait for every worker (killing all of them on timeout); return [(stdout, stderr)], all exit codes 0."""
    outs, deadline = [], time.time() + timeout
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1, deadline - time.time())))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def assert_same_weights(dump):
    w0, w1 = np.load(dump / "weights-worker-0.npz"), np.load(dump / "weights-worker-1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for k in w0.files:
        np.testing.assert_allclose(w0[k], w1[k], atol=1e-6)
    return w0


needs_loopback = [
    pytest.mark.skipif(sys.platform == "win32", reason="MultiWorkerMirroredStrategy workers need a POSIX platform"),
    pytest.mark.skipif(not loopback_ok(), reason="cannot bind a TCP port on 127.0.0.1 (no loopback networking)"),
]
