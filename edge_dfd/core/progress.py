"""Progress with rate and ETA on stderr, for every command that works through many items or steps.

One helper for every command (predict, evaluate, bench, convert, train, and later scan):

- stderr is a terminal: a tqdm bar (count, rate, ETA), redrawn in place;
- stderr is not a terminal (CI, a log file, a service): at most one plain line every ``PLAIN_INTERVAL``
  seconds over all bars, the first one ``PLAIN_INTERVAL`` seconds into a bar (short jobs print nothing);
- ``set_quiet(True)`` (the commands' ``--quiet``): nothing at all.

Nothing is ever written to stdout, so ``--json`` output stays clean. Work done in a child process (bench
measures each format in its own) is relayed: the child's ``RelayBar`` writes tagged lines on its stdout and
the parent's ``Mirror`` draws them here as ordinary bars.

    from edge_dfd.core import progress
    with progress.bar(len(items), "predict", unit="img") as bar:
        for ...: bar.update(1)
    for x in progress.iterate(xs, desc="calibrating", unit="img"): ...
    progress.echo("a log line")   # printed above an active bar instead of through it
    progress.log("wrote", path)    # THE log helper of every command, benchmark and tool (stderr, via echo)

No TensorFlow here: the runtime (tflite / onnx) imports this module.
"""

from __future__ import annotations

import json
import os
import sys
import time

PLAIN_INTERVAL = 10.0  # seconds between plain lines when stderr is not a terminal
RELAY_TAG = "#edge-dfd-progress# "  # prefix of a relayed event line (a child process's stdout)
RELAY_INTERVAL = 0.2  # seconds between relayed updates

_clock = time.monotonic  # tests replace it
_quiet = False
_last_plain = float("-inf")  # _clock() of the last plain line, shared by all bars
_live: list = []  # open terminal bars (echo prints above them)
_stamp = False  # log lines start with the wall-clock time (set_log_stamp)


def set_quiet(quiet: bool) -> None:
    """Turn every bar off (True) or back on (False). Commands call it with their ``--quiet`` flag."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def mode_for(stream) -> str:
    """'off' (quiet), 'tty' (a bar) or 'plain' (a line every PLAIN_INTERVAL s) for ``stream``."""
    if _quiet:
        return "off"
    return "tty" if _isatty(stream) else "plain"


def hms(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _rate(rate: float, unit: str) -> str:
    if 0 < rate < 1:
        return f"{1.0 / rate:.3g} s/{unit}"
    return f"{rate:.0f} {unit}/s" if rate >= 100 else f"{rate:.3g} {unit}/s"


class Bar:
    """A progress bar over ``total`` units (None = unknown) on ``stream`` (default: the current stderr).

    ``update(n)`` adds done units; ``write(msg)`` prints a line without breaking the bar; ``close()`` (or
    leaving the ``with`` block) ends it. ``leave=False`` erases a terminal bar when it closes (nested bars).
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *, stream=None,
                 leave: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.total = None if total is None else int(total)
        self.desc, self.unit = desc, unit
        self.n = 0
        self.t0 = _clock()
        self.mode = mode_for(self.stream)
        self.postfix = ""
        self._tqdm = None
        if self.mode == "tty":
            from tqdm import tqdm

            # a terminal that reports 0 columns (e.g. a pty nobody sized) would get an empty bar from tqdm
            width = {"dynamic_ncols": True} if _columns(self.stream) else {"ncols": 80, "nrows": 24}
            self._tqdm = tqdm(total=self.total, desc=desc, unit=unit, file=self.stream, leave=leave,
                              mininterval=0.2, smoothing=0.1, **width)
            _live.append(self)

    # ---------------------------------------------------------------- updates
    def update(self, n: int = 1) -> None:
        if n <= 0:
            return
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self.mode == "plain":
            self._plain()

    def update_to(self, n: int) -> None:
        """Set the done count (a relayed absolute value)."""
        self.update(int(n) - self.n)

    def set_total(self, total: int | None) -> None:
        self.total = None if total is None else int(total)
        if self._tqdm is not None:
            self._tqdm.total = self.total
            self._tqdm.refresh()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._tqdm is not None:
            self._tqdm.set_description(desc)

    def set_postfix(self, text: str) -> None:
        """A short status after the numbers, e.g. 'loss 0.412'."""
        self.postfix = text
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text)

    def write(self, msg: str) -> None:
        echo(msg, self.stream)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
            if self in _live:
                _live.remove(self)
        self.mode = "closed"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- plain lines
    def line(self, now: float | None = None) -> str:
        """'desc: n/total unit (pct%), rate unit/s, elapsed, ETA' (the plain-mode line)."""
        now = _clock() if now is None else now
        elapsed = max(now - self.t0, 1e-9)
        rate = self.n / elapsed
        if self.total:
            eta = (self.total - self.n) / rate if rate > 0 else None
            done = f"{self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
            tail = f", ETA {hms(eta)}"
        else:
            done, tail = f"{self.n} {self.unit}", ""
        post = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done}, {_rate(rate, self.unit)}, elapsed {hms(elapsed)}{tail}{post}"

    def _plain(self) -> None:
        global _last_plain
        now = _clock()
        if now - self.t0 < PLAIN_INTERVAL or now - _last_plain < PLAIN_INTERVAL:
            return
        _last_plain = now
        print(self.line(now), file=self.stream, flush=True)


def bar(total: int | None = None, desc: str = "", unit: str = "it", **kw) -> Bar:
    """A Bar (see there)."""
    return Bar(total, desc, unit, **kw)


def iterate(iterable, total: int | None = None, desc: str = "", unit: str = "it", **kw):
    """Yield from ``iterable``, one unit of progress per item; the bar closes when the loop ends."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    b = Bar(total, desc, unit, **kw)
    try:
        for x in iterable:
            yield x
            b.update(1)
    finally:
        b.close()


def echo(msg: str, stream=None) -> None:
    """Print one line on ``stream`` (default stderr) above the terminal bars: those drawn on ``stream``, and
    when ``stream`` is itself a terminal (stdout and stderr on one screen), those on stderr too."""
    stream = stream if stream is not None else sys.stderr
    if _live and (any(b.stream is stream for b in _live) or _isatty(stream)):
        from tqdm import tqdm

        tqdm.write(str(msg), file=stream)
        stream.flush()
    else:
        print(msg, file=stream, flush=True)


def set_log_stamp(stamp: bool) -> None:
    """Start every ``log`` line with the wall-clock time, ``HH:MM:SS `` (True) or not (False, the default).
    The long-running benchmarks and tools turn it on first thing in their ``main``."""
    global _stamp
    _stamp = bool(stamp)


def log(*parts) -> None:
    """The one log helper of edge_dfd, benchmarks/ and tools/: ``parts`` joined by spaces (like ``print``) as
    one line on stderr, above any progress bar (``echo``), after ``HH:MM:SS `` when ``set_log_stamp(True)``.
    Never stdout (which carries ``--json`` output and tables). Not silenced by ``set_quiet`` (only bars are)."""
    msg = " ".join(str(p) for p in parts)
    echo(f"{time.strftime('%H:%M:%S')} {msg}" if _stamp else msg)


# ==================================================================== across processes


class RelayBar:
    """Bar-like, in a child process: reports to the parent as tagged lines on ``stream`` (the child's
    stdout, read by the parent's ``Mirror``), at most every RELAY_INTERVAL seconds."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *, stream=None, **_):
        self.stream = stream if stream is not None else sys.stdout
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._sent = _clock()
        self._send({"open": desc, "total": total, "unit": unit})

    def _send(self, event: dict) -> None:
        try:
            self.stream.write(RELAY_TAG + json.dumps(event) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # the parent stopped listening: progress is never worth failing for
            pass

    def update(self, n: int = 1) -> None:
        self.n += n
        now = _clock()
        if now - self._sent >= RELAY_INTERVAL:
            self._sent = now
            self._send({"n": self.n})

    def update_to(self, n: int) -> None:
        self.update(int(n) - self.n)

    def set_total(self, total) -> None:
        self.total = total
        self._send({"total": total})

    def set_description(self, desc: str) -> None:
        self._send({"desc": desc})

    def set_postfix(self, text: str) -> None:
        self._send({"postfix": text})

    def write(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def close(self) -> None:
        self._send({"n": self.n, "close": True})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def relay_to(stream):
    """A bar factory ``(total, desc, unit) -> RelayBar`` writing to ``stream`` (for a child process)."""
    return lambda total=None, desc="", unit="it", **kw: RelayBar(total, desc, unit, stream=stream)


class Mirror:
    """Parent side of a relay: ``feed(line)`` each line of the child's stdout; tagged lines become a Bar here
    (its description prefixed with ``prefix``), other lines are returned unchanged (False = consumed)."""

    def __init__(self, prefix: str = "", stream=None, leave: bool = False):
        self.prefix, self.stream, self.leave = prefix, stream, leave
        self.bar: Bar | None = None

    def feed(self, line: str):
        if not line.startswith(RELAY_TAG):
            return line
        try:
            ev = json.loads(line[len(RELAY_TAG):])
        except ValueError:
            return False
        if "open" in ev:
            self.close()
            desc = f"{self.prefix} {ev['open']}".strip()
            self.bar = Bar(ev.get("total"), desc, ev.get("unit") or "it", stream=self.stream, leave=self.leave)
            return False
        if self.bar is None:
            return False
        if "total" in ev:
            self.bar.set_total(ev["total"])
        if "desc" in ev:
            self.bar.set_description(f"{self.prefix} {ev['desc']}".strip())
        if "postfix" in ev:
            self.bar.set_postfix(ev["postfix"])
        if "n" in ev:
            self.bar.update_to(ev["n"])
        if ev.get("close"):
            self.close()
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
