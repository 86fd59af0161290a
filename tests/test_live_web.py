"""The web view of ``edge-dfd live --serve`` (edge_dfd.video.web): parsing --serve, the routes, the MJPEG stream,
Server-Sent Events, the client limit, a stalled client and a busy port. Servers bind 127.0.0.1 port 0."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.video import web_guard
from edge_dfd.video.web import LiveServer
from edge_dfd.video.web_guard import parse_serve

pytestmark = pytest.mark.timeout(60)


def jpeg(i: int, size: int = 160) -> bytes:
    img = np.full((size, size, 3), (i * 37) % 256, np.uint8)
    cv2.rectangle(img, (10, 10), (size - 10, size - 10), (0, 0, 255), 3)
    cv2.putText(img, str(i), (40, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
    return cv2.imencode(".jpg", img)[1].tobytes()


def noisy_jpeg(nbytes: int = 100_000) -> bytes:
    """A JPEG of at least ``nbytes`` (noise does not compress)."""
    rng = np.random.default_rng(0)
    side = 128
    while True:
        data = cv2.imencode(".jpg", rng.integers(0, 256, (side, side, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        if data.size >= nbytes:
            return data.tobytes()
        side += 32


@pytest.fixture
def server():
    s = LiveServer("127.0.0.1", 0, max_clients=3).start()
    yield s
    s.close()


def wait_for(cond, timeout=5.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def read_parts(resp, n: int) -> list[bytes]:
    """The next ``n`` JPEGs of a multipart/x-mixed-replace response."""
    parts = []
    while len(parts) < n:
        line = resp.readline()
        assert line, "stream ended"
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            assert resp.readline() == b"\r\n"
            parts.append(resp.read(length))
    return parts


def sse_events(resp):
    """Yield (event, data) from a text/event-stream response."""
    kind, data = None, []
    for raw in resp:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield kind, json.loads("\n".join(data))
            kind, data = None, []


def publisher(server, stop, frames, period=0.03):
    def run():
        i = 0
        while not stop.is_set():
            server.publish_frame(frames[i % len(frames)])
            i += 1
            time.sleep(period)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("value,expected", [
    ("8080", ("127.0.0.1", 8080)), ("0", ("127.0.0.1", 0)), (" 65535 ", ("127.0.0.1", 65535)),
    ("0.0.0.0:8080", ("0.0.0.0", 8080)), ("localhost:1", ("localhost", 1)), ("pi.local:8000", ("pi.local", 8000)),
    ("[::1]:8080", ("::1", 8080)), ("[::]:0", ("::", 0)),
])
def test_parse_serve_good(value, expected):
    assert parse_serve(value) == expected


@pytest.mark.parametrize("value", ["", "http", "65536", "-1", "8080:", ":8080", "::1:8080", "host:port",
                                   "a b:80", "1.2.3.4:99999", "[::1]", "[::1]:", "http://x:80", "80.5"])
def test_parse_serve_bad(value):
    with pytest.raises(ValueError) as e:
        parse_serve(value)
    msg = str(e.value)
    assert "\n" not in msg and "[HOST:]PORT" in msg and repr(value) in msg


def test_page_and_routes(server):
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/"
    with urllib.request.urlopen(server.url, timeout=5) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
        page = r.read().decode()
    for needle in ('<img id="stream" src="/stream.mjpg"', '<tbody id="tracks">', 'id="events"', 'id="fps"',
                   'EventSource("/events")', "<title>edge-dfd live</title>"):
        assert needle in page
    assert "http://" not in page and "https://" not in page  # self-contained: no external assets
    server.publish_tracks([{"track": 3, "verdict": "fake", "smoothed": np.float32(0.9), "age": float("nan"),
                            "box": np.array([1, 2, 30, 40])}])
    server.publish_stats({"fps": 29.5, "frames": 100, "uptime": 3.2})
    with urllib.request.urlopen(server.url + "state.json", timeout=5) as r:
        state = json.load(r)
    assert state["tracks"] == [{"track": 3, "verdict": "fake", "smoothed": pytest.approx(0.9), "age": None,
                                "box": [1, 2, 30, 40]}]
    assert state["stats"] == {"fps": 29.5, "frames": 100, "uptime": 3.2}
    for path, code in [("nope", 404), ("stream.mjpg/x", 404)]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + path, timeout=5)
        assert e.value.code == code
    for method in ("POST", "PUT", "DELETE"):
        req = urllib.request.Request(server.url + "state.json", data=b"x" if method != "DELETE" else None,
                                     method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 405 and "GET" in e.value.headers["Allow"]
    with urllib.request.urlopen(urllib.request.Request(server.url + "stream.mjpg", method="HEAD"), timeout=5) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
    assert server.clients == 0 and not server.wants_frames


def test_mjpeg_stream(server):
    frames = [jpeg(i) for i in range(5)]
    assert not server.wants_frames
    stop = threading.Event()
    publisher(server, stop, frames)
    try:
        with urllib.request.urlopen(server.url + "stream.mjpg", timeout=5) as r:
            assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            assert wait_for(lambda: server.wants_frames and server.clients == 1)
            got = read_parts(r, 3)
        assert all(p in frames for p in got) and len(set(got)) >= 2  # published bytes, and newer ones
        img = cv2.imdecode(np.frombuffer(got[0], np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (160, 160, 3)
        assert wait_for(lambda: server.clients == 0 and not server.wants_frames)  # the slot is given back
    finally:
        stop.set()


def test_sse_tracks_and_events(server):
    server.publish_events([{"track": 1, "verdict": "real", "smoothed": 0.1}])  # replayed to new pages
    with urllib.request.urlopen(server.url + "events", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = sse_events(r)
        first = [next(events) for _ in range(3)]
        assert [k for k, _ in first] == ["tracks", "stats", "face"] and first[2][1]["verdict"] == "real"
        assert server.clients == 1 and not server.wants_frames
        server.publish_tracks([{"track": 7, "verdict": "fake", "smoothed": 0.93, "age": 0.4, "box": [0, 0, 9, 9]}])
        server.publish_events([{"track": 7, "verdict": "fake", "smoothed": 0.93}])
        server.publish_stats({"fps": 30.0, "frames": 5, "uptime": 1.0})
        got = {}
        for kind, data in events:
            got[kind] = data
            if len(got) == 3:
                break
    assert got["tracks"][0]["track"] == 7 and got["tracks"][0]["verdict"] == "fake"
    assert got["face"]["verdict"] == "fake" and got["stats"]["fps"] == 30.0
    assert wait_for(lambda: server.clients == 0)


def test_max_clients_503(server):
    opened = [urllib.request.urlopen(server.url + p, timeout=5) for p in ("stream.mjpg", "events", "events")]
    try:
        assert wait_for(lambda: server.clients == 3)
        for p in ("stream.mjpg", "events"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(server.url + p, timeout=5)
            assert e.value.code == 503 and b"too many viewers" in e.value.read()
        with urllib.request.urlopen(server.url, timeout=5) as r:  # the page itself is not limited
            assert r.status == 200
    finally:
        for r in opened:
            r.close()
    assert wait_for(lambda: server.clients == 0)
    with urllib.request.urlopen(server.url + "events", timeout=5) as r:  # slots are reusable
        assert r.status == 200


@pytest.mark.slow
def test_stalled_client_dropped(server):
    big = noisy_jpeg(100_000)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # ... and never reads
    assert wait_for(lambda: server.clients == 1)
    received, stop = [], threading.Event()

    def reader():
        try:
            with urllib.request.urlopen(server.url + "stream.mjpg", timeout=10) as r:
                while not stop.is_set():
                    received.extend(read_parts(r, 1))
        except (AssertionError, OSError):  # the stream ends when the server closes after the test
            if not stop.is_set():
                raise

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert wait_for(lambda: server.clients == 2)
        took, dropped_at, start = [], None, time.monotonic()
        while time.monotonic() - start < 12:
            t0 = time.perf_counter()
            server.publish_frame(big)
            took.append(time.perf_counter() - t0)
            if dropped_at is None and server.clients == 1:
                dropped_at = time.monotonic() - start
                n = len(received)
            if dropped_at is not None and time.monotonic() - start > dropped_at + 1.0:
                break
            time.sleep(1 / 30)
        assert dropped_at is not None, "the stalled client was never dropped"
        # never waits on the stalled socket (that would be a SEND_TIMEOUT-long stall); percentile and a loose
        # max because this process may be preempted for a few ms on a busy machine
        took.sort()
        p95, worst = took[int(0.95 * len(took))], took[-1]
        assert p95 < 0.005 and worst < 0.1, f"publish_frame p95 {p95 * 1000:.1f} ms, worst {worst * 1000:.1f} ms"
        assert len(received) > n and received[-1] == big  # the normal client kept receiving after the drop
        assert t.is_alive() and server.clients == 1
    finally:
        stop.set()
        stalled.close()


def test_busy_port_and_bad_host():
    with LiveServer("127.0.0.1", 0) as first:
        with pytest.raises(EdgeDFDError) as e:
            LiveServer("127.0.0.1", first.port).start()
        msg = str(e.value)
        assert f"127.0.0.1:{first.port}" in msg and "already in use" in msg and "\n" not in msg
    with pytest.raises(EdgeDFDError) as e:
        LiveServer("no-such-host.invalid", 8080).start()
    assert "no-such-host.invalid:8080" in str(e.value)


def test_close_is_prompt():
    server = LiveServer("127.0.0.1", 0).start()
    stop = threading.Event()
    publisher(server, stop, [jpeg(1)])
    stream = urllib.request.urlopen(server.url + "stream.mjpg", timeout=5)
    events = urllib.request.urlopen(server.url + "events", timeout=5)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    try:
        assert wait_for(lambda: server.clients == 3)
        read_parts(stream, 1)
        stop.set()
        big = noisy_jpeg(300_000)
        for _ in range(25):  # ~7 MB: the stalled client's handler is now blocked in a send
            server.publish_frame(big)
            time.sleep(0.02)
        t0 = time.perf_counter()
        server.close()
        took = time.perf_counter() - t0
        assert took < 1.0, f"close() took {took:.2f} s"
        assert wait_for(lambda: server.clients == 0, timeout=1.0 - took), "a client outlived close() by > 1 s"
        with pytest.raises(OSError):
            urllib.request.urlopen(server.url, timeout=2)
    finally:
        stop.set()
        for c in (stream, events, stalled):
            c.close()


# ----------------------------------------------------------------------------- safe on a LAN (issue 28)


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` to 127.0.0.1:port and return everything the server answers before it closes ("" on a
    reset: a server may cut a client that is still sending a too-large request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks) if "chunks" in locals() else b""


def status(resp: bytes) -> int | None:
    return int(resp.split(b" ", 2)[1]) if resp.startswith(b"HTTP/1.1 ") else None


def get(url: str, headers: dict | None = None, context=None):
    """(status, headers, body) of a GET, errors included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            body = r.read() if "stream" not in url and "events" not in url else r.read(1)
            return r.status, r.headers, body
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def local(server) -> str:
    """The server's URL with the host replaced by 127.0.0.1 (tests never leave loopback)."""
    return f"{server.scheme}://127.0.0.1:{server.port}/"


def test_token_required_when_bound_to_every_address():
    """Bound to 0.0.0.0 every client needs the token, loopback clients included (the rule follows the bind
    address); the token is random (>= 128 bits), ?token= sets an HttpOnly SameSite=Strict cookie that then
    suffices, and every route says 401 without it."""
    calls = []
    real = web_guard.hmac.compare_digest
    with LiveServer("0.0.0.0", 0) as s, pytest.MonkeyPatch.context() as mp:
        mp.setattr(web_guard, "FAIL_FREE", 100)  # this test's wrong tokens are not slowed down
        mp.setattr(web_guard.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
        assert s.token and len(s.token) >= 22 and not s.loopback  # 22 base64url characters = 132 bits
        assert s.open_url == f"http://0.0.0.0:{s.port}/?token={s.token}"
        assert LiveServer("0.0.0.0", 0).start().token != s.token  # a fresh one each start (closed at exit)
        url = local(s)
        s.publish_frame(jpeg(1))
        for path in ("", "index.html", "stream.mjpg", "events", "state.json"):
            code, _, body = get(url + path)
            assert code == 401 and b"token" in body, (path, code)
            assert get(url + path + "?token=" + "x" * len(s.token))[0] == 401
            assert get(url + path, {"Cookie": f"edge_dfd_token_{s.port}=wrong-wrong-wrong-1"})[0] == 401
        assert calls, "tokens are compared with hmac.compare_digest"
        code, headers, body = get(url + "?token=" + s.token)
        assert code == 200 and b'id="stream"' in body
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"edge_dfd_token_{s.port}={s.token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
        assert headers["Referrer-Policy"] == "no-referrer" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert b"history.replaceState" in body  # the token leaves the address bar
        jar = {"Cookie": f"edge_dfd_token_{s.port}={s.token}"}
        code, headers, body = get(url + "state.json", jar)
        assert code == 200 and json.loads(body)["clients"] == 0 and "Set-Cookie" not in headers
        code, headers, first = get(url + "stream.mjpg", jar)
        assert code == 200 and first == b"-" and headers["Content-Type"].startswith("multipart/x-mixed-replace")
        assert get(url + "state.json", {"Authorization": f"Bearer {s.token}"})[0] == 200
        assert get(url + "nope?token=" + s.token)[0] == 404


def test_loopback_host_check_and_opt_in_token():
    with LiveServer("127.0.0.1", 0) as s:
        assert s.token is None and s.loopback
        for host in ("localhost", f"localhost:{s.port}", f"127.0.0.1:{s.port}", "[::1]:80", "app.localhost"):
            assert status(raw(s.port, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())) == 200, host
        for host in ("evil.example", f"evil.example:{s.port}", "192.168.1.5", "127.0.0.1.evil.example"):
            resp = raw(s.port, f"GET /state.json HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert status(resp) == 403 and b"Host" in resp, host  # DNS rebinding: the page of evil.example
        assert status(raw(s.port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: localhost\r\n\r\n")) == 400
    with LiveServer("127.0.0.1", 0, auth="token") as s:  # asked for on loopback
        assert s.token and get(local(s))[0] == 401 and get(local(s) + "?token=" + s.token)[0] == 200
    with LiveServer("127.0.0.1", 0, token="a-given-token-0123456789") as s:  # a given token is asked for too
        assert get(local(s) + "?token=a-given-token-0123456789")[0] == 200 and get(local(s))[0] == 401
    with LiveServer("0.0.0.0", 0, auth="none", token="ignored-ignored-1234") as s:  # the explicit opt-out
        assert s.token is None and get(local(s))[0] == 200


@pytest.mark.slow
def test_wrong_tokens_slow_down(monkeypatch):
    monkeypatch.setattr(web_guard, "MAX_DELAY", 1.0)
    with LiveServer("0.0.0.0", 0) as s:
        url, good = local(s) + "state.json?token=", s.token
        for _ in range(web_guard.FAIL_FREE):  # free tries: plain 401
            assert get(url + "wrong-token-0123456789")[0] == 401
        assert get(url + good)[0] == 200  # a success forgets the failures
        for _ in range(web_guard.FAIL_FREE + 1):
            assert get(url + "wrong-token-0123456789")[0] == 401
        code, headers, body = get(url + good)  # within 0.5 s of the 6th failure: not even checked
        assert code == 429 and int(headers["Retry-After"]) >= 1 and b"too many wrong tokens" in body
        time.sleep(0.55)
        assert get(url + "wrong-token-0123456789")[0] == 401  # the 7th: now 1 s (MAX_DELAY) to wait
        t0 = time.monotonic()
        while get(url + good)[0] == 429:
            time.sleep(0.05)
        assert 0.8 < time.monotonic() - t0 < 2.5  # 1 s, plus a loaded machine's scheduling
        assert get(url)[0] == 401 and s.counts["throttled"] >= 2  # no token at all is a plain 401


def test_read_token_file(tmp_path):
    from edge_dfd.video.web_guard import read_token_file

    good = tmp_path / "token"
    good.write_text("  0123456789abcdef0123456789abcdef\n")
    good.chmod(0o600)
    assert read_token_file(good) == "0123456789abcdef0123456789abcdef"
    cases = {"missing": (tmp_path / "nope", "no such file"), "dir": (tmp_path, "is a folder")}
    for name, content, mode, why in [("empty", " \n", 0o600, "empty"), ("world", "0123456789abcdef0123", 0o644,
                                     "readable by every user (mode 0644)"), ("short", "abc", 0o600, "got 3 characters"),
                                     ("spaces", "0123456789 abcdef 0123", 0o600, "other characters"),
                                     ("base64", "MTIzNDU2Nzg5MDEyMzQ1Ng+/==", 0o600, "other characters"),
                                     ("binary", b"\xff\xfe\x00", 0o600, "not a text file")]:
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        p.chmod(mode)
        cases[name] = (p, why)
    for name, (p, why) in cases.items():
        with pytest.raises(EdgeDFDError) as e:
            read_token_file(p)
        msg = str(e.value)
        assert msg.startswith(f"--serve-token-file {p}:") and why in msg and "\n" not in msg, (name, msg)
        assert "0123456789abcdef" not in msg  # never shows the token


def openssl_cert(folder, name="pi", days=30):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-days",
                    str(days), "-noenc", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_https(tmp_path):
    import ssl

    from edge_dfd.video.web_guard import tls_context

    cert, key = openssl_cert(tmp_path)
    other_cert, other_key = openssl_cert(tmp_path, "other")
    client = ssl.create_default_context(cafile=str(cert))
    with LiveServer("0.0.0.0", 0, tls=tls_context(cert, key)) as s:
        assert s.url.startswith("https://") and s.open_url.startswith("https://0.0.0.0:")
        code, headers, body = get(local(s) + "?token=" + s.token, context=client)
        assert code == 200 and b'id="stream"' in body and "; Secure" in headers["Set-Cookie"]
        assert get(local(s), context=client)[0] == 401
        with pytest.raises(urllib.error.URLError) as e:  # a client that does not trust this certificate
            urllib.request.urlopen(local(s), timeout=5, context=ssl.create_default_context(cafile=str(other_cert)))
        assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
        resp = raw(s.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # plain HTTP to the HTTPS port
        assert status(resp) is None
    for c, k, why in [(cert, other_key, "does not match the certificate"), (cert, None, "PEM"),
                      (tmp_path / "nope.crt", key, "no such file"), (cert, tmp_path / "no.key", "no such file")]:
        with pytest.raises(EdgeDFDError) as e:
            tls_context(c, k)
        assert why in str(e.value) and "\n" not in str(e.value)


def test_idle_connections_cost_no_threads():
    """100 clients that never finish their request: no thread each, and a real client is still served; when the
    connection limit is reached the oldest unfinished request is evicted, not the newcomer."""
    with LiveServer("127.0.0.1", 0, max_open=40) as s:
        threads = threading.active_count()
        idle = []
        try:
            for _ in range(100):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                c.sendall(b"GET / HTTP/1.1\r\nHost: local")  # ... never finished
                idle.append(c)
            assert wait_for(lambda: s.counts["evicted"] >= 60)
            assert s.connections <= 40 and threading.active_count() <= threads
            code, _, body = get(local(s))
            assert code == 200 and b'id="stream"' in body
            gone = 0
            for c in idle[:50]:  # the oldest were cut
                c.settimeout(0.5)
                try:
                    gone += c.recv(1) == b""
                except (ConnectionResetError, TimeoutError):
                    gone += 1
            assert gone == 50
        finally:
            for c in idle:
                c.close()


def test_malformed_requests_and_path_tricks():
    with LiveServer("127.0.0.1", 0) as s:
        def code(data: bytes):
            return status(raw(s.port, data))

        assert code(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n") in (431, None)
        assert code(b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n") == 414
        for bad in (b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\xff\xfe\r\n\r\n", b"G\xc3\xa9T / HTTP/1.1\r\n\r\n",
                    b"get / HTTP/1.1\r\n\r\n", b"GET  / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 150 + b"\r\n",
                    b"GET /?" + b"a=1&" * 20 + b" HTTP/1.1\r\n\r\n"):
            assert code(bad) == 400, bad[:40]
        assert code(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc") == 405
        for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2fweb.py", "//stream.mjpg", "/./",
                     "/stream.mjpg/../", "/index.html%00", "/INDEX.HTML", "/state.json/", "/events;x",
                     "http://evil.example/", "*", "/\\..\\web.py", "/%00", "/stream.mjpg#x", "/~root"):
            assert code(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()) == 404, path
        assert code(b"GET / HTTP/1.0\r\n\r\n") == 200  # HTTP/1.0 without Host
        assert s.counts["bad_requests"] >= 10 and wait_for(lambda: s.connections == 0)


def test_end_event():
    with LiveServer("127.0.0.1", 0) as s:
        with urllib.request.urlopen(s.url + "events", timeout=5) as r:
            events = sse_events(r)
            assert [next(events)[0] for _ in range(2)] == ["tracks", "stats"]
            s.publish_events([{"track": 1, "verdict": "real", "smoothed": 0.1}])
            s.publish_end("the video ended")
            got = [next(events) for _ in range(2)]
        assert got == [("face", {"track": 1, "verdict": "real", "smoothed": 0.1}),
                       ("end", {"reason": "the video ended"})]
        with urllib.request.urlopen(s.url + "events", timeout=5) as r:  # a page opened after the end
            events = sse_events(r)
            assert [next(events)[0] for _ in range(4)] == ["tracks", "stats", "face", "end"]


def live_cli(*args, env=None, timeout=60):
    """``python -m edge_dfd live ...`` in a real process: (exit code, stderr)."""
    import os
    import sys

    env = {**{k: v for k, v in os.environ.items() if k != "EDGE_DFD_SERVE_TOKEN"}, **(env or {})}
    p = subprocess.run([sys.executable, "-m", "edge_dfd", "live", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stderr


@pytest.mark.slow
def test_cli_bad_serve_input(tmp_path):
    """Bad token file, certificate or port: one line, exit 1, before the model or the source is opened (the model
    and source here do not exist: their errors would come later). Options without --serve: usage errors."""
    cert, key = openssl_cert(tmp_path)
    _, other_key = openssl_cert(tmp_path, "other")
    world = tmp_path / "world-token"
    world.write_text("0123456789abcdef0123456789abcdef")
    world.chmod(0o644)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    base = ("--model", tmp_path / "no-model.onnx", "--source", tmp_path / "no-video.avi", "--serve")
    cases = [
        ((*base, "0.0.0.0:0", "--serve-token-file", tmp_path / "missing"), {}, "--serve-token-file", "no such file"),
        ((*base, "0.0.0.0:0", "--serve-token-file", world), {}, "--serve-token-file", "readable by every user"),
        ((*base, "0.0.0.0:0"), {"EDGE_DFD_SERVE_TOKEN": "short"}, "$EDGE_DFD_SERVE_TOKEN", "got 5 characters"),
        ((*base, "127.0.0.1:0", "--serve-cert", cert, "--serve-key", other_key), {}, "--serve-key",
         "does not match the certificate"),
        ((*base, f"127.0.0.1:{port}"), {}, f"--serve 127.0.0.1:{port}", "already in use"),
    ]
    try:
        for args, env, starts, why in cases:
            code, err = live_cli(*args, env=env)
            lines = err.strip().splitlines()
            assert code == 1 and len(lines) == 1 and "Traceback" not in err, (args, err)
            assert starts in lines[0] and why in lines[0], (args, err)
    finally:
        busy.close()
    for args, why in [(("--serve-cert", cert), "--serve-cert needs --serve"),
                      (("--serve", "0", "--serve-key", key), "--serve-key needs --serve-cert"),
                      (("--serve", "0", "--serve-auth", "none", "--serve-token-file", world), "contradict")]:
        code, err = live_cli(*args)
        assert code == 2 and why in err and "Traceback" not in err, err


@pytest.mark.slow
def test_cli_startup_lines(tmp_path):
    """What is printed at start: the URL with a generated token; a given token is named, never printed; the
    opt-out on a LAN address is a loud warning."""
    import os

    from stubs import make_video, tiny_onnx

    model = tiny_onnx(tmp_path / "tiny.onnx")
    video = tmp_path / "v.avi"
    make_video(video, [None] * 3)
    tok = tmp_path / "token"
    tok.write_text("given-token-0123456789abcdef\n")
    os.chmod(tok, 0o600)
    run = ("--model", model, "--source", video, "--faces", "none", "--max-frames", "2", "--serve")
    code, err = live_cli(*run, "0.0.0.0:0")
    m = re.search(r"live: serving the web view on http://0\.0\.0\.0:(\d+)/\?token=([\w-]{32}) \(from another machine: "
                  r"http://\S+:\1/\?token=\2\)", err)
    assert code == 0 and m, err
    code, err = live_cli(*run, "0.0.0.0:0", "--serve-token-file", tok)
    assert code == 0 and "given-token" not in err and f"with the token in {tok}" in err, err
    code, err = live_cli(*run, "0.0.0.0:0", env={"EDGE_DFD_SERVE_TOKEN": "env-token-0123456789abcdef"})
    assert code == 0 and "env-token" not in err and "with the token in $EDGE_DFD_SERVE_TOKEN" in err, err
    code, err = live_cli(*run, "0.0.0.0:0", "--serve-auth", "none")
    assert code == 0 and "WARNING: serving the web view on http://0.0.0.0:" in err and "WITHOUT AUTHENTICATION" in err
    assert "(no auth)" in err  # and again in the summary
    code, err = live_cli(*run, "127.0.0.1:0")
    assert code == 0 and re.search(r"serving the web view on http://127\.0\.0\.1:\d+/\n", err), err


def test_systemd_unit_serves_with_a_token_credential():
    """examples/edge-dfd-live.service serves the LAN with the token from a systemd credential it loads."""
    import shlex
    from pathlib import Path

    from edge_dfd.cli.live import cmd

    unit = (Path(__file__).resolve().parents[1] / "examples" / "edge-dfd-live.service").read_text()
    lines = [ln.strip() for ln in unit.replace("\\\n", " ").splitlines() if not ln.lstrip().startswith("#")]
    exec_start = next(ln.split("=", 1)[1] for ln in lines if ln.startswith("ExecStart="))
    p = cmd.make_context("live", shlex.split(exec_start)[2:]).params
    assert p["serve"] and not web_guard.is_loopback(parse_serve(p["serve"])[0]) and p["serve_auth"] == "auto"
    m = re.fullmatch(r"\$\{CREDENTIALS_DIRECTORY\}/([\w.-]+)", p["serve_token_file"])
    assert m and f"LoadCredential={m.group(1)}:/etc/edge-dfd/token" in lines, p["serve_token_file"]
