"""Video sources and the capture thread of ``edge-dfd live``: cameras, files, streams, Picamera2."""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError, MissingDependency


class SourceError(EdgeDFDError):
    """A video source that cannot be opened, or a stream that stayed down after every reconnect attempt."""


def _cv2_quiet():
    """Silence OpenCV's own WARN lines (e.g. for a missing camera); we report one line ourselves."""
    import cv2

    with contextlib.suppress(AttributeError):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


def _default_opener(arg):
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's own lines; we print one error ourselves
    cv2 = _cv2_quiet()
    if isinstance(arg, str) and "://" in arg:  # network stream: do not hang for minutes on a dead URL
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 10000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 10000]
        return cv2.VideoCapture(arg, cv2.CAP_ANY, params)
    return cv2.VideoCapture(arg)


class VideoSource:
    """An OpenCV ``VideoCapture`` over a camera index, a video file or a stream URL.

    ``opener(arg) -> capture`` builds the capture (tests pass fakes); ``kind`` is camera, file or stream.
    """

    def __init__(self, spec: str, opener=None):
        self.spec = str(spec)
        self.opener = opener or _default_opener
        if self.spec.isdigit():
            self.kind, self.arg, self.name = "camera", int(self.spec), f"camera {self.spec}"
        elif "://" in self.spec:
            self.kind, self.arg, self.name = "stream", self.spec, f"stream {self.spec}"
        else:
            p = Path(self.spec).expanduser()
            self.kind, self.arg, self.name = "file", str(p), f"video file {p}"
            if not p.is_file():
                raise SourceError(f"{self.name}: not found (expected a camera index, a video file, a URL or picamera2)")
        self.live = self.kind != "file"
        self.cap = self._open()
        if self.cap is None:
            what = "no such camera, or it is busy" if self.kind == "camera" else "OpenCV cannot open it"
            raise SourceError(f"{self.name}: cannot be opened ({what})")

    def _open(self):
        cap = self.opener(self.arg)
        if cap is not None and cap.isOpened():
            return cap
        if cap is not None:
            cap.release()
        return None

    @property
    def fps(self) -> float:
        import cv2

        v = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return v if 1.0 <= v <= 240.0 else 30.0

    def read(self):
        return self.cap.read()

    def at_end(self) -> bool:
        """For files: True when the read position has reached the frame count (a failed read is the end)."""
        import cv2

        pos, count = self.cap.get(cv2.CAP_PROP_POS_FRAMES), self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return not count or pos >= count

    def reopen(self) -> bool:
        with contextlib.suppress(Exception):
            self.cap.release()
        cap = self._open()
        if cap is not None:
            self.cap = cap
        return cap is not None

    def release(self) -> None:
        self.cap.release()


class Picamera2Source:
    """The Raspberry Pi CSI camera through Picamera2 (OpenCV cannot open libcamera cameras)."""

    live, kind, name = True, "camera", "picamera2"
    fps = 30.0

    def __init__(self, size=(640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise MissingDependency(
                "--source picamera2 needs the Picamera2 module: on Raspberry Pi OS run "
                "'sudo apt install python3-picamera2' and create the venv with --system-site-packages"
            ) from None
        self._cls, self.size = Picamera2, tuple(size)
        try:
            self._start()
        except Exception as exc:  # libcamera raises many types; report one line
            raise SourceError(f"picamera2: cannot start the camera ({type(exc).__name__}: {exc})") from None

    def _start(self):
        self.cam = self._cls()
        # "RGB888" is B, G, R byte order in memory: exactly OpenCV's BGR
        self.cam.configure(self.cam.create_video_configuration(main={"size": self.size, "format": "RGB888"}))
        self.cam.start()

    def read(self):
        try:
            return True, self.cam.capture_array()
        except Exception:  # a failed capture is handled like a dropped stream
            return False, None

    def reopen(self) -> bool:
        self.release()
        try:
            self._start()
            return True
        except Exception:
            return False

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self.cam.stop()
            self.cam.close()


def open_source(spec, opener=None):
    """``--source`` value -> a source object; SourceError (one line naming it) when it cannot be opened."""
    if str(spec).strip().lower() == "picamera2":
        return Picamera2Source()
    return VideoSource(str(spec).strip(), opener)


@dataclass
class Frame:
    index: int  # frames delivered by the source so far (files: the frame number)
    time: float  # seconds: position in a file, or since capture started for live sources
    image: np.ndarray  # (H, W, 3) uint8 BGR
    capture_ms: float


class FrameGrabber(threading.Thread):
    """Reads ``source`` in its own thread.

    Live sources keep only the newest frame (older unread ones are counted in ``dropped``); files go through
    a small blocking queue so every frame is processed in order, or with ``pace`` are read at their own frame
    rate and treated like a live source. Unreadable frames are skipped and counted.
    A live source that fails is reopened after ``backoff`` s, doubling up to 8 s, at most ``reconnects``
    times in a row; then ``error`` is set and the stream ends.
    """

    def __init__(self, source, reconnects: int = 5, backoff: float = 0.5, max_bad: int = 50, pace: bool = False):
        super().__init__(name="edge-dfd-capture", daemon=True)
        self.source, self.reconnects, self.backoff, self.max_bad = source, reconnects, backoff, max_bad
        # pace: play a file at its own frame rate and keep only the newest frame, like a camera (--realtime)
        self.pace = bool(pace) and not source.live
        self.live = source.live or self.pace
        self.skipped = self.dropped = self.reconnected = 0
        self.reconnecting = False  # True while the stream is down and being reopened
        self.error: EdgeDFDError | None = None
        self._stop_evt = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended = False

    # --------------------------------------------------------------- consumer side

    def get(self, timeout: float = 30.0, cancel: threading.Event | None = None) -> Frame | None:
        """The next frame, or None at the end of the source (check ``error``) or once ``cancel`` is set
        (checked every 0.2 s: a stop request never waits for a frame that does not come)."""
        if not self.live:
            while True:
                if cancel is not None and cancel.is_set():
                    return None
                try:
                    return self._queue.get(timeout=0.2 if cancel is not None else timeout)
                except queue.Empty:
                    if not self.is_alive():
                        return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._ended:
                if cancel is not None and cancel.is_set():
                    return None
                if self.reconnecting:  # the reconnect attempts have their own budget: wait for their outcome
                    deadline = time.monotonic() + timeout
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SourceError(f"{self.source.name}: no frame for {timeout:.0f} s")
                self._cond.wait(min(left, 0.2))
            frame, self._latest = self._latest, None
            return frame

    def stop(self) -> None:
        self._stop_evt.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    # --------------------------------------------------------------- producer side

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # the capture backend can raise anything; end the stream with one line
            self.error = SourceError(f"{self.source.name}: capture failed ({type(exc).__name__}: {exc})")
        finally:
            self._deliver(None)

    def _loop(self) -> None:
        index, bad, t_start = 0, 0, time.perf_counter()
        fps = getattr(self.source, "fps", 30.0)
        while not self._stop_evt.is_set():
            t0 = time.perf_counter()
            ok, img = self.source.read()
            ms = (time.perf_counter() - t0) * 1e3
            if ok and _valid(img):
                t = index / fps if not self.source.live else t0 - t_start
                self._deliver(Frame(index, t, img, ms))
                index, bad = index + 1, 0
                if self.pace:  # the next frame is due at its own time in the file
                    self._stop_evt.wait(max(0.0, t_start + index / fps - time.perf_counter()))
                continue
            if ok or (not self.source.live and not self.source.at_end()):
                self.skipped, bad = self.skipped + 1, bad + 1  # unreadable frame: skip it
                if bad <= self.max_bad:
                    continue
                if not self.source.live:
                    print(f"warning: {self.source.name}: {bad} unreadable frames in a row; stopping", file=sys.stderr)
                    return
            if not self.source.live:
                return  # end of file
            if not self._reconnect():
                self.error = SourceError(f"{self.source.name}: stream lost and {self.reconnects} reconnect "
                                         "attempts failed")
                return
            bad = 0

    def _reconnect(self) -> bool:
        self.reconnecting = True
        try:
            return self._attempts()
        finally:
            self.reconnecting = False

    def _attempts(self) -> bool:
        for attempt in range(self.reconnects):
            delay = min(self.backoff * 2**attempt, 8.0)
            print(f"warning: {self.source.name}: stream dropped; reconnecting in {delay:.1f} s "
                  f"(attempt {attempt + 1}/{self.reconnects})", file=sys.stderr)
            if self._stop_evt.wait(delay):
                return True
            if self.source.reopen():
                self.reconnected += 1
                return True
        return False

    def _deliver(self, frame: Frame | None) -> None:
        if not self.live:
            while True:
                try:
                    self._queue.put(frame, timeout=0.1)
                    return
                except queue.Full:
                    if self._stop_evt.is_set():
                        return
        with self._cond:
            if frame is None:
                self._ended = True
            else:
                if self._latest is not None:
                    self.dropped += 1
                self._latest = frame
            self._cond.notify_all()


def _valid(img) -> bool:
    return (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.size > 0
            and img.dtype == np.uint8)

