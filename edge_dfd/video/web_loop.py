"""The event-loop side of the web view (``edge_dfd.video.web.LiveServer`` runs it on one asyncio loop in one thread):
accepting a connection within ``max_open`` (evicting the oldest unfinished request when full), reading its request
head within ``HEAD_TIMEOUT`` s and ``MAX_HEAD`` bytes, checking it (``edge_dfd.video.web_guard``), answering it
with the hardening headers, and the two long-lived answers: the MJPEG stream (the newest frame once the previous
one has left) and the Server-Sent Events feed. A client that takes longer than ``SEND_TIMEOUT`` s to accept one
write is dropped, never waited for."""

from __future__ import annotations

import asyncio
import html
import socket
import ssl
from http import HTTPStatus

from edge_dfd.video.web_guard import Reply, parse_request
from edge_dfd.video.web_page import PAGE, PAGE_CSP, SSEClient

SEND_TIMEOUT = 2.0  # s a client may take to accept one write (a frame, a batch of events) before it is dropped
HEAD_TIMEOUT = 10.0  # s to receive a whole request head (request line + headers), TLS handshake included
MAX_HEAD = 8192  # bytes of request line + headers (431 beyond)
MAX_OPEN = 128  # open connections (all kinds); when full a new one evicts the oldest unfinished request
STREAM_BUFFER = 256 * 1024  # bytes of kernel send buffer per viewer (bounds memory and a slow viewer's lag)
KEEPALIVE = 15.0  # s between SSE comments on a quiet stream (finds clients that went away)
_BASE_HEADERS = {"Server": "edge-dfd", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Connection": "close",
                 "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


class Conn:
    """One open connection: its streams, the client's address, whether its request head is still awaited."""

    __slots__ = ("reader", "writer", "peer", "pending", "task")

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else str(peer)
        self.pending = True  # the request head has not arrived yet
        self.task = asyncio.current_task()


class EventLoopSide:
    """What ``LiveServer`` does on its event loop; it owns the state (lock, latest frame and messages, clients,
    counts) that these methods read."""

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
        conn = Conn(reader, writer)
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

    async def _send(self, conn: Conn, data: bytes) -> None:
        conn.writer.write(data)
        await asyncio.wait_for(conn.writer.drain(), SEND_TIMEOUT)

    async def _reply(self, conn: Conn, code: int, body: str | bytes, headers: dict | None = None,
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

    async def _serve(self, conn: Conn) -> None:
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

    async def _stream(self, conn: Conn, hdr: dict, gone: asyncio.Future) -> None:
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

    async def _events(self, conn: Conn, sse: SSEClient, recent: list[str], hdr: dict, gone: asyncio.Future):
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
