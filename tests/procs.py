"""Subprocess helpers: killing a training run mid-way, the way a power cut would (the resume tests), and an
environment in which a child process cannot import TensorFlow (or any other blocked module)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kill_after_first_backup(procs, run: Path, timeout: float) -> None:
    """Wait until the run folder's checkpoint backup records a complete epoch, then SIGKILL every process.

    Fails (AssertionError with the first process's stderr) when one ended before it could be killed."""
    meta = Path(run) / "checkpoints" / "backup" / "training_metadata.json"
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and all(p.poll() is None for p in procs):
            try:
                if json.loads(meta.read_text())["epoch"] >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        if not all(p.poll() is None for p in procs):
            err = procs[0].stderr.read() if procs[0].stderr else ""
            raise AssertionError("a run ended before it could be killed: "
                                 + (err.decode() if isinstance(err, bytes) else err))
        for p in procs:  # all at once: a worker that outlived its peer could end on its own, cleaning up
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)


TF_MODULES = ("tensorflow", "keras", "tf2onnx", "tf_keras")
BLOCKER = '''
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"blocked for this test: {{name}}")
        return None
sys.meta_path.insert(0, _Block())
'''


def blocking_env(tmp_path, blocked=TF_MODULES) -> dict:
    """Environment for a subprocess in which importing any of the ``blocked`` top-level modules fails."""
    d = tmp_path / "blocker"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(BLOCKER.format(blocked=tuple(blocked)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def no_tf_env(tmp_path) -> dict:
    return blocking_env(tmp_path)
