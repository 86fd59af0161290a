"""Real-time detection: capture thread -> face detection -> tracking -> ONE batched predict per frame.

Library use (see ``examples/custom_loop.py``)::

    from edge_dfd.faces import make_detector
    from edge_dfd.live import LivePipeline
    from edge_dfd.runtime import load_model

    pipe = LivePipeline(load_model("default", threads=2), make_detector("blazeface", threads=2))
    for face in pipe.process(frame_bgr):          # one FaceResult per face in the frame
        print(face.track, face.box, face.smoothed, face.verdict)

``run_live(LiveConfig(...))`` is the whole ``edge-dfd live`` command: a ``FrameGrabber`` thread reads the
source (cameras and streams keep only the newest frame, files are read frame by frame), the pipeline runs
on every frame (the detector every ``detect_every`` frames, boxes carried in between), and the results go to
the window, the saved video and the JSONL events. No TensorFlow is imported on the tflite / onnx paths.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge_dfd.errors import EdgeDFDError, MissingDependency
from edge_dfd.faces import FaceDetector, make_detector, square_box
from edge_dfd.preprocess import prepare_batch
from edge_dfd.tracking import Tracker

STAGES = ("capture", "detect", "preprocess", "infer", "draw")
DEFAULT_MARGIN = 0.33  # 140k training images are ~1.6-1.7x the BlazeFace box (measured on the shared sample)
CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


class SourceError(EdgeDFDError):
    """A video source that cannot be opened, or a stream that stayed down after every reconnect attempt."""


# =========================================================================== pipeline


@dataclass
class FaceResult:
    track: int
    box: tuple[int, int, int, int]  # the face box (detected or carried), frame pixels x1, y1, x2, y2
    crop: tuple[int, int, int, int]  # the square (box + margin) that was classified
    det_score: float
    score: float  # P(fake) of this frame's crop
    smoothed: float  # mean P(fake) over the track's last N frames
    verdict: str  # "fake" | "real" (smoothed >= threshold)
    detected: bool  # True when the detector ran on this frame, False when the box was carried


class LivePipeline:
    """Per-frame work: detect (every ``detect_every`` calls) -> track -> square crops -> one predict call.

    ``backend`` is anything with ``input_size``, ``predict(uint8 batch) -> P(fake)`` and ``meta.threshold``
    (``edge_dfd.runtime.load_model``); frames are OpenCV BGR. ``last_ms`` holds this call's stage times.
    """

    def __init__(self, backend, detector: FaceDetector, detect_every: int = 1, threshold: float | None = None,
                 smooth: int = 8, margin: float = DEFAULT_MARGIN):
        if detect_every < 1 or smooth < 1:
            raise EdgeDFDError(f"detect_every={detect_every}, smooth={smooth}: expected integers >= 1")
        self.backend, self.detector = backend, detector
        self.detect_every, self.margin = detect_every, margin
        self.threshold = float(backend.meta.threshold if threshold is None else threshold)
        self.tracker = Tracker(smooth=smooth)
        self.frames = 0
        self.last_ms: dict[str, float] = {}

    def process(self, frame: np.ndarray) -> list[FaceResult]:
        import cv2

        t0 = time.perf_counter()
        detected = self.frames % self.detect_every == 0
        self.frames += 1
        if detected:
            boxes, det_scores = self.detector.detect(frame)
            ids = self.tracker.update(boxes)
        else:
            boxes, ids = self.tracker.current()
            det_scores = np.full(len(ids), np.nan, np.float32)
        t1 = time.perf_counter()
        squares = [square_box(b, frame.shape, self.margin) for b in boxes]
        crops = [cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2RGB) for x1, y1, x2, y2 in squares]
        batch = prepare_batch(crops, self.backend.input_size)
        t2 = time.perf_counter()
        p = self.backend.predict(batch) if len(batch) else np.zeros(0, np.float32)
        t3 = time.perf_counter()
        smoothed = self.tracker.add_scores(ids, p)
        self.last_ms = {"detect": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "infer": (t3 - t2) * 1e3}
        return [
            FaceResult(tid, tuple(int(round(v)) for v in b), sq, float(ds), float(pi), sm,
                       "fake" if sm >= self.threshold else "real", detected)
            for tid, b, sq, ds, pi, sm in zip(ids, boxes, squares, det_scores, p, smoothed)
        ]


# =========================================================================== sources


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
    a small blocking queue so every frame is processed in order. Unreadable frames are skipped and counted.
    A live source that fails is reopened after ``backoff`` s, doubling up to 8 s, at most ``reconnects``
    times in a row; then ``error`` is set and the stream ends.
    """

    def __init__(self, source, reconnects: int = 5, backoff: float = 0.5, max_bad: int = 50):
        super().__init__(name="edge-dfd-capture", daemon=True)
        self.source, self.reconnects, self.backoff, self.max_bad = source, reconnects, backoff, max_bad
        self.skipped = self.dropped = self.reconnected = 0
        self.error: EdgeDFDError | None = None
        self._stop_evt = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended = False

    # --------------------------------------------------------------- consumer side

    def get(self, timeout: float = 30.0) -> Frame | None:
        """The next frame, or None at the end of the source (check ``error``)."""
        if not self.source.live:
            while True:
                try:
                    return self._queue.get(timeout=timeout)
                except queue.Empty:
                    if not self.is_alive():
                        return None
        with self._cond:
            if not self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout=timeout):
                raise SourceError(f"{self.source.name}: no frame for {timeout:.0f} s")
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
        if not self.source.live:
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


# =========================================================================== the live command


@dataclass
class LiveConfig:
    model: str = "default"
    format: str | None = None  # which bundled format with model "default" (None: zoo.DEFAULT_FORMAT)
    source: str = "0"
    faces: str = "blazeface"
    detect_every: int = 1
    threshold: float | None = None
    smooth: int = 8
    margin: float = DEFAULT_MARGIN
    show: bool = False
    save: str | None = None
    events: str | None = None  # path or "-" for stdout
    max_frames: int | None = None
    threads: int | None = None
    reconnects: int = 5
    backoff: float = 0.5


@dataclass
class LiveStats:
    frames: int = 0
    seconds: float = 0.0
    faces: int = 0  # face results over all frames
    skipped: int = 0
    dropped: int = 0
    reconnects: int = 0
    interrupted: bool = False
    stage_ms: dict = field(default_factory=dict)  # stage -> {"p50": ms, "p90": ms}

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": round(self.fps, 2)}

    def summary(self) -> str:
        stages = " · ".join(f"{k} {v['p50']:.2f}/{v['p90']:.2f}" for k, v in self.stage_ms.items())
        return (f"live: {self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS, {self.faces} faces "
                f"({self.skipped} unreadable frames skipped, {self.dropped} dropped, {self.reconnects} reconnects)"
                f"\nlive: ms per frame p50/p90: {stages}")


def check_gui() -> None:
    """EdgeDFDError unless this OpenCV build can open windows (opencv-python-headless cannot)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            if line.split(":", 1)[1].strip().upper() in ("NONE", "NO", ""):
                raise EdgeDFDError(f"--show needs an OpenCV build with GUI support (this is {cv2.__version__} "
                                   "without one, e.g. opencv-python-headless); install it with "
                                   "pip uninstall -y opencv-python-headless && pip install 'opencv-python<5'")
            return


def run_live(cfg: LiveConfig, backend=None, detector: FaceDetector | None = None, opener=None) -> LiveStats:
    """The ``edge-dfd live`` loop. Returns the stats (also printed to stderr); raises SourceError at the end
    when the stream was lost. ``backend`` / ``detector`` / ``opener`` replace the defaults (tests)."""
    from edge_dfd.fsutil import atomic_path
    from edge_dfd.preprocess import set_opencv_threads

    if cfg.show:
        check_gui()
    if cfg.save and Path(cfg.save).suffix.lower() not in CODECS:
        raise EdgeDFDError(f"--save {cfg.save}: expected a .avi (MJPG) or .mp4 (mp4v) file name")
    set_opencv_threads(cfg.threads)
    detector = detector or make_detector(cfg.faces, threads=cfg.threads)
    if backend is None:
        from edge_dfd.runtime import load_model

        backend = load_model(cfg.model or "default", format=cfg.format, threads=cfg.threads)
    pipe = LivePipeline(backend, detector, cfg.detect_every, cfg.threshold, cfg.smooth, cfg.margin)
    source = open_source(cfg.source, opener)
    grabber = FrameGrabber(source, cfg.reconnects, cfg.backoff)
    stats, times = LiveStats(), {s: [] for s in STAGES}
    with contextlib.ExitStack() as stack:
        video_tmp = stack.enter_context(atomic_path(cfg.save)) if cfg.save else None
        events = _open_events(cfg.events, stack)
        out = _Output(cfg.show, video_tmp, getattr(source, "fps", 30.0), events)
        stack.callback(out.close)  # runs before the atomic rename: the video is complete when it appears
        grabber.start()
        t_start = time.perf_counter()
        try:
            while cfg.max_frames is None or stats.frames < cfg.max_frames:
                frame = grabber.get()
                if frame is None:
                    break
                faces = pipe.process(frame.image)
                t0 = time.perf_counter()
                quit_ = out.emit(frame, faces, times)
                times["draw"].append((time.perf_counter() - t0) * 1e3)
                times["capture"].append(frame.capture_ms)
                for k, v in pipe.last_ms.items():
                    times[k].append(v)
                stats.frames += 1
                stats.faces += len(faces)
                if quit_:
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
        finally:
            stats.seconds = time.perf_counter() - t_start
            grabber.stop()
            grabber.join(timeout=5)
            source.release()
    stats.skipped, stats.dropped, stats.reconnects = grabber.skipped, grabber.dropped, grabber.reconnected
    stats.stage_ms = {s: {"p50": _pct(v, 50), "p90": _pct(v, 90)} for s, v in times.items() if v}
    print(stats.summary(), file=sys.stderr)
    if grabber.error is not None and not stats.interrupted:
        grabber.error.stats = stats  # what was processed before the source was lost
        raise grabber.error
    return stats


def _pct(v, q) -> float:
    return round(float(np.percentile(v, q)), 3)


def _open_events(spec, stack):
    if not spec:
        return None
    if spec == "-":
        return sys.stdout
    tmp = stack.enter_context(contextlib.ExitStack())
    from edge_dfd.fsutil import atomic_path

    path = tmp.enter_context(atomic_path(spec))
    return tmp.enter_context(open(path, "w", encoding="utf-8"))


class _Output:
    """Window, saved video and JSONL events for each processed frame."""

    def __init__(self, show: bool, video_path, fps: float, events):
        self.show, self.video_path, self.fps, self.events = show, video_path, fps, events
        self.writer = None
        self._last = self._fps = None

    def emit(self, frame: Frame, faces: list[FaceResult], times) -> bool:
        if self.events is not None:
            for f in faces:
                self.events.write(json.dumps({
                    "time": round(frame.time, 3), "frame": frame.index, "track": f.track, "box": list(f.box),
                    "crop": list(f.crop),
                    "det_score": None if np.isnan(f.det_score) else round(f.det_score, 4),
                    "score": round(f.score, 4), "smoothed": round(f.smoothed, 4), "verdict": f.verdict,
                    "detected": f.detected}) + "\n")
            self.events.flush()
        if not (self.show or self.video_path):
            return False
        now = time.perf_counter()
        if self._last is not None:  # exponential moving average of the wall-clock frame rate
            inst = 1.0 / max(now - self._last, 1e-6)
            self._fps = inst if self._fps is None else 0.9 * self._fps + 0.1 * inst
        self._last = now
        img = draw(frame.image.copy(), faces, self._fps, {k: v[-1] for k, v in times.items() if v})
        if self.video_path is not None:
            self._write(img)
        if self.show:
            import cv2

            cv2.imshow("edge-dfd live (q to quit)", img)
            return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
        return False

    def _write(self, img) -> None:
        import cv2

        if self.writer is None:
            codec = CODECS[Path(self.video_path).suffix.lower()]
            h, w = img.shape[:2]
            self.writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*codec), self.fps, (w, h))
            if not self.writer.isOpened():
                raise EdgeDFDError(f"--save: OpenCV cannot write {codec} video to {self.video_path}")
        self.writer.write(img)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.show:
            import cv2

            with contextlib.suppress(Exception):
                cv2.destroyAllWindows()


def draw(img: np.ndarray, faces: list[FaceResult], fps: float | None = None, stage_ms: dict | None = None):
    """Boxes coloured by verdict (red fake, green real) with track id and smoothed P(fake); FPS and the last
    frame's per-stage ms in the corners. Draws on ``img`` and returns it."""
    import cv2

    font, aa = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
    for f in faces:
        colour = (0, 0, 255) if f.verdict == "fake" else (0, 200, 0)
        x1, y1, x2, y2 = f.box
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        label = f"#{f.track} {f.verdict} {f.smoothed:.2f}"
        cv2.putText(img, label, (x1 + 2, max(14, y1 - 6)), font, 0.5, colour, 1, aa)
    if fps:
        cv2.putText(img, f"{fps:.1f} FPS", (8, 22), font, 0.6, (255, 255, 255), 2, aa)
    if stage_ms:
        text = "  ".join(f"{k} {v:.1f}" for k, v in stage_ms.items()) + " ms"
        cv2.putText(img, text, (8, img.shape[0] - 10), font, 0.45, (255, 255, 255), 1, aa)
    return img
