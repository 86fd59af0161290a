"""Expensive test inputs built once per test run, shared by every pytest-xdist worker.

``shared(name, build)`` calls ``build(folder)`` once for the whole run (the first process to take the file lock
builds, the others wait and read its pickled result) and memoises it per process. conftest.py points ``ROOT`` at
the run's temporary folder (the folder above the workers' own with xdist); outside pytest a fresh temporary
folder is used. The result must be picklable (paths, dicts of paths, arrays).
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; every process builds its own copy
    fcntl = None

ROOT: Path | None = None
_MEMO: dict = {}


def shared(name: str, build):
    if name in _MEMO:
        return _MEMO[name]
    global ROOT
    if ROOT is None:
        ROOT = Path(tempfile.mkdtemp(prefix="edge_dfd_tests_"))
    root = ROOT if fcntl is not None else Path(tempfile.mkdtemp(prefix="edge_dfd_tests_"))
    root.mkdir(parents=True, exist_ok=True)
    done = root / f"{name}.pkl"
    with open(root / f"{name}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            result = pickle.loads(done.read_bytes())
        else:
            folder = root / name
            folder.mkdir(exist_ok=True)
            result = build(folder)
            tmp = done.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(result))
            tmp.replace(done)
    _MEMO[name] = result
    return result
