"""Who may use the web view (edge_dfd.video.web) and what a request may look like.

* ``Guard``: the Host header check (loopback binds without a token: DNS rebinding) and the token (query, cookie or
  ``Authorization: Bearer``; ``hmac.compare_digest``); after ``FAIL_FREE`` wrong tokens from one address, that
  address may try again only after a delay that doubles with each further failure up to ``MAX_DELAY`` s (earlier
  tries get 429, unchecked); a success or ``FAIL_FORGET`` quiet seconds forget it.
* ``parse_request``: the request head -> method, path (one of ``ROUTES``), query, headers, or a ``Reply``.
* Tokens (``check_token``, ``read_token_file``, ``$EDGE_DFD_SERVE_TOKEN``), TLS (``tls_context``), and
  ``open_server``: the web view of ``edge-dfd live --serve`` from its options, with the line it prints at start.
"""

from __future__ import annotations

import hmac
import http.client
import io
import ipaddress
import math
import os
import re
import socket
import ssl
import stat
import time
from collections import OrderedDict
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs

from edge_dfd.core.errors import EdgeDFDError

AUTH_MODES = ("auto", "token", "none")
TOKEN_ENV = "EDGE_DFD_SERVE_TOKEN"
FAIL_FREE = 5  # wrong tokens from one address before it is slowed down
FAIL_FORGET = 300.0  # s without a failure after which an address starts afresh
MAX_DELAY = 10.0  # s, the longest wait between two tries of a failing address
_FAIL_ADDRESSES = 4096  # addresses remembered (oldest forgotten first)
MAX_LINE = 2048  # bytes of the request line (414 beyond)
ROUTES = ("/", "/index.html", "/stream.mjpg", "/events", "/state.json")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")  # URL-safe as is: ?token= needs no escaping
_SERVE_RE = re.compile(r"^(?:(?:\[(?P<v6>[^\]\s/]+)\]|(?P<host>[^\s:\[\]/]+)):)?(?P<port>\d{1,5})$")


class Reply(Exception):
    """Answer the request with ``code`` and a short text, then close."""

    def __init__(self, code: int, text: str, headers: dict | None = None):
        super().__init__(text)
        self.code, self.text, self.headers = code, text, headers or {}


def parse_serve(value: str) -> tuple[str, int]:
    """``"PORT"`` (host 127.0.0.1), ``"HOST:PORT"`` or ``"[IPv6]:PORT"`` -> (host, port); port 0 = any free port."""
    m = _SERVE_RE.match(str(value).strip())
    if not m or int(m["port"]) > 65535:
        raise ValueError(f"expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080; got {value!r}")
    return m["v6"] or m["host"] or "127.0.0.1", int(m["port"])


def check_token(token: str, where: str) -> str:
    """``token`` if it is 16-256 URL-safe characters, else a one-line ``EdgeDFDError`` (the token is not shown)."""
    if not _TOKEN_RE.match(token):
        raise EdgeDFDError(f"{where}: expected a token of 16-256 characters from A-Z a-z 0-9 . _ ~ - "
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


def parse_request(head: bytes) -> tuple[str, str, dict, http.client.HTTPMessage]:
    """A request head (up to the blank line) -> (method, path, query, headers); ``Reply`` when it is refused:
    400 malformed, 405 not GET / HEAD, 414 request line too long, 404 not one of ``ROUTES``."""
    line, _, rest = head.partition(b"\r\n")
    if len(line) > MAX_LINE:
        raise Reply(414, f"request line too long (at most {MAX_LINE} bytes)\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise Reply(400, "bad request line (expected: METHOD /path HTTP/1.1)\n")
    try:
        method, target = parts[0].decode("ascii"), parts[1].decode("ascii")
        headers = http.client.parse_headers(io.BytesIO(rest))
    except (UnicodeDecodeError, http.client.HTTPException):
        raise Reply(400, "bad request (non-ASCII request line, or more than 100 headers)\n") from None
    if not method.isalpha() or not method.isupper():
        raise Reply(400, "bad request method\n")
    if method not in ("GET", "HEAD"):
        raise Reply(405, "method not allowed: the web view is read-only\n", {"Allow": "GET, HEAD"})
    if not target.startswith("/") or any(c in target for c in "#\\") or not target.isprintable():
        raise Reply(404, "not found\n")
    path, _, qs = target.partition("?")
    if path not in ROUTES:
        raise Reply(404, "not found\n")
    try:
        query = {k: v[0] for k, v in parse_qs(qs, max_num_fields=8, strict_parsing=False).items()}
    except ValueError:
        raise Reply(400, "bad query string\n") from None
    if len(headers.get_all("Host") or []) > 1:
        raise Reply(400, "more than one Host header\n")
    return method, path, query, headers


class Guard:
    """The access rule of one server: ``token`` (None: no token) and whether it is bound to loopback. ``counts``
    (the server's counters) gets ``unauthorized`` and ``throttled``."""

    def __init__(self, token: str | None, loopback: bool, port: int, counts: dict):
        self.token, self.loopback, self.counts = token, loopback, counts
        self.cookie_name = f"edge_dfd_token_{port}"  # cookies ignore ports: two servers on one host keep theirs
        self.fails: OrderedDict[str, list] = OrderedDict()  # address -> [failures, time of last, next try]

    def cookie(self, secure: bool) -> str:
        return (f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
                + ("; Secure" if secure else ""))

    def check(self, peer: str, query: dict, headers) -> None:
        """Host header (loopback binds without a token) and the token; raises ``Reply`` when refused."""
        if self.token is None:
            host = headers.get("Host")
            if self.loopback and host is not None and not is_loopback(_host_of(host)):
                raise Reply(403, "forbidden: this web view is bound to loopback and answers only requests for "
                                  "localhost (Host header)\n")
            return
        given = [query.get("token")]
        auth = headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            given.append(auth[7:].strip())
        try:
            morsel = SimpleCookie(headers.get("Cookie") or "").get(self.cookie_name)
            given.append(morsel.value if morsel is not None else None)
        except CookieError:
            pass
        given = [g for g in given if g]
        if not given:
            self.counts["unauthorized"] += 1
            raise Reply(401, "unauthorized: open the URL printed by edge-dfd live at start "
                              "(http(s)://HOST:PORT/?token=...)\n")
        now = time.monotonic()
        rec = self.fails.get(peer)
        if rec is not None and now - rec[1] > FAIL_FORGET:
            rec = self.fails.pop(peer)
            rec = None
        if rec is not None and now < rec[2]:  # too early: not even checked
            self.counts["throttled"] += 1
            wait = math.ceil(rec[2] - now)
            raise Reply(429, f"too many wrong tokens from {peer}; try again in {wait} s\n",
                         {"Retry-After": str(wait)})
        expected = self.token.encode()
        if any(hmac.compare_digest(g.encode("utf-8", "replace"), expected) for g in given):
            if rec is not None:
                self.fails.pop(peer, None)
            return
        self.counts["unauthorized"] += 1
        n = 1 if rec is None else rec[0] + 1
        delay = 0.0 if n <= FAIL_FREE else min(MAX_DELAY, 0.5 * 2 ** (n - FAIL_FREE - 1))
        self.fails[peer] = [n, now, now + delay]
        self.fails.move_to_end(peer)
        while len(self.fails) > _FAIL_ADDRESSES:
            self.fails.popitem(last=False)
        raise Reply(401, "unauthorized: wrong token\n")


def open_server(serve: str, max_clients: int = 4, auth: str = "auto", token_file: str | None = None,
                cert: str | None = None, key: str | None = None):
    """The web view of ``edge-dfd live --serve`` started from its options, and the line to print: a bad token
    file, ``$EDGE_DFD_SERVE_TOKEN``, certificate or busy port is a one-line ``EdgeDFDError`` (before the model
    loads). A generated token is shown in the line; a given one is named, never shown."""
    from edge_dfd.video.web import LiveServer

    try:
        host, port = parse_serve(serve)
    except ValueError as exc:
        raise EdgeDFDError(f"--serve {exc}") from None
    token = origin = None
    if auth != "none":
        if token_file:
            token, origin = read_token_file(token_file), f"the token in {token_file}"
        elif os.environ.get(TOKEN_ENV, "").strip():
            token, origin = check_token(os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"), f"the token in ${TOKEN_ENV}"
    tls = tls_context(cert, key) if cert else None
    server = LiveServer(host, port, max_clients=max_clients, auth=auth, token=token, tls=tls).start()
    return server, serve_line(server, origin)


def serve_line(server, origin: str | None) -> str:
    wildcard = server.host in ("0.0.0.0", "::", "")
    if server.token is None:
        if server.loopback:
            return f"serving the web view on {server.url}"
        return (f"WARNING: serving the web view on {server.url} WITHOUT AUTHENTICATION (--serve-auth none): "
                "anyone who can reach this machine can watch the camera")
    if origin is None:
        line = f"serving the web view on {server.open_url}"
        if wildcard:
            line += (f" (from another machine: {server.scheme}://{socket.gethostname()}:{server.port}/"
                     f"?token={server.token})")
        return line
    where = socket.gethostname() if wildcard else server.url.split("//", 1)[1].rsplit(":", 1)[0]
    return (f"serving the web view on {server.url} (token required: open "
            f"{server.scheme}://{where}:{server.port}/?token=TOKEN with {origin})")
