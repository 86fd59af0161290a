"""The web view of ``edge-dfd live --serve`` (edge_dfd.live.web): parsing --serve, the routes, the MJPEG stream,
Server-Sent Events, the client limit, a stalled client and a busy port. Servers bind 127.0.0.1 port 0."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edge_dfd.errors import EdgeDFDError
from edge_dfd.live.web import LiveServer, parse_serve

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
