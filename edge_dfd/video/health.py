"""Health of a long-running command (``edge-dfd live``): a status file, a heartbeat line, systemd's sd_notify.

- ``Health``: every few seconds the status file (JSON of the caller's fields plus time, pid, RSS, replaced
  atomically), an optional heartbeat line on stderr, and sd_notify WATCHDOG=1 / STATUS=... .
- ``SdNotify``: systemd's notification protocol (READY / WATCHDOG / STOPPING / STATUS) to ``$NOTIFY_SOCKET``.
- ``rss_mb``: resident memory of this process.

Split from ``edge_dfd.video.outputs`` (the event log and video outputs), which still exports these names.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.video.outputs import OutputError, check_output_path


class SdNotify:
    """systemd's notification protocol (``Type=notify``, ``WatchdogSec=``) without libsystemd: datagrams to
    ``$NOTIFY_SOCKET``. Does nothing when the variable is not set."""

    def __init__(self):
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self.sock = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_every = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        if not addr:
            return
        if addr.startswith("@"):
            addr = "\0" + addr[1:]
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)  # never wait on a receiver that does not read
            self.sock.connect(addr)
        except OSError:
            self.sock = None

    def send(self, *fields: str) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.send("\n".join(fields).encode())

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class Health:
    """Every ``every`` s: the status file rewritten (atomically; JSON of the caller's fields plus time, pid,
    RSS), a heartbeat line on stderr if ``heartbeat``, and sd_notify WATCHDOG=1 / STATUS=... . ``beat(fields)``
    is called per frame and decides itself when to write."""

    def __init__(self, status_path=None, every: float = 10.0, heartbeat: bool = False, label: str = "live"):
        self.path = check_output_path(status_path, "--status") if status_path else None
        self.every, self.heartbeat, self.label = max(0.2, float(every)), heartbeat, label
        self.notify = SdNotify()
        self.started = time.time()
        self._last = time.monotonic()
        self._last_wd = 0.0
        self._failed = False
        if self.path is not None:  # temporary files of an atomic write cut short by SIGKILL: ours, regenerated
            rx = re.compile(rf"^\.{re.escape(self.path.name)}\..+\.tmp{re.escape(self.path.suffix)}$")
            for p in self.path.parent.iterdir():
                if rx.match(p.name):
                    with contextlib.suppress(OSError):
                        p.unlink()

    def ready(self, fields: dict) -> None:
        self.notify.send("READY=1", f"STATUS={self.label}: started")
        self._write({**fields, "state": "running"})

    def beat(self, get_fields, frame_done: bool = True) -> bool:
        """``get_fields()`` -> the status fields, asked for only when it is time to write (every ``every`` s);
        returns True when it wrote."""
        now = time.monotonic()
        if frame_done and self.notify.watchdog_every and now - self._last_wd >= min(self.notify.watchdog_every, 1.0):
            self.notify.send("WATCHDOG=1")
            self._last_wd = now
        if now - self._last < self.every:
            return False
        self._last = now
        fields = get_fields()
        line = self._line(fields)
        self.notify.send(f"STATUS={line}")
        if self.heartbeat:
            print(f"{self.label}: {line}", file=sys.stderr, flush=True)
        self._write({**fields, "state": "running"})
        return True

    def stopping(self, fields: dict, state: str) -> None:
        self.notify.send("STOPPING=1", f"STATUS={self.label}: {state}")
        self._write({**fields, "state": state})
        self.notify.close()

    @staticmethod
    def _line(f: dict) -> str:
        age = f.get("last_frame_age_s")
        return (f"up {f.get('uptime_s', 0):.0f} s, {f.get('frames', 0)} frames, {f.get('fps', 0):.1f} FPS, "
                f"{f.get('faces', 0)} faces, last frame {'-' if age is None else f'{age:.1f} s'} ago, "
                f"{f.get('reconnects', 0)} reconnects, RSS {f.get('rss_mb') or 0:.0f} MB")

    def _write(self, fields: dict) -> None:
        if self.path is None or self._failed:
            return
        from edge_dfd.core.fsutil import atomic_write_json

        now = time.time()
        doc = {"updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "updated_unix": round(now, 3),
               "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
               **fields}
        try:
            atomic_write_json(self.path, doc)
        except EdgeDFDError as exc:
            raise OutputError(f"--status: {exc}") from None
