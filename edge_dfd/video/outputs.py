"""Outputs of a long-running command (``edge-dfd live``) that survive a stop, a crash or a power cut.

- ``EventLog``: JSON lines appended as they happen (``tail -f`` works). Each frame's lines go to the kernel in
  one write as soon as the frame is done and are fsync'ed at least once per ``SYNC_EVERY`` s, so after SIGKILL
  or a power cut the file holds everything up to the last sync and ends with a complete line: a torn last line
  (a write cut short) is removed when the file is opened again; a write that fails (disk full) is rolled back
  to the last complete line. Optional rotation by size or time, keeping the newest ``keep`` rotated files.
- ``VideoSegments`` (``edge_dfd.video.segments``) writes the annotated video with the naming, pruning and
  free-space rules below. ``Health`` (``edge_dfd.video.health``): the status file, heartbeat and ``sd_notify``.
- ``check_output_path`` / ``check_free_space``: one-line errors for a missing or read-only folder; a disk that is
  nearly full stops the run while there is still room to finalise the outputs.

Nothing here knows about faces or frames: the caller gives lines, images and status fields.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from pathlib import Path

from edge_dfd.core.errors import EdgeDFDError

SYNC_EVERY = 1.0  # s between fsyncs of the event log (each frame is written to the kernel at once)
MIN_FREE_BYTES = 32 << 20  # stop cleanly below this much free space on an output's file system
DISK_CHECK_EVERY = 1.0  # s between free-space checks
STAMP = "%Y%m%dT%H%M%SZ"  # UTC stamp in rotated / segment names: sortable, no colons
STAMP_RE = r"\d{8}T\d{6}Z(?:-\d+)?"


class OutputError(EdgeDFDError):
    """An output that cannot be written mid-run (disk full, I/O error): the run stops and keeps what it wrote."""


class OutputClosed(Exception):
    """The reader of ``--events -`` closed the pipe: stop like at the end of the source."""


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def stamp(t: float | None = None) -> str:
    return time.strftime(STAMP, time.gmtime(time.time() if t is None else t))


def check_output_path(path, option: str) -> Path:
    """The output file ``path`` of ``option``, or a one-line error: its folder must exist and be writable."""
    p = Path(path).expanduser()
    d = p.parent
    if not d.exists():
        raise EdgeDFDError(f"{option} {p}: folder {d} does not exist")
    if not d.is_dir():
        raise EdgeDFDError(f"{option} {p}: {d} is not a folder")
    if not os.access(d, os.W_OK | os.X_OK):
        raise EdgeDFDError(f"{option} {p}: folder {d} is not writable")
    if p.is_dir():
        raise EdgeDFDError(f"{option} {p}: is a folder")
    return p


def check_free_space(folders, minimum: int = MIN_FREE_BYTES) -> None:
    """OutputError when a folder's file system has less than ``minimum`` bytes free."""
    for d in folders:
        try:
            free = shutil.disk_usage(d).free
        except OSError:
            continue
        if free < minimum:
            raise OutputError(f"disk nearly full: {free / 2**20:.1f} MB free in {d} (less than "
                              f"{minimum / 2**20:.0f} MB)")


def unique(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``, ... if it exists."""
    if not path.exists():
        return path
    for i in range(1, 10000):
        p = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not p.exists():
            return p
    raise EdgeDFDError(f"{path}: too many files with this name")


def stamped(path: Path, t: float | None = None) -> Path:
    """``dir/name.suffix`` -> ``dir/name.<UTC stamp>.suffix``, or ``...<stamp>-N.suffix`` after the files with
    the same stamp (several in one second), so that names sort in the order they were made."""
    st = stamp(t)
    rx = re.compile(rf"^{re.escape(path.stem)}\.{st}(?:-(\d+))?(?:\.partial)?{re.escape(path.suffix)}$")
    taken = [int(m.group(1) or 0) for p in path.parent.iterdir() if (m := rx.match(p.name))]
    return path.with_name(f"{path.stem}.{st}{'-%d' % (max(taken) + 1) if taken else ''}{path.suffix}")


def rotated_files(path: Path) -> list[Path]:
    """Files named ``stem.<stamp>.suffix`` beside ``path``, oldest first."""
    rx = re.compile(rf"^{re.escape(path.stem)}\.(\d{{8}}T\d{{6}}Z)(?:-(\d+))?{re.escape(path.suffix)}$")
    found = [(m.group(1), int(m.group(2) or 0), p) for p in path.parent.iterdir()
             if (m := rx.match(p.name)) and p.is_file()]
    return [p for *_, p in sorted(found)]


def prune(path: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` rotated files of ``path`` (keep 0: keep all). Returns the deleted."""
    if keep <= 0:
        return []
    old = rotated_files(path)[:-keep]
    for p in old:
        with contextlib.suppress(OSError):
            p.unlink()
    return old


def report_hidden_leftovers(path: Path) -> list[Path]:
    """Hidden temporary files ``.NAME.*.tmp.SUFFIX`` that edge-dfd < 0.x left beside ``path`` when killed
    (it wrote events and videos to such files and renamed them at the end): report, never touch."""
    rx = re.compile(rf"^\.{re.escape(path.name)}\..+\.tmp{re.escape(path.suffix)}$")
    found = sorted(p for p in path.parent.iterdir() if rx.match(p.name))
    for p in found:
        warn(f"{p}: a hidden temporary file left by a killed run of an older edge-dfd ({p.stat().st_size} "
             "bytes); not touched - rename or delete it")
    return found


# ============================================================================ rotation spec


def parse_rotate(spec: str | None) -> tuple[str, float] | None:
    """``'100MB'`` -> ("size", bytes); ``'1h'`` -> ("time", seconds); None -> None. ValueError otherwise."""
    if not spec:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", spec)
    sizes = {"kb": 2**10, "mb": 2**20, "gb": 2**30}
    times = {"s": 1, "min": 60, "h": 3600, "d": 86400}
    if m:
        n, unit = float(m.group(1)), m.group(2).lower()
        if unit in sizes and n * sizes[unit] >= 1024:
            return "size", n * sizes[unit]
        if unit in times and n * times[unit] >= 1:
            return "time", n * times[unit]
    raise ValueError(f"{spec!r}: expected a size (e.g. 100MB, 1GB, 512KB) or an interval (e.g. 30min, 1h, 1d)")


# ============================================================================ event log


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no newline at the end, e.g. after a power cut) off ``path``; returns the bytes
    removed. Only regular, non-empty files are touched."""
    try:
        st = path.stat()
    except OSError:
        return 0
    if not path.is_file() or st.st_size == 0:
        return 0
    with open(path, "rb") as f:
        end = pos = st.st_size
        while pos > 0:
            step = min(pos, 1 << 16)
            f.seek(pos - step)
            block = f.read(step)
            if pos == end and block.endswith(b"\n"):
                return 0
            i = block.rfind(b"\n")
            if i >= 0:
                pos = pos - step + i + 1
                break
            pos -= step
    os.truncate(path, pos)
    return end - pos


class EventLog:
    """Append-only JSON lines: ``path`` or ``"-"`` (stdout). ``write(lines)`` writes one frame's lines.

    ``rotate``: ("size", bytes) or ("time", seconds) from ``parse_rotate``; a rotated file becomes
    ``stem.<UTC stamp of its last event>.suffix`` beside the log, and only the newest ``keep`` of those are
    kept (0: all). Time rotation is aligned to UTC (1h: on the hour, 1d: at midnight UTC), also across restarts.
    """

    def __init__(self, spec, rotate: tuple[str, float] | None = None, keep: int = 10, option: str = "--events"):
        self.option, self.rotate, self.keep = option, rotate, keep
        self.lines = 0  # written by this run
        self.rotations = 0
        self.fd = None
        self.stdout = str(spec) == "-"
        if self.stdout:
            self.path = None
            return
        self.path = check_output_path(spec, option)
        report_hidden_leftovers(self.path)
        try:
            torn = repair_tail(self.path)
            if torn:
                warn(f"{option} {self.path}: removed a torn last line ({torn} bytes) left by an unclean stop")
            if self.rotate and self.rotate[0] == "time" and self.path.is_file() and self.path.stat().st_size:
                mtime = self.path.stat().st_mtime
                if self._period(mtime) < self._period(time.time()):
                    self._rename_current(mtime)
            self._open()
        except OSError as exc:
            raise EdgeDFDError(f"{option} {self.path}: cannot open for appending ({exc.strerror or exc})") from None

    def _period(self, t: float) -> int:
        return int(t // self.rotate[1])

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o666)
        self.size = os.fstat(self.fd).st_size
        self._synced = time.monotonic()
        self._dirty = False
        self._opened_period = self._period(time.time()) if self.rotate and self.rotate[0] == "time" else None

    def _rename_current(self, t: float) -> None:
        os.replace(self.path, stamped(self.path, t))
        self.rotations += 1
        prune(self.path, self.keep)

    def write(self, lines: list[str]) -> None:
        """One frame's lines (JSON strings without newline), written in one go; OutputError when they cannot
        be (the file is cut back to its last complete line)."""
        if not lines:
            return
        data = "".join(line + "\n" for line in lines)
        if self.stdout:
            try:
                sys.stdout.write(data)
                sys.stdout.flush()
            except BrokenPipeError:  # the reader went away (| head): a normal end, not an error
                raise OutputClosed("--events -: stdout was closed") from None
            except OSError as exc:  # a terminal that went away, ...
                raise OutputError(f"--events -: cannot write to stdout ({exc.strerror or exc})") from None
            self.lines += len(lines)
            return
        if self._opened_period is not None and self._period(time.time()) != self._opened_period:
            self._rotate_now()
        raw = data.encode("utf-8")
        buf = memoryview(raw)
        try:
            while buf:
                n = os.write(self.fd, buf)
                buf = buf[n:]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)  # no torn line: back to the last complete one
            raise OutputError(f"{self.option} {self.path}: cannot write ({exc.strerror or exc})") from None
        self.size += len(raw)
        self.lines += len(lines)
        self._dirty = True
        self.tick()
        if self.rotate and self.rotate[0] == "size" and self.size >= self.rotate[1]:
            self._rotate_now()

    def tick(self, force: bool = False) -> None:
        """fsync when the last sync is ``SYNC_EVERY`` s old (called per frame and by the caller's timer)."""
        if self.fd is None or not self._dirty:
            return
        now = time.monotonic()
        if force or now - self._synced >= SYNC_EVERY:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                raise OutputError(f"{self.option} {self.path}: cannot write ({exc.strerror or exc})") from None
            self._synced, self._dirty = now, False

    def _rotate_now(self) -> None:
        self.tick(force=True)
        os.close(self.fd)
        self.fd = None
        try:
            self._rename_current(time.time())
            self._open()
        except OSError as exc:
            raise OutputError(f"{self.option} {self.path}: cannot rotate ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OutputError):
            self.tick(force=True)
        os.close(self.fd)
        self.fd = None
