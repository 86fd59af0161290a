"""The web view of ``edge-dfd live --serve [HOST:]PORT``: one page with the annotated MJPEG stream, the current
tracks and a live event feed, for a headless Raspberry Pi watched from a laptop. Standard library only.

Routes (GET / HEAD; anything else 405): ``/`` the page, ``/stream.mjpg`` the MJPEG stream, ``/events``
Server-Sent Events (``tracks``, ``face``, ``stats``, ``end``), ``/state.json`` the latest tracks and stats.
Every other path is 404 (exact match, nothing is read from disk).

**Authentication follows the bind address.** Bound to a non-loopback address (``0.0.0.0``, a LAN address, ``::``),
every request needs the token, loopback clients included; bound to loopback, none unless one is asked for
(``auth="token"`` or a given token). The token is random (``secrets``, 192 bits) unless given (a file or
``EDGE_DFD_SERVE_TOKEN``, see ``read_token_file``). A client shows it as ``?token=`` (the page then sets an
HttpOnly, SameSite=Strict cookie, and removes the token from the address bar), the cookie, or
``Authorization: Bearer``; it is compared in constant time (``hmac.compare_digest``). After ``FAIL_FREE`` wrong
tokens from one address, that address may try again only after a delay that doubles with each further failure
(up to ``MAX_DELAY`` s; earlier tries get 429 unchecked). ``auth="none"`` turns it off (the caller logs it).

**Hardening.** One asyncio event loop in one thread serves every connection (no thread per socket): the request
head must arrive within ``HEAD_TIMEOUT`` s and fit ``MAX_HEAD`` bytes (request line ``MAX_LINE``, at most 100
headers); at most ``max_open`` connections are open, and when full a new one evicts the oldest connection that
has not finished its request yet (a slow-loris cannot lock out a real client); bound to loopback, the Host header
must name a loopback host (DNS rebinding) unless a token is required. Every response carries ``no-store``,
``nosniff``, ``Referrer-Policy: no-referrer`` and ``frame-ancestors 'none'``. HTTPS with ``tls`` (an
``ssl.SSLContext``, see ``tls_context``).

**Publishing never waits on a socket**: a frame goes into one latest slot (each stream client sends the newest
frame once its previous one has left, so a slow client skips frames), SSE messages into per-client slots (tracks
and stats: latest only; face events: a bounded queue, a client that falls behind is dropped). A client that takes
longer than ``SEND_TIMEOUT`` s to accept one write is dropped, never waited for.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import html
import http.client
import io
import ipaddress
import json
import math
import os
import re
import secrets
import socket
import ssl
import stat
import threading
import time
from collections import OrderedDict, deque
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs

from edge_dfd.errors import EdgeDFDError

SEND_TIMEOUT = 2.0  # s a client may take to accept one write (a frame, a batch of events) before it is dropped
HEAD_TIMEOUT = 10.0  # s to receive a whole request head (request line + headers), TLS handshake included
MAX_HEAD = 8192  # bytes of request line + headers (431 beyond)
MAX_LINE = 2048  # bytes of the request line (414 beyond)
MAX_OPEN = 128  # open connections (all kinds); when full a new one evicts the oldest unfinished request
STREAM_BUFFER = 256 * 1024  # bytes of kernel send buffer per viewer (bounds memory and a slow viewer's lag)
MAX_QUEUED = 256  # face events waiting for one SSE client before it is dropped as too slow
RECENT = 50  # face events replayed to a new page
KEEPALIVE = 15.0  # s between SSE comments on a quiet stream (finds clients that went away)
AUTH_MODES = ("auto", "token", "none")
TOKEN_ENV = "EDGE_DFD_SERVE_TOKEN"
FAIL_FREE = 5  # wrong tokens from one address before it is slowed down
FAIL_FORGET = 300.0  # s without a failure after which an address starts afresh
MAX_DELAY = 10.0  # s, the longest wait between two tries of a failing address
_FAIL_ADDRESSES = 4096  # addresses remembered (oldest forgotten first)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")
_SERVE_RE = re.compile(r"^(?:(?:\[(?P<v6>[^\]\s/]+)\]|(?P<host>[^\s:\[\]/]+)):)?(?P<port>\d{1,5})$")
ROUTES = ("/", "/index.html", "/stream.mjpg", "/events", "/state.json")
_BASE_HEADERS = {"Server": "edge-dfd", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Connection": "close",
                 "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}
_PAGE_CSP = ("default-src 'none'; img-src 'self'; connect-src 'self'; script-src 'unsafe-inline'; "
             "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def parse_serve(value: str) -> tuple[str, int]:
    """``"PORT"`` (host 127.0.0.1), ``"HOST:PORT"`` or ``"[IPv6]:PORT"`` -> (host, port); port 0 = any free port."""
    m = _SERVE_RE.match(str(value).strip())
    if not m or int(m["port"]) > 65535:
        raise ValueError(f"expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080; got {value!r}")
    return m["v6"] or m["host"] or "127.0.0.1", int(m["port"])


def check_token(token: str, where: str) -> str:
    """``token`` if it is 16-256 URL-safe characters, else a one-line ``EdgeDFDError`` (the token is not shown)."""
    if not _TOKEN_RE.match(token):
        raise EdgeDFDError(f"{where}: expected a token of 16-256 characters from A-Z a-z 0-9 . _ ~ + / = - "
                           f"(e.g. from: openssl rand -hex 32); got {len(token)} characters"
                           + (" with spaces or other characters" if len(token) >= 16 else ""))
    return token


def read_token_file(path: str | os.PathLike) -> str:
    """The token in ``path`` (surrounding whitespace removed). Missing, unreadable, empty, or readable by every
    user (world-readable: anyone logged in to the Pi could watch the camera) -> a one-line ``EdgeDFDError``.
    systemd's ``LoadCredential=`` hands the service a mode 0400 copy, so the file itself can stay root-only."""
    where = f"--serve-token-file {path}"
    p = Path(path)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise EdgeDFDError(f"{where}: is a folder (expected a file holding the token)")
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise EdgeDFDError(f"{where}: no such file (expected a file holding the token, e.g. made with: "
                           f"openssl rand -hex 32 > FILE; chmod 600 FILE)") from None
    except UnicodeDecodeError:
        raise EdgeDFDError(f"{where}: not a text file (expected a token such as: openssl rand -hex 32)") from None
    except OSError as e:
        raise EdgeDFDError(f"{where}: cannot read it ({(e.strerror or str(e)).lower()})") from None
    if st.st_mode & stat.S_IROTH:
        raise EdgeDFDError(f"{where}: readable by every user (mode {stat.S_IMODE(st.st_mode):04o}); "
                           "make it private first: chmod 600 FILE")
    token = text.strip()
    if not token:
        raise EdgeDFDError(f"{where}: the file is empty (expected a token, e.g. from: openssl rand -hex 32)")
    return check_token(token, where)


def tls_context(cert: str | os.PathLike, key: str | os.PathLike | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``cert`` (PEM; the key inside it or in ``key``). A missing file, a file that
    is not PEM, an encrypted key or a key that does not match the certificate is a one-line ``EdgeDFDError``."""
    for option, path in (("--serve-cert", cert), ("--serve-key", key)):
        if path is not None and not Path(path).is_file():
            raise EdgeDFDError(f"{option} {path}: no such file (expected a PEM "
                               f"{'certificate' if option == '--serve-cert' else 'private key'})")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), None if key is None else str(key), password=lambda: b"")
    except ssl.SSLError as e:
        text = f"{e.reason} {e}".upper()
        if "KEY_VALUES_MISMATCH" in text:
            raise EdgeDFDError(f"--serve-key {key}: does not match the certificate --serve-cert {cert} "
                               "(expected the key the certificate was made with)") from None
        try:
            encrypted = b"ENCRYPTED" in Path(key or cert).read_bytes()[:65536]
        except OSError:
            encrypted = False
        if encrypted or "BAD_DECRYPT" in text:
            raise EdgeDFDError(f"--serve-key {key or cert}: the private key is encrypted (expected an unencrypted "
                               "PEM key, e.g. openssl req -x509 ... -noenc)") from None
        raise EdgeDFDError(f"--serve-cert {cert}" + (f" / --serve-key {key}" if key else "")
                           + f": expected a PEM certificate and its PEM private key ({e.reason or e})") from None
    except OSError as e:
        raise EdgeDFDError(f"--serve-cert {cert}: cannot read it ({(e.strerror or str(e)).lower()})") from None
    return ctx


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host.lower() == "localhost" or host.lower().endswith(".localhost")


def _host_of(value: str) -> str:
    """``Host`` header -> host name / address without the port (``[::1]:80`` -> ``::1``)."""
    v = value.strip()
    if v.startswith("["):
        return v[1:v.find("]")] if "]" in v else v
    return v.rsplit(":", 1)[0] if v.count(":") == 1 else v


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
        self.wake = asyncio.Event()  # set on the server's loop only
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

    def take(self) -> bytes:
        with self.lock:
            end = self.latest.pop("end", None)
            msgs = [(k, d) for k, d in self.latest.items()] + [("face", d) for d in self.faces]
            if end is not None:  # last, after everything that happened before the end
                msgs.append(("end", end))
            self.latest.clear()
            self.faces.clear()
        return "".join(f"event: {k}\ndata: {d}\n\n" for k, d in msgs).encode()


class _Conn:
    __slots__ = ("reader", "writer", "peer", "pending", "task")

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else str(peer)
        self.pending = True  # the request head has not arrived yet
        self.task = asyncio.current_task()


class _Reply(Exception):
    """Answer the request with ``code`` and a short text, then close."""

    def __init__(self, code: int, text: str, headers: dict | None = None):
        super().__init__(text)
        self.code, self.text, self.headers = code, text, headers or {}


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
        self._frame, self._seq = None, 0
        self._streams = 0
        self._sse: set[_SSEClient] = set()
        self._conns: dict[_Conn, None] = {}  # open connections, oldest first
        self._tracks, self._stats = "[]", "{}"
        self._ended: str | None = None
        self._recent: deque[str] = deque(maxlen=RECENT)
        self._fails: OrderedDict[str, list] = OrderedDict()  # address -> [failures, time of last, next try]
        self._closing = False
        self._loop = self._server = self._thread = None
        self._frame_fut = None
        self.counts = {"requests": 0, "unauthorized": 0, "throttled": 0, "evicted": 0, "refused": 0,
                       "bad_requests": 0, "dropped_slow": 0}

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
        self._loop = asyncio.new_event_loop()
        try:
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._client, sock=sock, ssl=self.tls, limit=MAX_HEAD, backlog=128,
                ssl_handshake_timeout=HEAD_TIMEOUT if self.tls else None,
                ssl_shutdown_timeout=SEND_TIMEOUT if self.tls else None))
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
            method, path, query, headers = self._parse(head)
            await self._check(conn, method, query, headers)
        except _Reply as r:
            if r.code in (400, 414):
                self.counts["bad_requests"] += 1
            return await self._reply(conn, r.code, r.text, r.headers, head_only=False)
        extra = {}
        if self.token is not None and query.get("token"):  # opened with ?token=: keep access by cookie
            cookie = (f"{self._cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
                      + ("; Secure" if self.tls else ""))
            extra["Set-Cookie"] = cookie
        head_only = method == "HEAD"
        if path in ("/", "/index.html"):
            page = _PAGE.replace("%TITLE%", html.escape(self.title))
            return await self._reply(conn, 200, page, {"Content-Security-Policy": _PAGE_CSP, **extra},
                                     "text/html; charset=utf-8", head_only)
        if path == "/state.json":
            body = f'{{"tracks":{self._tracks},"stats":{self._stats},"clients":{self.clients}}}'
            return await self._reply(conn, 200, body, extra, "application/json", head_only)
        sse = _SSEClient() if path == "/events" else None
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

    @property
    def _cookie_name(self) -> str:
        return f"edge_dfd_token_{self.port}"  # cookies ignore ports: two servers on one host keep theirs apart

    def _parse(self, head: bytes) -> tuple[str, str, dict, http.client.HTTPMessage]:
        line, _, rest = head.partition(b"\r\n")
        if len(line) > MAX_LINE:
            raise _Reply(414, f"request line too long (at most {MAX_LINE} bytes)\n")
        parts = line.split(b" ")
        if len(parts) != 3 or parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
            raise _Reply(400, "bad request line (expected: METHOD /path HTTP/1.1)\n")
        try:
            method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
            headers = http.client.parse_headers(io.BytesIO(rest))
        except (UnicodeDecodeError, http.client.HTTPException):
            raise _Reply(400, "bad request (non-ASCII request line, or more than 100 headers)\n") from None
        if not method.isalpha() or not method.isupper():
            raise _Reply(400, "bad request method\n")
        if method not in ("GET", "HEAD"):
            raise _Reply(405, "method not allowed: the web view is read-only\n", {"Allow": "GET, HEAD"})
        if not target.startswith("/") or any(c in target for c in "#\\") or not target.isprintable():
            raise _Reply(404, "not found\n")
        path, _, qs = target.partition("?")
        if path not in ROUTES:
            raise _Reply(404, "not found\n")
        try:
            query = {k: v[0] for k, v in parse_qs(qs, max_num_fields=8, strict_parsing=False).items()}
        except ValueError:
            raise _Reply(400, "bad query string\n") from None
        if len(headers.get_all("Host") or []) > 1:
            raise _Reply(400, "more than one Host header\n")
        return method, path, query, headers

    async def _check(self, conn: _Conn, method: str, query: dict, headers) -> None:
        """Host header (loopback binds without a token) and the token; raises ``_Reply`` when refused."""
        if self.token is None:
            host = headers.get("Host")
            if self.loopback and host is not None and not is_loopback(_host_of(host)):
                raise _Reply(403, "forbidden: this web view is bound to loopback and answers only requests for "
                                  "localhost (Host header)\n")
            return
        given = [query.get("token")]
        auth = headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            given.append(auth[7:].strip())
        try:
            morsel = SimpleCookie(headers.get("Cookie") or "").get(self._cookie_name)
            given.append(morsel.value if morsel is not None else None)
        except CookieError:
            pass
        given = [g for g in given if g]
        if not given:
            self.counts["unauthorized"] += 1
            raise _Reply(401, "unauthorized: open the URL printed by edge-dfd live at start "
                              "(http(s)://HOST:PORT/?token=...)\n")
        now = time.monotonic()
        rec = self._fails.get(conn.peer)
        if rec is not None and now - rec[1] > FAIL_FORGET:
            rec = self._fails.pop(conn.peer)
            rec = None
        if rec is not None and now < rec[2]:  # too early: not even checked
            self.counts["throttled"] += 1
            wait = math.ceil(rec[2] - now)
            raise _Reply(429, f"too many wrong tokens from {conn.peer}; try again in {wait} s\n",
                         {"Retry-After": str(wait)})
        expected = self.token.encode()
        if any(hmac.compare_digest(g.encode("utf-8", "replace"), expected) for g in given):
            if rec is not None:
                self._fails.pop(conn.peer, None)
            return
        self.counts["unauthorized"] += 1
        n = 1 if rec is None else rec[0] + 1
        delay = 0.0 if n <= FAIL_FREE else min(MAX_DELAY, 0.5 * 2 ** (n - FAIL_FREE - 1))
        self._fails[conn.peer] = [n, now, now + delay]
        self._fails.move_to_end(conn.peer)
        while len(self._fails) > _FAIL_ADDRESSES:
            self._fails.popitem(last=False)
        raise _Reply(401, "unauthorized: wrong token\n")

    def _admit(self, sse: _SSEClient | None) -> list[str] | None:
        """Registers a stream (``sse`` None) or SSE client; None when full, else the recent face events."""
        with self._lock:
            if self._closing or self._streams + len(self._sse) >= self.max_clients:
                return None
            if sse is None:
                self._streams += 1
            else:
                self._sse.add(sse)
            return list(self._recent)

    def _leave(self, sse: _SSEClient | None) -> None:
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

    async def _events(self, conn: _Conn, sse: _SSEClient, recent: list[str], hdr: dict, gone: asyncio.Future):
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


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>%TITLE%</title>
<style>
body{font:14px system-ui,sans-serif;margin:12px;background:#111;color:#ddd}
h1{font-size:18px;margin:0 0 8px}#bar span{margin-right:14px}
main{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
#stream{max-width:100%;width:640px;background:#000;border:1px solid #333;min-height:120px}
table{border-collapse:collapse;min-width:300px}td,th{padding:3px 8px;border-bottom:1px solid #333;text-align:left}
tr.fake td.verdict{color:#f55;font-weight:bold}tr.real td.verdict{color:#5d5;font-weight:bold}
tr.pending td.verdict{color:#aaa}#conn.ended{color:#fc5;font-weight:bold}
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
let ended = false;
// opened with ?token=...: the server has set a cookie, so the token leaves the address bar and the history
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);
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
function end(e, es) { ended = true; es.close(); $("conn").className = "ended";
  $("conn").textContent = "ended" + (e.reason ? " (" + e.reason + ")" : ""); }
function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { if (!ended) $("conn").textContent = "live"; };
  es.onerror = () => { if (ended) return; $("conn").textContent = "reconnecting";
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 3000); };
  for (const [k, f] of [["tracks", tracks], ["face", face], ["stats", stats], ["end", end]])
    es.addEventListener(k, m => f(JSON.parse(m.data), es));
}
$("stream").onerror = () => setTimeout(() => { if (!ended) $("stream").src = "/stream.mjpg?t=" + Date.now(); }, 2000);
connect();
</script></body></html>
"""
