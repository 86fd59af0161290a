"""The web view of ``edge-dfd live --serve [HOST:]PORT``: one page with the annotated MJPEG stream, the current
tracks and a live event feed, for a headless Raspberry Pi watched from a laptop. Standard library only.

Routes (GET / HEAD; anything else 405): ``/`` the page, ``/stream.mjpg`` the MJPEG stream, ``/events``
Server-Sent Events (``tracks``, ``face``, ``stats``), ``/state.json`` the latest tracks and stats.

Publishing never waits on a socket: a frame goes into one latest slot (each stream client sends the newest frame
when it is ready, so a slow client skips frames), SSE messages into per-client slots (tracks and stats: latest
only; face events: a bounded queue, a client that falls behind is dropped). Each client is served by its own
thread whose writes time out after ``SEND_TIMEOUT`` s, so a stalled client is dropped, never waited for.
"""

from __future__ import annotations

import errno
import html
import json
import math
import re
import select
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge_dfd.errors import EdgeDFDError

SEND_TIMEOUT = 2.0  # s a client may take to accept one write (a frame, a batch of events) before it is dropped
MAX_QUEUED = 256  # face events waiting for one SSE client before it is dropped as too slow
RECENT = 50  # face events replayed to a new page
KEEPALIVE = 15.0  # s between SSE comments on a quiet stream (finds clients that went away)
_SERVE_RE = re.compile(r"^(?:(?:\[(?P<v6>[^\]\s/]+)\]|(?P<host>[^\s:\[\]/]+)):)?(?P<port>\d{1,5})$")


def parse_serve(value: str) -> tuple[str, int]:
    """``"PORT"`` (host 127.0.0.1), ``"HOST:PORT"`` or ``"[IPv6]:PORT"`` -> (host, port); port 0 = any free port."""
    m = _SERVE_RE.match(str(value).strip())
    if not m or int(m["port"]) > 65535:
        raise ValueError(f"expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080; got {value!r}")
    return m["v6"] or m["host"] or "127.0.0.1", int(m["port"])


def _clean(o):
    """JSON-safe copy: numpy scalars / arrays to Python, NaN / inf to null (JSON.parse rejects NaN)."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, (str, int, bool)):
        return o
    if hasattr(o, "tolist"):  # numpy scalar or array
        return _clean(o.tolist())
    return str(o)


def _dumps(o) -> str:
    return json.dumps(_clean(o), separators=(",", ":"))


class _SSEClient:
    """One /events client's pending messages: the latest tracks / stats, and the face events not yet sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.latest: dict[str, str] = {}
        self.faces: deque[str] = deque()
        self.dropped = False

    def put(self, kind: str, data: str | list[str]) -> None:
        with self.lock:
            if kind == "face":
                self.faces.extend(data)
                self.dropped |= len(self.faces) > MAX_QUEUED
            else:
                self.latest[kind] = data
        self.wake.set()

    def take(self) -> bytes:
        with self.lock:
            msgs = [(k, d) for k, d in self.latest.items()] + [("face", d) for d in self.faces]
            self.latest.clear()
            self.faces.clear()
        return "".join(f"event: {k}\ndata: {d}\n\n" for k, d in msgs).encode()


class LiveServer:
    """The web view. ``start()`` binds (a busy port is an ``EdgeDFDError``) and serves from a daemon thread;
    the ``publish_*`` calls are cheap and never block; ``close()`` stops serving and disconnects everyone."""

    def __init__(self, host: str, port: int, max_clients: int = 4, title: str = "edge-dfd live"):
        self.host, self.port, self.max_clients, self.title = host, int(port), int(max_clients), title
        self._lock = threading.Lock()
        self._frame_cond = threading.Condition()
        self._frame, self._seq = None, 0
        self._streams = 0
        self._sse: set[_SSEClient] = set()
        self._socks: set[socket.socket] = set()
        self._tracks, self._stats = "[]", "{}"
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._closing = threading.Event()
        self._httpd = self._thread = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def clients(self) -> int:
        with self._lock:
            return self._streams + len(self._sse)

    @property
    def wants_frames(self) -> bool:
        return self._streams > 0

    def start(self) -> LiveServer:
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
        except (socket.gaierror, UnicodeError) as e:
            raise EdgeDFDError(f"--serve {addr}: cannot resolve host {self.host!r} ({e})") from None
        server_cls = type("_Server", (_Server,), {"address_family": family})
        try:
            self._httpd = server_cls((self.host, self.port), _Handler)
        except OSError as e:
            why = {errno.EADDRINUSE: "address already in use (another program serves that port)",
                   errno.EACCES: "permission denied (ports below 1024 need root)",
                   errno.EADDRNOTAVAIL: "address not available on this machine"}.get(e.errno)
            raise EdgeDFDError(f"--serve {addr}: {why or (e.strerror or str(e)).lower()}") from None
        self._httpd.live = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edge-dfd-web", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        with self._frame_cond:
            self._frame_cond.notify_all()
        with self._lock:
            sse, socks = list(self._sse), list(self._socks)
        for c in sse:
            c.wake.set()
        for s in socks:  # a thread blocked sending to a stalled client returns at once
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=1.0)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- publishing (called from the live loop; O(clients), never touches a socket) ---
    def publish_frame(self, jpeg: bytes) -> None:
        with self._frame_cond:
            self._frame, self._seq = bytes(jpeg), self._seq + 1
            self._frame_cond.notify_all()

    def _broadcast(self, kind: str, data: str | list[str]) -> None:
        with self._lock:
            clients = list(self._sse)
            if kind == "face":
                self._recent.extend(data)
        for c in clients:
            c.put(kind, data)

    def publish_tracks(self, tracks: list[dict]) -> None:
        self._tracks = _dumps(list(tracks))
        self._broadcast("tracks", self._tracks)

    def publish_events(self, events: list[dict]) -> None:
        if events:
            self._broadcast("face", [_dumps(ev) for ev in events])

    def publish_stats(self, stats: dict) -> None:
        self._stats = _dumps(dict(stats))
        self._broadcast("stats", self._stats)

    # --- used by the handler threads ---
    def _admit(self, sock, sse: _SSEClient | None) -> list[str] | None:
        """Registers a stream (``sse`` None) or SSE client; None when full, else the recent face events."""
        with self._lock:
            if self._closing.is_set() or self._streams + len(self._sse) >= self.max_clients:
                return None
            if sse is None:
                self._streams += 1
            else:
                self._sse.add(sse)
            self._socks.add(sock)
            return list(self._recent)

    def _leave(self, sock, sse: _SSEClient | None) -> None:
        with self._lock:
            if sse is None:
                self._streams -= 1
            else:
                self._sse.discard(sse)
            self._socks.discard(sock)

    def _next_frame(self, seq: int, timeout: float):
        with self._frame_cond:
            if self._seq == seq and not self._closing.is_set():
                self._frame_cond.wait(timeout)
            return self._seq, self._frame


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    live: LiveServer

    def handle_error(self, request, client_address):  # a client that went away is not an error worth a traceback
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _gone(sock) -> bool:
    """True when the peer closed its end (readable with nothing to read)."""
    try:
        if select.select([sock], [], [], 0)[0]:
            return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True
    return False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10.0  # s to receive the request; streaming writes use SEND_TIMEOUT
    server_version, sys_version = "edge-dfd", ""

    def log_message(self, format, *args):  # no line per request on stderr
        pass

    def __getattr__(self, name):  # any other method (POST, PUT, DELETE, ...) -> 405
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self):
        self._text(405, "method not allowed: the web view is read-only\n", {"Allow": "GET, HEAD"})

    def _text(self, code: int, body: str | bytes, headers: dict | None = None, ctype="text/plain; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(data)), "Cache-Control": "no-store",
                     "X-Content-Type-Options": "nosniff", **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        live, path = self.server.live, self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            csp = ("default-src 'none'; img-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; "
                   "style-src 'unsafe-inline'")
            self._text(200, _PAGE.replace("%TITLE%", html.escape(live.title)), {"Content-Security-Policy": csp},
                       "text/html; charset=utf-8")
        elif path == "/state.json":
            body = f'{{"tracks":{live._tracks},"stats":{live._stats},"clients":{live.clients}}}'
            self._text(200, body, ctype="application/json")
        elif path in ("/stream.mjpg", "/events"):
            sse = _SSEClient() if path == "/events" else None
            if self.command == "HEAD":
                ctype = "text/event-stream" if sse else "multipart/x-mixed-replace; boundary=frame"
                return self._text(200, b"", ctype=ctype)
            recent = live._admit(self.connection, sse)
            if recent is None:
                return self._text(503, f"too many viewers (at most {live.max_clients}); try again later\n",
                                  {"Retry-After": "5"})
            try:
                self.connection.settimeout(SEND_TIMEOUT)
                if sse is None:
                    self._stream(live)
                else:
                    self._events(live, sse, recent)
            except OSError:  # the client went away, stalled past SEND_TIMEOUT, or close() cut it
                pass
            finally:
                live._leave(self.connection, sse)
                self.close_connection = True
        else:
            self._text(404, "not found\n")

    def _start(self, ctype: str):
        self.send_response(200)
        for k, v in {"Content-Type": ctype, "Cache-Control": "no-store", "Connection": "close",
                     "X-Accel-Buffering": "no"}.items():
            self.send_header(k, v)
        self.end_headers()

    def _stream(self, live: LiveServer):
        self._start("multipart/x-mixed-replace; boundary=frame")
        seq = 0
        while not live._closing.is_set():
            new, jpeg = live._next_frame(seq, 0.5)
            if new == seq or jpeg is None:
                if _gone(self.connection):
                    return
                continue
            seq = new
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            self.wfile.write(head + jpeg + b"\r\n")

    def _events(self, live: LiveServer, sse: _SSEClient, recent: list[str]):
        self._start("text/event-stream; charset=utf-8")
        first = [("tracks", live._tracks), ("stats", live._stats)] + [("face", d) for d in recent]
        self.wfile.write(b"retry: 2000\n\n" + "".join(f"event: {k}\ndata: {d}\n\n" for k, d in first).encode())
        last = time.monotonic()
        while not live._closing.is_set():
            if not sse.wake.wait(0.5):
                if _gone(self.connection):
                    return
                if time.monotonic() - last > KEEPALIVE:
                    self.wfile.write(b": keepalive\n\n")
                    last = time.monotonic()
                continue
            sse.wake.clear()
            data = sse.take()
            if sse.dropped or live._closing.is_set():
                return
            self.wfile.write(data)
            last = time.monotonic()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>%TITLE%</title>
<style>
body{font:14px system-ui,sans-serif;margin:12px;background:#111;color:#ddd}
h1{font-size:18px;margin:0 0 8px}#bar span{margin-right:14px}
main{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
#stream{max-width:100%;width:640px;background:#000;border:1px solid #333;min-height:120px}
table{border-collapse:collapse;min-width:300px}td,th{padding:3px 8px;border-bottom:1px solid #333;text-align:left}
tr.fake td.verdict{color:#f55;font-weight:bold}tr.real td.verdict{color:#5d5;font-weight:bold}
tr.pending td.verdict{color:#aaa}
#events{list-style:none;padding:0;margin:4px 0;max-height:220px;overflow:auto;font:12px monospace}
li.fake{color:#f88}li.real{color:#8d8}li.pending{color:#999}
</style></head><body>
<h1>%TITLE%</h1>
<div id="bar"><span>FPS <b id="fps">-</b></span><span>frames <b id="frames">-</b></span>
<span>uptime <b id="uptime">-</b></span><span id="conn">connecting</span></div>
<main><img id="stream" src="/stream.mjpg" alt="live stream">
<section><table id="track-table"><thead><tr><th>track</th><th>verdict</th><th>P(fake)</th><th>age (s)</th></tr>
</thead><tbody id="tracks"><tr class="empty"><td colspan="4">no faces</td></tr></tbody></table>
<h2 style="font-size:15px">events</h2><ol id="events"></ol></section></main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const V = ["fake", "real", "pending"];
const fmt = (v, d) => (v === null || v === undefined || v === "") ? "-" : Number(v).toFixed(d);
function cell(tr, cls, text) { const td = document.createElement("td"); td.className = cls;
  td.textContent = text; tr.appendChild(td); }
function tracks(ts) {
  const rows = ts.map(t => { const tr = document.createElement("tr"); const v = V.includes(t.verdict) ? t.verdict : "pending";
    tr.className = "track " + v; tr.id = "track-" + t.track; tr.dataset.track = t.track;
    cell(tr, "id", t.track); cell(tr, "verdict", t.verdict); cell(tr, "score", fmt(t.smoothed, 3));
    cell(tr, "age", fmt(t.age, 1)); return tr; });
  if (!rows.length) { const tr = document.createElement("tr"); tr.className = "empty"; cell(tr, "", "no faces");
    tr.firstChild.colSpan = 4; rows.push(tr); }
  $("tracks").replaceChildren(...rows);
}
function face(e) {
  const li = document.createElement("li"); li.className = "event " + (V.includes(e.verdict) ? e.verdict : "pending");
  const when = e.utc ? String(e.utc).slice(11, 19) : fmt(e.time, 2);
  li.textContent = when + "  track " + e.track + "  " + e.verdict + "  P(fake) " + fmt(e.smoothed, 3);
  const ol = $("events"); ol.prepend(li); while (ol.children.length > 50) ol.lastChild.remove();
}
function stats(s) { $("fps").textContent = fmt(s.fps, 1); $("frames").textContent = s.frames ?? "-";
  $("uptime").textContent = s.uptime == null ? "-" : fmt(s.uptime, 0) + " s"; }
function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { $("conn").textContent = "live"; };
  es.onerror = () => { $("conn").textContent = "reconnecting";
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000); };
  for (const [k, f] of [["tracks", tracks], ["face", face], ["stats", stats]])
    es.addEventListener(k, m => f(JSON.parse(m.data)));
}
$("stream").onerror = () => setTimeout(() => { $("stream").src = "/stream.mjpg?t=" + Date.now(); }, 2000);
connect();
</script></body></html>
"""
