"""Hostile and good clients of ``edge-dfd live --serve`` (edge_dfd.video.web), shared by the attack tests
(tests/test_live_web_attack.py) and the benchmark (benchmarks/live_web.py). Loopback only: every connection goes
to 127.0.0.1; the attackers send from 127.0.0.2 (still loopback), so the server's per-address slow-down of wrong
tokens hits them and not the good client on 127.0.0.1.

``Attack(port, token).start()`` runs, each in its own thread until ``stop()``:

* ``slowloris``: N connections that send a request line and then one byte a second, never finishing the head;
* ``fuzz``: malformed and random requests (random bytes, bad request lines, odd methods, ``..`` and
  percent-encoded paths, non-ASCII, truncated heads), one connection each; every answer's status is counted;
* ``big_headers``: requests with a 64 KB header;
* ``never_read``: stream and event clients with the right token that never read a byte;
* ``guess``: wrong tokens as fast as the server answers (it gets 401, then 429 once slowed down).

``good_client(port, token)``: what a viewer does: the page with ``?token=``, then the stream with the cookie;
returns the seconds to the page and to the first JPEG.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time
from collections import Counter

ATTACKER = "127.0.0.2"
PATHS = ["/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "//stream.mjpg",
         "/stream.mjpg/../../", "/index.html%00", "/%c0%ae%c0%ae/", "/events?token=../../", "/\\..\\",
         "/state.json;.js", "http://evil.example/", "*", "/" + "a" * 4000, "/\xe9t\xe9", "/stream.mjpg?token[]=1"]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH", "get", "G\x00T", ""]


def connect(port: int, source: str = ATTACKER, timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, close the sending side, and read until the server closes; b"" when it cut the connection
    (reset) or answered nothing."""
    try:
        with connect(port, timeout=timeout) as s:
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            chunks = []
            try:
                while chunk := s.recv(65536):
                    chunks.append(chunk)
            except (ConnectionResetError, TimeoutError):
                pass
            return b"".join(chunks)
    except OSError:
        return b""


def status_of(resp: bytes) -> str:
    if resp.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")):
        return resp[9:12].decode("latin-1")
    return "closed" if not resp else "garbage"


def fuzz_request(rng: random.Random, token: str) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500))) + b"\r\n\r\n"
    if kind == 1:  # odd method, tricky path, odd version
        line = f"{rng.choice(METHODS)} {rng.choice(PATHS)} {rng.choice(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/1.1 x', ''])}"
        return line.encode("utf-8", "replace") + b"\r\nHost: 127.0.0.1\r\n\r\n"
    if kind == 2:  # a good request line, garbage headers
        junk = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 3000))).replace(b"\r\n\r\n", b"")
        return b"GET /state.json HTTP/1.1\r\n" + junk + b"\r\n\r\n"
    if kind == 3:  # tricky paths with the right token: still only the fixed routes
        return f"GET {rng.choice(PATHS[1:])}?token={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode("utf-8", "replace")
    if kind == 4:  # many headers
        return b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(rng.randrange(50, 300))) + b"\r\n"
    return b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + bytes(  # truncated head, then gone
        rng.randrange(33, 127) for _ in range(rng.randrange(1, 200)))


class Attack:
    def __init__(self, port: int, token: str, *, slowloris: int = 100, never_read: int = 2, seed: int = 28):
        self.port, self.token = port, token
        self.n_slowloris, self.n_never_read = slowloris, never_read
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.statuses: Counter = Counter()  # fuzz + big headers + guesses: answer status -> count
        self.guesses: Counter = Counter()
        self.big: Counter = Counter()
        self.slow_open: list[tuple[socket.socket, float]] = []  # (socket, connect time)
        self.slow_closed_after: list[float] = []  # s from connect until the server closed it
        self.never: list[socket.socket] = []
        self.sent = Counter()

    def start(self) -> Attack:
        for s in range(self.n_never_read):  # first: they take viewer slots until the server drops them
            path = "/stream.mjpg" if s % 2 == 0 else "/events"
            c = connect(self.port, rcvbuf=4096)
            c.sendall(f"GET {path}?token={self.token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            self.never.append(c)
        for fn in (self._slowloris, self._fuzz, self._big_headers, self._guess):
            t = threading.Thread(target=fn, daemon=True, name=f"attack-{fn.__name__}")
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)
        for s, _ in self.slow_open:
            s.close()
        for s in self.never:
            s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _slowloris(self) -> None:
        for _ in range(self.n_slowloris):
            try:
                s = connect(self.port, timeout=2)
                s.sendall(b"GET / HTTP/1.1\r\n")
                s.setblocking(False)
                self.slow_open.append((s, time.monotonic()))
            except OSError:
                self.sent["slowloris refused"] += 1
        alive = dict(self.slow_open)
        while alive and not self.stop_event.is_set():
            for s in list(alive):
                try:
                    if select.select([s], [], [], 0)[0] and s.recv(4096) == b"":
                        raise ConnectionResetError
                    s.send(b"X")
                    self.sent["slowloris bytes"] += 1
                except (ConnectionResetError, BrokenPipeError, OSError):
                    self.slow_closed_after.append(time.monotonic() - alive.pop(s))
            self.stop_event.wait(1.0)

    def _fuzz(self) -> None:
        while not self.stop_event.is_set():
            req = fuzz_request(self.rng, self.token)
            self.statuses[status_of(exchange(self.port, req, timeout=3))] += 1
            self.sent["fuzz"] += 1

    def _big_headers(self) -> None:
        while not self.stop_event.is_set():
            req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"A" * 65536 + b"\r\n\r\n"
            self.big[status_of(exchange(self.port, req, timeout=3))] += 1
            self.stop_event.wait(0.05)

    def _guess(self) -> None:
        while not self.stop_event.is_set():
            guess = "%032x" % self.rng.getrandbits(128)
            self.guesses[status_of(exchange(self.port, f"GET /state.json?token={guess} HTTP/1.1\r\n\r\n".encode()))] += 1
            self.stop_event.wait(0.02)

    def never_read_dropped(self) -> int:
        """How many never-reading viewers the server has closed (their socket reads EOF or resets)."""
        n = 0
        for s in self.never:
            s.setblocking(False)
            try:  # drain what sits in the tiny receive buffer: EOF only shows after it
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        n += 1
                        break
            except BlockingIOError:
                pass
            except OSError:
                n += 1
        return n


def good_client(port: int, token: str, timeout: float = 10.0) -> dict:
    """A viewer on 127.0.0.1: the page with ?token= (keeps the cookie), then the stream with the cookie.
    Seconds to the whole page and to the first complete JPEG, and that JPEG's bytes."""
    t0 = time.monotonic()
    page = exchange_from(port, f"GET /?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), timeout)
    t_page = time.monotonic() - t0
    head = page.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    cookie = next((ln.split(":", 1)[1].split(";", 1)[0].strip() for ln in head.split("\r\n")
                   if ln.lower().startswith("set-cookie:")), None)
    out = {"page_status": status_of(page), "page_s": t_page, "page_ok": b'id="stream"' in page, "cookie": cookie,
           "frame_s": None, "jpeg": None}
    if cookie is None:
        return out
    t1 = time.monotonic()
    with connect(port, source="127.0.0.1", timeout=timeout) as s:
        s.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
        buf = b""
        while time.monotonic() - t1 < timeout:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            i = buf.find(b"Content-Length: ")
            if i >= 0 and b"\r\n\r\n" in buf[i:]:
                n = int(buf[i + 16 : buf.index(b"\r\n", i)])
                start = buf.index(b"\r\n\r\n", i) + 4
                if len(buf) >= start + n:
                    out["frame_s"], out["jpeg"] = time.monotonic() - t1, buf[start : start + n]
                    break
    return out


def exchange_from(port: int, data: bytes, timeout: float) -> bytes:
    with connect(port, source="127.0.0.1", timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def proc_status(pid: int) -> dict:
    """Threads and RSS (MB) of a process, from /proc (Linux)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "Threads":
                out["threads"] = int(v)
            elif k == "VmRSS":
                out["rss_mb"] = int(v.split()[0]) / 1024
    return out
