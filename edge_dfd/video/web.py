"""The web view of ``edge-dfd live --serve [HOST:]PORT``: one page with the annotated MJPEG stream, the current
tracks and a live event feed, for a headless Raspberry Pi watched from a laptop. Standard library only.

Routes (GET / HEAD; anything else 405): ``/`` the page, ``/stream.mjpg`` the MJPEG stream, ``/events``
Server-Sent Events (``tracks``, ``face``, ``stats``, ``end``), ``/state.json`` the latest tracks and stats.
Every other path is 404 (exact match, nothing is read from disk).

**Authentication follows the bind address.** Bound to a non-loopback address (``0.0.0.0``, a LAN address, ``::``),
every request needs the token, loopback clients included; bound to loopback, none unless one is asked for
(``auth="token"`` or a given token). The token is random (``secrets``, 192 bits) unless given; checking it,
slowing down wrong ones and the Host check: ``edge_dfd.video.web_guard``.

**Hardening** (``edge_dfd.video.web_loop``, the event-loop side). One asyncio loop in one thread serves every connection (no thread per socket); a request head
must arrive within ``HEAD_TIMEOUT`` s and fit ``MAX_HEAD`` bytes; at most ``max_open`` connections, and when full
a new one evicts the oldest unfinished request (a slow-loris cannot lock out a viewer); only ``ROUTES`` exist.
Every answer carries ``no-store``, ``nosniff``, ``Referrer-Policy: no-referrer`` and ``frame-ancestors 'none'``.
HTTPS with ``tls`` (``tls_context``).

**Publishing never waits on a socket**: a frame goes into one latest slot (each stream client sends the newest
frame once its previous one has left, so a slow client skips frames), SSE messages into per-client slots (tracks
and stats: latest only; face events: a bounded queue, a client that falls behind is dropped). A client that takes
longer than ``SEND_TIMEOUT`` s to accept one write is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import ssl
import sys
import threading
from collections import deque

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.video.web_guard import AUTH_MODES, Guard, check_token, is_loopback
from edge_dfd.video.web_loop import HEAD_TIMEOUT, MAX_HEAD, MAX_OPEN, SEND_TIMEOUT, Conn, EventLoopSide
from edge_dfd.video.web_page import SSEClient
from edge_dfd.video.web_page import dumps as _dumps

RECENT = 50  # face events replayed to a new page


class LiveServer(EventLoopSide):
    """The web view. ``start()`` binds (a busy port is an ``EdgeDFDError``) and serves from one daemon thread
    (an asyncio loop); the ``publish_*`` calls are cheap and never block; ``close()`` stops serving and
    disconnects everyone (an SSE client first gets the ``end`` event if ``publish_end`` was called).

    ``auth``: "auto" (a token when bound to a non-loopback address, or when ``token`` is given), "token"
    (always), "none" (never). ``token``: the token to require (default: a random one when one is required).
    ``tls``: an ``ssl.SSLContext`` (``tls_context``) to serve HTTPS."""

    def __init__(self, host: str, port: int, max_clients: int = 4, title: str = "edge-dfd live", *,
                 auth: str = "auto", token: str | None = None, tls: ssl.SSLContext | None = None,
                 max_open: int = MAX_OPEN):
        if auth not in AUTH_MODES:
            raise ValueError(f"auth: expected one of {AUTH_MODES}, got {auth!r}")
        self.host, self.port, self.max_clients, self.title = host, int(port), int(max_clients), title
        self.auth, self.token, self.tls, self.max_open = auth, token, tls, int(max_open)
        self.loopback = is_loopback(host)
        self._lock = threading.Lock()
        self._frame, self._seq, self._streams = None, 0, 0
        self._sse: set[SSEClient] = set()
        self._conns: dict[Conn, None] = {}  # open connections, oldest first
        self._tracks, self._stats, self._ended = "[]", "{}", None  # _ended: the end event's data once ended
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._closing, self.guard = False, None
        self._loop = self._server = self._thread = self._frame_fut = None
        self.counts = {"requests": 0, "unauthorized": 0, "throttled": 0, "evicted": 0, "refused": 0,
                       "bad_requests": 0, "dropped_slow": 0, "errors": 0}

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/"

    @property
    def open_url(self) -> str:
        """The URL to open: ``url`` with ``?token=`` when a token is required."""
        return self.url + (f"?token={self.token}" if self.token else "")

    @property
    def clients(self) -> int:
        with self._lock:
            return self._streams + len(self._sse)

    @property
    def connections(self) -> int:
        """Open connections of every kind (viewers, requests being read, ...)."""
        return len(self._conns)

    @property
    def wants_frames(self) -> bool:
        return self._streams > 0

    def start(self) -> LiveServer:
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        except (socket.gaierror, UnicodeError) as e:
            raise EdgeDFDError(f"--serve {addr}: cannot resolve host {self.host!r} ({e})") from None
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(128)
        except OSError as e:
            sock.close()
            why = {errno.EADDRINUSE: "address already in use (another program serves that port)",
                   errno.EACCES: "permission denied (ports below 1024 need root)",
                   errno.EADDRNOTAVAIL: "address not available on this machine"}.get(e.errno)
            raise EdgeDFDError(f"--serve {addr}: {why or (e.strerror or str(e)).lower()}") from None
        self.port = sock.getsockname()[1]
        self.loopback = is_loopback(sock.getsockname()[0])  # the rule follows the address actually bound
        if self.auth == "none":
            self.token = None
        elif self.token is None and (self.auth == "token" or not self.loopback):
            self.token = secrets.token_urlsafe(24)  # 192 bits from the OS's secure random source
        if self.token is not None:
            check_token(self.token, "token")
        self.guard = Guard(self.token, self.loopback, self.port, self.counts)
        self._loop = asyncio.new_event_loop()
        try:
            tls = {} if self.tls is None else {"ssl": self.tls, "ssl_handshake_timeout": HEAD_TIMEOUT}
            if self.tls is not None and sys.version_info >= (3, 11):
                tls["ssl_shutdown_timeout"] = SEND_TIMEOUT
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._client, sock=sock, limit=MAX_HEAD, backlog=128, **tls))
            self._frame_fut = self._loop.create_future()
        except BaseException:
            sock.close()
            self._loop.close()
            raise
        self._thread = threading.Thread(target=self._loop.run_forever, name="edge-dfd-web", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._closing = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=2.0)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=1.0)
        if not self._thread.is_alive():
            loop.close()
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- publishing (called from the live loop; O(clients), never touches a socket) ---
    def _call(self, fn) -> None:
        loop = self._loop
        if loop is not None and not self._closing:
            try:
                loop.call_soon_threadsafe(fn)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def publish_frame(self, jpeg: bytes) -> None:
        with self._lock:
            self._frame, self._seq = bytes(jpeg), self._seq + 1
        if self._streams:
            self._call(self._wake_frames)

    def _broadcast(self, kind: str, data: str | list[str]) -> None:
        with self._lock:
            clients = list(self._sse)
            if kind == "face":
                self._recent.extend(data)
        for c in clients:
            c.put(kind, data)
        if clients:
            self._call(self._wake_sse)

    def publish_tracks(self, tracks: list[dict]) -> None:
        self._tracks = _dumps(list(tracks))
        self._broadcast("tracks", self._tracks)

    def publish_events(self, events: list[dict]) -> None:
        if events:
            self._broadcast("face", [_dumps(ev) for ev in events])

    def publish_stats(self, stats: dict) -> None:
        self._stats = _dumps(dict(stats))
        self._broadcast("stats", self._stats)

    def publish_end(self, reason: str = "finished") -> None:
        """The source ended (or the run stopped): pages say "ended" instead of reconnecting."""
        self._ended = _dumps({"reason": str(reason)})
        self._broadcast("end", self._ended)
