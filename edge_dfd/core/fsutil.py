"""Atomic file output: a killed command never leaves a half-written file that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from edge_dfd.core.errors import EdgeDFDError


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; on success it is renamed over ``path`` (os.replace).

    The temporary file keeps the target's suffix (or ``suffix``) so that libraries that
    dispatch on the extension (Keras ``.keras``, OpenCV video writers) still work.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    sfx = suffix if suffix is not None else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _default_mode(path))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _default_mode(path: Path) -> int:
    """Keep an existing file's mode; otherwise the usual 0666 & ~umask (mkstemp would leave 0600)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path, data: bytes) -> Path:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # disk full, quota, I/O error: one line naming the file; the old file is intact
        raise EdgeDFDError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def ensure_writable_dir(d) -> Path:
    """Create ``d`` if needed and check it is writable; one-line error otherwise."""
    d = Path(d)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeDFDError(f"cannot create output folder {d}: {exc.strerror or exc}") from None
    if not d.is_dir():
        raise EdgeDFDError(f"output path {d} exists and is not a folder")
    if not os.access(d, os.W_OK | os.X_OK):
        raise EdgeDFDError(f"output folder {d} is not writable")
    return d


def sha256_file(path, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
