"""The web view of ``edge-dfd live --serve`` in a real headless browser (Debian's ``chromium``; ``.ci/run``
installs it when absent): the track table shows the verdict sent over Server-Sent Events, and the MJPEG stream
is painted. ``browser_dump`` is the reusable part: open a URL, return its DOM, optionally save a screenshot."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_dfd.video.web import LiveServer

# real chromium processes and a video played at its own rate: 4-10 s a test on 2 cores (CONTRIBUTING: slow)
pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium on PATH (apt-get install chromium; .ci/run installs it)")
BOX_BGR = (255, 0, 255)  # magenta: nothing else on the page has this colour


def browser_dump(url: str, png: str | Path | None = None, *, until: Callable[[str], bool] | None = None,
                 wait_ms: int = 4000, timeout: float = 60.0) -> str:
    """Open ``url`` in headless chromium and return the page's DOM, serialised once the page has loaded (the web
    view loads when its first MJPEG frame has arrived) or after ``wait_ms`` if it never does (a stream with no
    frame yet). With ``png``, also save an 800x700 screenshot taken at the same moment. With ``until``, open the
    page again until ``until(dom)`` holds (Server-Sent Events arrive asynchronously) or ``timeout`` s have
    passed; the last DOM is returned either way. Each chromium run is killed with its children after
    ``timeout`` s. (``--virtual-time-budget`` must not be used: virtual time never advances while an MJPEG
    stream or an event stream is open, so chromium would never finish.)"""
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium on PATH")
    end = time.monotonic() + timeout
    while True:
        with tempfile.TemporaryDirectory(prefix="edge-dfd-chromium-", ignore_cleanup_errors=True) as profile:
            cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
                   f"--timeout={wait_ms}", "--window-size=800,700", "--dump-dom"]
            if png is not None:
                cmd.append(f"--screenshot={png}")
            proc = subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
            try:
                out, err = proc.communicate(timeout=max(5.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # chromium and its zygote / renderer children
                out, err = proc.communicate()
                raise AssertionError(f"chromium did not finish within {timeout:.0f} s: {err.decode()[-1500:]}") from None
            finally:
                try:  # leftover helpers of a finished run
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        dom = out.decode(errors="replace")
        assert proc.returncode == 0 and "<html" in dom, f"chromium exit {proc.returncode}: {err.decode()[-1500:]}"
        if until is None or until(dom) or time.monotonic() > end:
            return dom
        time.sleep(0.5)


def synthetic_frame(i: int) -> np.ndarray:
    img = np.full((240, 320, 3), 60, np.uint8)
    cv2.circle(img, (160, 125), 55, (150, 180, 220), -1)  # a "face"
    cv2.rectangle(img, (95, 55), (225, 200), BOX_BGR, 4)
    cv2.putText(img, f"#1 fake 0.93  {i}", (90, 45), cv2.FONT_HERSHEY_SIMPLEX, 0.55, BOX_BGR, 2)
    return img


def magenta(img: np.ndarray) -> np.ndarray:
    b, g, r = (img[..., k].astype(int) for k in range(3))
    return (b > 200) & (r > 200) & (g < 80)


def box_pixels(png: Path) -> int:
    """Pixels of the drawn box in a screenshot: > 0 once a stream frame is painted."""
    img = cv2.imread(str(png), cv2.IMREAD_COLOR) if Path(png).is_file() else None
    return 0 if img is None else int(magenta(img).sum())


def feed(server: LiveServer, stop: threading.Event, fps: float = 15.0) -> threading.Thread:
    """What the live loop publishes: frames (only while someone watches), tracks, stats and a face event."""
    def run():
        i, t0 = 0, time.monotonic()
        while not stop.is_set():
            if server.wants_frames:
                server.publish_frame(cv2.imencode(".jpg", synthetic_frame(i), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
            server.publish_tracks([{"track": 1, "verdict": "fake", "smoothed": 0.93, "score": 0.95, "age": 0.4,
                                    "box": [95, 55, 225, 200]}])
            server.publish_stats({"fps": fps, "frames": i, "uptime": round(time.monotonic() - t0, 1)})
            if i % 15 == 0:
                server.publish_events([{"time": i / fps, "frame": i, "track": 1, "verdict": "fake",
                                        "smoothed": 0.93, "utc": time.strftime("%Y-%m-%dT%H:%M:%S.000Z")}])
            i += 1
            time.sleep(1 / fps)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@needs_chromium
@pytest.mark.timeout(120)
def test_page_in_headless_chromium(tmp_path):
    """Bound to every address, so a token is required (chromium connects to 127.0.0.1): opened with ?token=, the
    page, its MJPEG stream and its event stream work through the cookie; without the token it is a 401."""
    png = tmp_path / "live_web.png"
    stop = threading.Event()
    with LiveServer("0.0.0.0", 0) as server:
        feed(server, stop)
        base = f"http://127.0.0.1:{server.port}/"
        try:
            dom = browser_dump(base + "?token=" + server.token, png,
                               until=lambda d: 'class="track fake"' in d and box_pixels(png) > 300)
            refused = browser_dump(base, wait_ms=2000)
        finally:
            stop.set()
    print(f"\nscreenshot: {png}")
    assert 'class="track fake"' in dom, dom[-3000:]
    row = dom.split('class="track fake"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="verdict">fake</td>' in row and '<td class="score">0.930</td>' in row
    assert '<b id="fps">15.0</b>' in dom and 'class="event fake"' in dom and '<span id="conn">live</span>' in dom
    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img is not None and img.shape[:2] == (700, 800)
    assert box_pixels(png) > 300, f"the stream area is blank ({box_pixels(png)} box pixels)"
    assert img.std() > 20  # not a flat page
    ys, xs = np.nonzero(magenta(img))
    assert xs.max() - xs.min() > 100 and ys.max() - ys.min() > 100  # the whole box, scaled into the <img>
    assert "unauthorized" in refused and 'id="stream"' not in refused


@needs_chromium
@pytest.mark.timeout(120)
def test_page_says_ended_in_headless_chromium(tmp_path):
    """After a file source ends (live publishes `end`, as at the end of a video), the page says "ended" with the
    reason and stops reconnecting; the last frame stays on screen."""
    png = tmp_path / "ended.png"
    stop = threading.Event()
    with LiveServer("127.0.0.1", 0, auth="token") as server:
        feed(server, stop)
        time.sleep(0.5)
        server.publish_end("the video ended")
        try:
            dom = browser_dump(server.open_url, png, until=lambda d: 'class="ended"' in d and box_pixels(png) > 300)
        finally:
            stop.set()
    print(f"\nscreenshot: {png}")
    assert '<span id="conn" class="ended">ended (the video ended)</span>' in dom, dom[-3000:]
    assert '>reconnecting</span>' not in dom and 'class="track fake"' in dom
    assert box_pixels(png) > 300


@needs_chromium
def test_live_serve_end_to_end_in_a_browser(tmp_path):
    """`edge-dfd live --serve 0.0.0.0:0` on a face video (played at its own rate), opened at 127.0.0.1 with the
    token printed at start: the page in chromium shows the annotated stream and the track list with the face's verdict; the run ends cleanly (exit 0 at the video's end
    or 143 on SIGTERM) and names the web view in its summary."""
    import re
    import sys

    from stubs import make_video, tiny_onnx

    model = tiny_onnx(tmp_path / "tiny.onnx")
    video = tmp_path / "face.avi"
    make_video(video, [(True, 240 + (i % 20), 150) for i in range(450)])  # 15 s of one fake (cool) face
    proc = subprocess.Popen([sys.executable, "-m", "edge_dfd", "live", "--model", str(model), "--source", str(video),
                             "--faces", "haar", "--realtime", "--serve", "0.0.0.0:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, lines = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"serving the web view on http://0\.0\.0\.0(:\d+/\?token=\S+)", line)
            url = m and "http://127.0.0.1" + m.group(1)  # bound to every address: the token is required
        assert url, "".join(lines)
        png = tmp_path / "live.png"

        def shows_verdict(dom: str) -> bool:
            return bool(re.search(r'class="track fake"', dom)) and png.is_file()

        dom = browser_dump(url, png, until=shows_verdict, timeout=40)
        assert re.search(r'<tr[^>]*class="track fake"', dom), dom[-3000:]
        row = re.search(r'<tr[^>]*class="track fake".*?</tr>', dom, re.S).group(0)
        score = float(re.search(r'class="score">([0-9.]+)<', row).group(1))
        assert score > 0.7, row  # the smoothed P(fake) of the cool face (the tiny model: > 0.7 on its crops)
        img = cv2.imread(str(png))
        assert img is not None and img.shape[:2] == (700, 800)
        # the stream is painted: the fake face's red box (BGR 0, 0, 255) drawn by live is on the page
        red = (img[..., 2] > 200) & (img[..., 1] < 60) & (img[..., 0] < 60)
        assert red.sum() > 50, red.sum()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 143), err
    assert "web view http://0.0.0.0:" in err and "(token)" in err, err
