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
Outputs that survive a stop, a crash or a power cut (appended events, segmented video, status file,
sd_notify) live in ``edge_dfd.outputs``; SIGINT / SIGTERM / SIGHUP stop the loop through ``edge_dfd.signals``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
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

    def get(self, timeout: float = 30.0, cancel: threading.Event | None = None) -> Frame | None:
        """The next frame, or None at the end of the source (check ``error``) or once ``cancel`` is set
        (checked every 0.2 s: a stop request never waits for a frame that does not come)."""
        if not self.source.live:
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
    save_segment: float | None = None  # seconds per saved video segment (None: one file)
    save_keep: int = 0  # finished segments to keep (0: all)
    events_rotate: str | None = None  # "100MB" / "1h" (outputs.parse_rotate)
    events_keep: int = 10  # rotated event files to keep (0: all)
    status: str | None = None  # status file (JSON), rewritten every heartbeat interval
    heartbeat: float = 0.0  # s between heartbeat lines on stderr (0: none; the status file then every 10 s)


@dataclass
class LiveStats:
    frames: int = 0
    seconds: float = 0.0
    faces: int = 0  # face results over all frames
    faceless: int = 0  # frames without a face
    skipped: int = 0
    dropped: int = 0
    reconnects: int = 0
    interrupted: bool = False  # stopped by Ctrl-C or a signal
    signal: str | None = None  # "SIGINT" | "SIGTERM" | "SIGHUP" when a signal stopped the run
    error: str | None = None  # an output failed mid-run (disk full): stopped cleanly, exit 1
    outputs: str = ""  # where the events and video went
    stage_ms: dict = field(default_factory=dict)  # stage -> {"p50": ms, "p90": ms}

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """1 after an output error; 128 + signal number after a signal stop (130 Ctrl-C, 143 SIGTERM,
        129 SIGHUP); 0 otherwise."""
        if self.error:
            return 1
        if self.interrupted:
            return 128 + int(getattr(signal, self.signal or "SIGINT"))
        return 0

    def to_dict(self) -> dict:
        return {**asdict(self), "fps": round(self.fps, 2)}

    def summary(self) -> str:
        stages = " · ".join(f"{k} {v['p50']:.2f}/{v['p90']:.2f}" for k, v in self.stage_ms.items())
        text = (f"live: {self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS, {self.faces} faces "
                f"({self.skipped} unreadable frames skipped, {self.dropped} dropped, {self.reconnects} reconnects)"
                f"\nlive: ms per frame p50/p90: {stages}")
        if self.interrupted:
            text += f"\nlive: stopped by {self.signal or 'SIGINT'}; outputs finalised (exit {self.exit_code})"
        if self.outputs:
            text += f"\nlive: {self.outputs}"
        return text


class StageTimes:
    """Per-stage ms for the p50/p90 summary in constant memory: every sample while there are fewer than
    ``size``, then a uniform reservoir sample of the whole run (exact percentiles for short runs; a run of
    days does not grow)."""

    def __init__(self, size: int = 4096, seed: int = 0):
        import random

        self.size, self.rng = size, random.Random(seed)
        self.samples: dict[str, list[float]] = {s: [] for s in STAGES}
        self.seen: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.last: dict[str, float] = {}

    def add(self, stage: str, ms: float) -> None:
        self.last[stage] = ms
        self.seen[stage] += 1
        v = self.samples[stage]
        if len(v) < self.size:
            v.append(ms)
        else:
            j = self.rng.randrange(self.seen[stage])
            if j < self.size:
                v[j] = ms

    def percentiles(self) -> dict:
        return {s: {"p50": _pct(v, 50), "p90": _pct(v, 90)} for s, v in self.samples.items() if v}


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
    """The ``edge-dfd live`` loop. Returns the stats (also printed to stderr; ``stats.exit_code`` is the
    command's exit code); raises SourceError at the end when the stream was lost. ``backend`` / ``detector`` /
    ``opener`` replace the defaults (tests).

    SIGINT, SIGTERM and SIGHUP stop it gracefully: the current frame is finished, the outputs are finalised and
    the summary is printed (``edge_dfd.signals``). An output that fails mid-run (disk full) stops it the same
    way, keeping everything written so far (``stats.error``, exit 1)."""
    from edge_dfd.outputs import OutputClosed, OutputError, check_output_path, parse_rotate
    from edge_dfd.preprocess import set_opencv_threads
    from edge_dfd.signals import GracefulStop

    if cfg.show:
        check_gui()
    if cfg.save and Path(cfg.save).suffix.lower() not in CODECS:
        raise EdgeDFDError(f"--save {cfg.save}: expected a .avi (MJPG) or .mp4 (mp4v) file name")
    try:
        rotate = parse_rotate(cfg.events_rotate)
    except ValueError as exc:
        raise EdgeDFDError(f"--events-rotate {exc}") from None
    for option, path in (("--events", cfg.events if cfg.events != "-" else None), ("--save", cfg.save),
                         ("--status", cfg.status)):
        if path:  # before the model loads: a bad output path is a one-line error at once
            check_output_path(path, option)
    with GracefulStop() as stop:
        set_opencv_threads(cfg.threads)
        detector = detector or make_detector(cfg.faces, threads=cfg.threads)
        if backend is None:
            from edge_dfd.runtime import load_model

            backend = load_model(cfg.model or "default", format=cfg.format, threads=cfg.threads)
        pipe = LivePipeline(backend, detector, cfg.detect_every, cfg.threshold, cfg.smooth, cfg.margin)
        source = open_source(cfg.source, opener)
        grabber = FrameGrabber(source, cfg.reconnects, cfg.backoff)
        stats, times = LiveStats(), StageTimes()
        with contextlib.ExitStack() as stack:
            out = _Output(cfg, getattr(source, "fps", 30.0), rotate)
            stack.callback(out.close)
            grabber.start()
            t_start = time.perf_counter()
            last_frame = [None]

            def fields():
                now = time.perf_counter()
                return {"source": source.name, "frames": stats.frames, "faces": stats.faces,
                        "fps": round(out.health_fps(stats.frames), 2), "uptime_s": round(now - t_start, 1),
                        "last_frame_age_s": None if last_frame[0] is None else round(now - last_frame[0], 2),
                        "reconnects": grabber.reconnected, "dropped": grabber.dropped, "skipped": grabber.skipped,
                        "rss_mb": _rss(), "events": str(cfg.events) if cfg.events else None,
                        "events_lines": out.events.lines if out.events else 0,
                        "video": str(out.video.current) if out.video and out.video.current else None}

            out.health.ready(fields())
            try:
                while cfg.max_frames is None or stats.frames < cfg.max_frames:
                    if stop.requested:
                        break
                    frame = grabber.get(cancel=stop.event)
                    if frame is None:
                        break
                    faces = pipe.process(frame.image)
                    t0 = time.perf_counter()
                    try:
                        quit_ = out.emit(frame, faces, times)
                    except OutputError as exc:  # this frame's output was rolled back: it does not count
                        stats.error = str(exc)
                        break
                    except OutputClosed:  # `--events - | head`: the reader has what it wanted
                        break
                    times.add("draw", (time.perf_counter() - t0) * 1e3)
                    times.add("capture", frame.capture_ms)
                    for k, v in pipe.last_ms.items():
                        times.add(k, v)
                    stats.frames += 1
                    stats.faces += len(faces)
                    stats.faceless += not faces
                    last_frame[0] = time.perf_counter()
                    try:
                        out.health.beat(fields)
                        out.check_disk()
                    except OutputError as exc:
                        stats.error = str(exc)
                        break
                    if quit_:
                        break
            except KeyboardInterrupt:
                stop.request(signal.SIGINT)
            finally:
                crash = sys.exc_info()[1]
                stats.seconds = time.perf_counter() - t_start
                grabber.stop()
                grabber.join(timeout=5)
                source.release()
                if stop.requested:
                    stats.interrupted, stats.signal = True, stop.name
                if stats.error:
                    print(f"warning: {stats.error}; stopping, everything written so far is kept", file=sys.stderr)
                try:
                    out.close()
                except OutputError as exc:
                    stats.error = stats.error or str(exc)
                    print(f"warning: {exc}", file=sys.stderr)
                stats.skipped, stats.dropped = grabber.skipped, grabber.dropped
                stats.reconnects = grabber.reconnected
                stats.outputs = out.describe()
                failed = crash is not None and not isinstance(crash, KeyboardInterrupt)
                state = ("crashed" if failed else f"stopped by {stats.signal}" if stats.interrupted
                         else "stopped: output error" if stats.error else "source lost" if grabber.error
                         else "finished")
                with contextlib.suppress(OutputError):
                    out.health.stopping({**fields(), "exit": 1 if failed or (grabber.error and not stats.interrupted)
                                         else stats.exit_code}, state)
    stats.stage_ms = times.percentiles()
    print(stats.summary(), file=sys.stderr)
    if grabber.error is not None and not stats.interrupted and not stats.error:
        grabber.error.stats = stats  # what was processed before the source was lost
        raise grabber.error
    return stats


def _pct(v, q) -> float:
    return round(float(np.percentile(v, q)), 3)


def _rss():
    from edge_dfd.outputs import rss_mb

    v = rss_mb()
    return None if v is None else round(v, 1)


def event_record(frame: Frame, f: FaceResult, utc: str) -> dict:
    """One line of ``--events``."""
    return {"time": round(frame.time, 3), "frame": frame.index, "track": f.track, "box": list(f.box),
            "crop": list(f.crop), "det_score": None if np.isnan(f.det_score) else round(f.det_score, 4),
            "score": round(f.score, 4), "smoothed": round(f.smoothed, 4), "verdict": f.verdict,
            "detected": f.detected, "utc": utc}


class _Output:
    """Window, saved video (``outputs.VideoSegments``), JSONL events (``outputs.EventLog``) and health
    (status file, heartbeat, sd_notify) for each processed frame."""

    def __init__(self, cfg: LiveConfig, fps: float, rotate):
        from edge_dfd.outputs import EventLog, Health, VideoSegments

        self.show, self.fps = cfg.show, fps
        self.events = self.video = None
        self.events = EventLog(cfg.events, rotate, cfg.events_keep) if cfg.events else None
        self.video = VideoSegments(cfg.save, fps, cfg.save_segment, cfg.save_keep) if cfg.save else None
        self.health = Health(cfg.status, cfg.heartbeat or 10.0, heartbeat=cfg.heartbeat > 0)
        self.folders = {p.parent for p in (getattr(self.events, "path", None), getattr(self.video, "path", None),
                                           self.health.path) if p is not None}
        self._last = self._fps = None
        self._disk_checked = 0.0
        self._rate = (time.perf_counter(), 0, 0.0)  # (t, frames) at the last health write, and the FPS since

    def emit(self, frame: Frame, faces: list[FaceResult], times: StageTimes) -> bool:
        if self.events is not None:
            t = time.time()
            utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
            self.events.write([json.dumps(event_record(frame, f, utc)) for f in faces])
            self.events.tick()
        if not (self.show or self.video):
            return False
        now = time.perf_counter()
        if self._last is not None:  # exponential moving average of the wall-clock frame rate
            inst = 1.0 / max(now - self._last, 1e-6)
            self._fps = inst if self._fps is None else 0.9 * self._fps + 0.1 * inst
        self._last = now
        img = draw(frame.image.copy(), faces, self._fps, times.last)
        if self.video is not None:
            self.video.write(img, frame.time)
        if self.show:
            import cv2

            cv2.imshow("edge-dfd live (q to quit)", img)
            return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
        return False

    def health_fps(self, frames: int) -> float:
        """Frames per second since the previous call (the previous status write) at least 0.2 s earlier."""
        t, n, fps = self._rate
        now = time.perf_counter()
        if now - t >= 0.2:
            fps = (frames - n) / (now - t)
            self._rate = (now, frames, fps)
        return fps

    def check_disk(self) -> None:
        from edge_dfd import outputs

        now = time.monotonic()
        if now - self._disk_checked >= outputs.DISK_CHECK_EVERY:
            self._disk_checked = now
            outputs.check_free_space(self.folders)

    def describe(self) -> str:
        parts = []
        if self.events is not None:
            where = "stdout" if self.events.stdout else str(self.events.path)
            rot = f", {self.events.rotations} rotations" if self.events.rotations else ""
            parts.append(f"events {where} (+{self.events.lines} lines{rot})")
        if self.video is not None:
            parts.append(self.video.describe())
        return "; ".join(parts)

    def close(self) -> None:
        from edge_dfd.outputs import OutputError

        err = None
        for part in (self.video, self.events):
            if part is not None:
                try:
                    part.close()
                except OutputError as exc:
                    err = err or exc
        if self.show:
            import cv2

            with contextlib.suppress(Exception):
                cv2.destroyAllWindows()
        if err is not None:
            raise err


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
