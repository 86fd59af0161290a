"""The web view of ``edge-dfd live --serve [HOST:]PORT``: one page with the annotated MJPEG stream, the current
tracks and a live event feed, for a headless Raspberry Pi watched from a laptop. Standard library only.

Routes (GET / HEAD; anything else 405): ``/`` the page, ``/stream.mjpg`` the MJPEG stream, ``/events``
Server-Sent Events (``tracks``, ``face``, ``stats``, ``end``), ``/state.json`` the latest tracks and stats.
Every other path is 404 (exact match, nothing is read from disk).

**Authentication follows the bind address.** Bound to a non-loopback address (``0.0.0.0``, a LAN address, ``::``),
every request needs the token, loopback clients included; bound to loopback, none unless one is asked for
(``auth="token"`` or a given token). The token is random (``secrets``, 192 bits) unless given; checking it,
slowing down wrong ones and the Host check: ``edge_dfd.video.web_guard``.

**Hardening.** One asyncio loop in one thread serves every connection (no thread per socket); a request head
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
import html
import secrets
import socket
import ssl
import sys
import threading
from collections import deque
from http import HTTPStatus

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.video.web_guard import (  # noqa: F401  (re-exported: the web view's public names live here)
    AUTH_MODES,
    ROUTES,
    TOKEN_ENV,
    Guard,
    Reply,
    check_token,
    is_loopback,
    parse_request,
    parse_serve,
    read_token_file,
    tls_context,
)
from edge_dfd.video.web_page import MAX_QUEUED, PAGE, PAGE_CSP, SSEClient  # noqa: F401  (MAX_QUEUED: re-exported)
from edge_dfd.video.web_page import dumps as _dumps

SEND_TIMEOUT = 2.0  # s a client may take to accept one write (a frame, a batch of events) before it is dropped
HEAD_TIMEOUT = 10.0  # s to receive a whole request head (request line + headers), TLS handshake included
MAX_HEAD = 8192  # bytes of request line + headers (431 beyond)
MAX_OPEN = 128  # open connections (all kinds); when full a new one evicts the oldest unfinished request
STREAM_BUFFER = 256 * 1024  # bytes of kernel send buffer per viewer (bounds memory and a slow viewer's lag)
RECENT = 50  # face events replayed to a new page
KEEPALIVE = 15.0  # s between SSE comments on a quiet stream (finds clients that went away)
_BASE_HEADERS = {"Server": "edge-dfd", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Connection": "close",
                 "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


class _Conn:
    __slots__ = ("reader", "writer", "peer", "pending", "task")

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else str(peer)
        self.pending = True  # the request head has not arrived yet
        self.task = asyncio.current_task()


class LiveServer:
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
        self._conns: dict[_Conn, None] = {}  # open connections, oldest first
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

    # --- the event loop side ---
    def _wake_frames(self) -> None:
        fut, self._frame_fut = self._frame_fut, self._loop.create_future()
        if not fut.done():
            fut.set_result(None)

    def _wake_sse(self) -> None:
        with self._lock:
            clients = list(self._sse)
        for c in clients:
            c.wake.set()

    async def _shutdown(self) -> None:
        self._server.close()
        self._wake_frames()
        self._wake_sse()
        tasks = [c.task for c in self._conns if c.task is not None and c.task is not asyncio.current_task()]
        if tasks:  # viewers get what is pending (the end event) and return; everyone else is cut
            await asyncio.wait(tasks, timeout=0.3)
        for c in list(self._conns):
            c.writer.transport.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=0.3)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        if self._closing:
            writer.transport.abort()
            return
        if len(self._conns) >= self.max_open:
            victim = next((c for c in self._conns if c.pending), None)
            if victim is None:  # every connection is an admitted request: refuse the newcomer
                self.counts["refused"] += 1
                writer.transport.abort()
                return
            self.counts["evicted"] += 1
            self._conns.pop(victim, None)
            victim.writer.transport.abort()
        self._conns[conn] = None
        try:
            await self._serve(conn)
        except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away, stalled past a timeout, or close() cut it
        except Exception:  # noqa: BLE001 - one odd request never takes the server down nor prints a traceback
            self.counts["errors"] += 1
        finally:
            self._conns.pop(conn, None)
            writer.transport.abort()

    async def _send(self, conn: _Conn, data: bytes) -> None:
        conn.writer.write(data)
        await asyncio.wait_for(conn.writer.drain(), SEND_TIMEOUT)

    async def _reply(self, conn: _Conn, code: int, body: str | bytes, headers: dict | None = None,
                     ctype: str = "text/plain; charset=utf-8", head_only: bool = False) -> None:
        data = body.encode() if isinstance(body, str) else body
        hdr = {"Content-Type": ctype, "Content-Length": str(len(data)), **(headers or {})}
        await self._send(conn, self._head(code, hdr) + (b"" if head_only else data))
        conn.writer.close()  # flushes, then closes (the finally aborts whatever is left)
        await asyncio.wait_for(conn.writer.wait_closed(), SEND_TIMEOUT)

    @staticmethod
    def _head(code: int, headers: dict) -> bytes:
        lines = [f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"]
        lines += [f"{k}: {v}" for k, v in {**_BASE_HEADERS, **headers}.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _serve(self, conn: _Conn) -> None:
        try:
            head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            conn.pending = False
            self.counts["bad_requests"] += 1
            return await self._reply(conn, 431, f"request head too large (at most {MAX_HEAD} bytes)\n")
        except asyncio.TimeoutError:
            self.counts["bad_requests"] += 1
            return  # a slow or silent client: closed without a word
        conn.pending = False
        self.counts["requests"] += 1
        try:
            method, path, query, headers = parse_request(head)
            self.guard.check(conn.peer, query, headers)
        except Reply as r:
            if r.code in (400, 414):
                self.counts["bad_requests"] += 1
            return await self._reply(conn, r.code, r.text, r.headers, head_only=False)
        extra = {}
        if self.token is not None and query.get("token"):  # opened with ?token=: keep access by cookie
            extra["Set-Cookie"] = self.guard.cookie(secure=self.tls is not None)
        head_only = method == "HEAD"
        if path in ("/", "/index.html"):
            page = PAGE.replace("%TITLE%", html.escape(self.title))
            return await self._reply(conn, 200, page, {"Content-Security-Policy": PAGE_CSP, **extra},
                                     "text/html; charset=utf-8", head_only)
        if path == "/state.json":
            body = f'{{"tracks":{self._tracks},"stats":{self._stats},"clients":{self.clients}}}'
            return await self._reply(conn, 200, body, extra, "application/json", head_only)
        sse = SSEClient() if path == "/events" else None
        ctype = "text/event-stream; charset=utf-8" if sse else "multipart/x-mixed-replace; boundary=frame"
        if head_only:
            return await self._reply(conn, 200, b"", extra, ctype, True)
        recent = self._admit(sse)
        if recent is None:
            return await self._reply(conn, 503, f"too many viewers (at most {self.max_clients}); try again later\n",
                                     {"Retry-After": "5"})
        gone = asyncio.ensure_future(self._until_eof(conn.reader))
        sock = conn.writer.get_extra_info("socket")
        if sock is not None:  # a viewer that stops reading holds at most ~STREAM_BUFFER in the kernel, not MBs
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_BUFFER)
        conn.writer.transport.set_write_buffer_limits(high=STREAM_BUFFER // 4)
        try:
            hdr = {"Content-Type": ctype, "X-Accel-Buffering": "no", **extra}
            if sse is None:
                await self._stream(conn, hdr, gone)
            else:
                await self._events(conn, sse, recent, hdr, gone)
        except asyncio.TimeoutError:
            self.counts["dropped_slow"] += 1
        finally:
            gone.cancel()
            self._leave(sse)

    def _admit(self, sse: SSEClient | None) -> list[str] | None:
        """Registers a stream (``sse`` None) or SSE client; None when full, else the recent face events."""
        with self._lock:
            if self._closing or self._streams + len(self._sse) >= self.max_clients:
                return None
            if sse is None:
                self._streams += 1
            else:
                self._sse.add(sse)
            return list(self._recent)

    def _leave(self, sse: SSEClient | None) -> None:
        with self._lock:
            if sse is None:
                self._streams -= 1
            else:
                self._sse.discard(sse)

    @staticmethod
    async def _until_eof(reader: asyncio.StreamReader) -> None:
        """Returns when the client closes its end (whatever it sends meanwhile is discarded)."""
        try:
            while await reader.read(4096):
                pass
        except (OSError, ssl.SSLError):
            pass

    async def _stream(self, conn: _Conn, hdr: dict, gone: asyncio.Future) -> None:
        await self._send(conn, self._head(200, hdr))
        seq = 0
        while not self._closing and not gone.done():
            with self._lock:
                new, jpeg = self._seq, self._frame
            if new == seq or jpeg is None:
                await asyncio.wait([self._frame_fut, gone], timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED)
                continue
            seq = new
            part = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            await self._send(conn, part + jpeg + b"\r\n")  # the next frame is the newest once this one left

    async def _events(self, conn: _Conn, sse: SSEClient, recent: list[str], hdr: dict, gone: asyncio.Future):
        first = [("tracks", self._tracks), ("stats", self._stats)] + [("face", d) for d in recent]
        if self._ended is not None:
            first.append(("end", self._ended))
        await self._send(conn, self._head(200, hdr) + b"retry: 2000\n\n"
                         + "".join(f"event: {k}\ndata: {d}\n\n" for k, d in first).encode())
        while not gone.done():
            waiter = asyncio.ensure_future(sse.wake.wait())
            try:
                done, _ = await asyncio.wait([waiter, gone], timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if gone.done():
                return
            if not done:
                await self._send(conn, b": keepalive\n\n")
                continue
            sse.wake.clear()
            data = sse.take()
            if sse.dropped:
                self.counts["dropped_slow"] += 1
                return
            if data:
                await self._send(conn, data)
            if self._closing:
                return
