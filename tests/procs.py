"""Killing a training run mid-way, the way a power cut would (shared by the resume tests)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path


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
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
