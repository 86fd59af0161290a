"""Test scenes and an IP-camera-like HTTP MJPEG stream on 127.0.0.1, for the live service tests and the soak
(benchmarks.soak_live).

``scene_frames(n)``: 640x480 BGR frames, each a whole face photo with its natural surroundings (hair, clothes,
background): real 140k sample test images read from ../shared/data when present (never copied into the
repository), otherwise generated cartoon faces drawn into a textured, noisy generated scene.

``MJPEGServer(frames, fps, drop_every, hold=1)``: serves the frames in a loop as ``multipart/x-mixed-replace``
(what IP cameras send) at ``/stream``, each ``hold`` times in a row; every connection is cut after ``drop_every``
seconds, like a flaky camera (``drops`` and ``drop_times`` count them).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import FACES140K, have_split
from benchmarks.synth import cartoon_face
from edge_dfd.core.util import read_csv_rows

W, H = 640, 480


def have_photos() -> bool:
    return have_split(FACES140K)


def scene_frames(n: int, seed: int = 0, detector=None) -> tuple[list[np.ndarray], str]:
    """``n`` 640x480 BGR frames with one face each and where they came from. With ``detector`` (a
    ``edge_dfd.images.faces`` detector), only frames in which it finds exactly one face after a JPEG round trip
    (what a stream or a video file delivers) are kept, so tests can count events exactly."""

    def keep(img) -> bool:
        if detector is None:
            return True
        rt = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR)
        return len(detector.detect(rt)[0]) == 1

    root = FACES140K
    out = []
    if have_photos():
        rows = read_csv_rows(root / "test.csv")
        for r in rows[seed : seed + 4 * n]:
            img = cv2.imread(str(root / "real_vs_fake" / "real-vs-fake" / r["path"]))
            if img is None:
                continue
            # the photo scaled to the frame width, cropped to 4:3: the whole frame is the photo
            img = cv2.resize(img, (W, W), interpolation=cv2.INTER_LINEAR)[(W - H) // 2 : (W + H) // 2]
            if keep(img):
                out.append(img)
            if len(out) == n:
                return out, str(root)
        raise RuntimeError(f"only {len(out)} of {n} usable frames in {root}")
    rng = np.random.default_rng(seed)
    for i in range(4 * n):
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        scene = np.stack([90 + 60 * xx / W, 110 + 40 * yy / H, 140 - 50 * xx / W], axis=-1)
        for _ in range(12):  # furniture-like blocks and sensor noise: not a flat backdrop
            x, y = rng.integers(0, W - 80), rng.integers(0, H - 80)
            scene[y : y + rng.integers(40, 200), x : x + rng.integers(40, 200)] += rng.uniform(-50, 50, 3)
        scene = np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8)
        face = cv2.cvtColor(cartoon_face(i % 2 == 1, 200, i), cv2.COLOR_RGB2BGR)
        x, y = 220 + int(rng.integers(-40, 40)), 140 + int(rng.integers(-30, 30))
        scene[y : y + 200, x : x + 200] = face
        scene = cv2.GaussianBlur(scene, (3, 3), 0)
        if keep(scene):
            out.append(scene)
        if len(out) == n:
            return out, "generated (tests/test_live.py cartoon faces in generated scenes)"
    raise RuntimeError(f"only {len(out)} of {n} usable generated frames")


def write_video(path: Path, frames: list[np.ndarray], repeat: int = 1, fps: float = 30.0) -> int:
    """MJPG .avi with each frame repeated ``repeat`` times; returns the frame count."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert vw.isOpened()
    n = 0
    for f in frames:
        for _ in range(repeat):
            vw.write(f)
            n += 1
    vw.release()
    return n


class MJPEGServer:
    """``with MJPEGServer(frames, fps=15, drop_every=20) as srv: srv.url`` -- frames (BGR) loop forever."""

    def __init__(self, frames, fps: float = 15.0, drop_every: float | None = 20.0, quality: int = 85, hold: int = 1):
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for f in frames]
        self.fps, self.drop_every, self.hold = fps, drop_every, max(1, int(hold))  # hold: frames each image is sent
        self.connections = self.sent = self.drops = 0
        self.drop_times: list[float] = []  # time.monotonic() of every drop
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                if self.path != "/stream":
                    self.send_error(404)
                    return
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                t0 = time.monotonic()
                k = 0
                try:
                    while not server._stop.is_set():
                        if server.drop_every and time.monotonic() - t0 >= server.drop_every:
                            server.drops += 1
                            server.drop_times.append(time.monotonic())
                            break  # the camera drops the connection
                        data = server.jpegs[(server.sent // server.hold) % len(server.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                        self.wfile.flush()
                        k += 1
                        server.sent += 1
                        time.sleep(max(0.0, t0 + k / server.fps - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MJPEGServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
