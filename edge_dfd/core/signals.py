"""Graceful stop on SIGINT (Ctrl-C), SIGTERM (kill, systemd, docker stop, timeout) and SIGHUP (terminal closed).

    with GracefulStop() as stop:
        while not stop.requested:
            ...one unit of work (a frame)...
    code = stop.exit_code            # 128 + signal number (130 SIGINT, 143 SIGTERM, 129 SIGHUP), or None

The first signal only sets a flag: the loop finishes its current unit, the caller finalises its outputs and
prints its summary. A second Ctrl-C raises KeyboardInterrupt (still unwinding through ``finally`` blocks).
Handlers are installed only in the main thread and the previous ones are restored on exit.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class GracefulStop:
    def __init__(self, signals=STOP_SIGNALS):
        self.signals = signals
        self.signum: int | None = None
        self.event = threading.Event()
        self._old: dict = {}

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signum if self.signum is not None else None

    def request(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def _handle(self, signum, frame) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: stop now
        self.request(signum)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()
