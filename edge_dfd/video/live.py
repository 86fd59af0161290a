"""The ``edge-dfd live`` command: sources -> pipeline -> outputs (window, video, events, web, health)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.images.faces import FaceDetector, make_detector
from edge_dfd.video.config import LiveConfig, LiveStats, StageTimes
from edge_dfd.video.escalation import from_config as escalation_from
from edge_dfd.video.pipeline import FaceResult, LivePipeline, draw
from edge_dfd.video.sources import Frame, FrameGrabber, open_source


def check_gui() -> None:
    """EdgeDFDError unless this OpenCV build can open windows (opencv-python-headless cannot)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            if line.split(":", 1)[1].strip().upper() in ("NONE", "NO", ""):
                raise EdgeDFDError(f"--show needs an OpenCV build with GUI support (this is {cv2.__version__} "
                                   "without one, e.g. opencv-python-headless); install it with "
                                   "pip uninstall -y opencv-python-headless opencv-python && pip install 'opencv-python<5'")
            return


def run_live(cfg: LiveConfig, backend=None, detector: FaceDetector | None = None, opener=None) -> LiveStats:
    """The ``edge-dfd live`` loop. Returns the stats (also printed to stderr; ``stats.exit_code`` is the
    command's exit code); raises SourceError at the end when the stream was lost. ``backend`` / ``detector`` /
    ``opener`` replace the defaults (tests).

    SIGINT, SIGTERM and SIGHUP stop it gracefully: the current frame is finished, the outputs are finalised and
    the summary is printed (``edge_dfd.core.signals``). An output that fails mid-run (disk full) stops it the same
    way, keeping everything written so far (``stats.error``, exit 1)."""
    from edge_dfd.video.outputs import check_output_path, parse_rotate
    from edge_dfd.video.segments import VIDEO_CODECS

    if cfg.show:
        check_gui()
    if cfg.save and Path(cfg.save).suffix.lower() not in VIDEO_CODECS:
        raise EdgeDFDError(f"--save {cfg.save}: expected a .avi (MJPG) or .mp4 (mp4v) file name")
    try:
        rotate = parse_rotate(cfg.events_rotate)
    except ValueError as exc:
        raise EdgeDFDError(f"--events-rotate {exc}") from None
    for option, path in (("--events", cfg.events if cfg.events != "-" else None), ("--save", cfg.save),
                         ("--status", cfg.status)):
        if path:  # before the model loads: a bad output path is a one-line error at once
            check_output_path(path, option)
    server = _start_server(cfg)  # a busy port is a one-line error before the model loads
    try:
        return _run(cfg, backend, detector, opener, rotate, server)
    finally:
        if server is not None:
            server.close()


def _start_server(cfg: LiveConfig):
    """The web view (edge_dfd.video.web_guard.open_server): a bad token file, certificate or a busy port is a
    one-line error before the model loads. Prints the URL to open."""
    if not cfg.serve:
        return None
    from edge_dfd.video.web_guard import open_server

    server, line = open_server(cfg.serve, cfg.serve_clients, cfg.serve_auth, cfg.serve_token_file, cfg.serve_cert,
                               cfg.serve_key)
    print(f"live: {line}", file=sys.stderr)
    return server


def _run(cfg: LiveConfig, backend, detector, opener, rotate, server) -> LiveStats:
    from edge_dfd.core.signals import GracefulStop
    from edge_dfd.images.preprocess import set_opencv_threads
    from edge_dfd.video.outputs import OutputClosed, OutputError

    with GracefulStop() as stop:
        set_opencv_threads(cfg.threads)
        detector = detector or make_detector(cfg.faces, threads=cfg.threads)
        if backend is None:
            from edge_dfd.runtime import load_model

            backend = load_model(cfg.model or "default", format=cfg.format, threads=cfg.threads)
        escalation = escalation_from(backend, cfg.escalate and {"hz": cfg.escalate_hz, **cfg.escalate})  # --escalate: loaded and run before the source opens
        source = open_source(cfg.source, opener)
        grabber = FrameGrabber(source, cfg.reconnects, cfg.backoff, pace=cfg.realtime)
        # live sources (and --realtime files) classify in a worker thread on the wall clock: a slow model
        # refreshes verdicts less often, never slows the frame rate; files run the schedule in their own time
        pipe = LivePipeline(backend, detector, cfg.detect_every, cfg.threshold, cfg.smooth, cfg.margin,
                            align=cfg.align, classify_hz=cfg.classify_hz, worker=grabber.live, escalation=escalation)
        stats, times = LiveStats(), StageTimes()
        with contextlib.ExitStack() as stack:
            stack.callback(pipe.close)
            out = _Output(cfg, getattr(source, "fps", 30.0), rotate, server)
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
                    faces = pipe.process(frame.image, frame.time)
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
                    for k, v in [*pipe.last_ms.items(), *pipe.worker_ms()]:
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
                pipe.close()
                stats.classified = pipe.classified
                stats.escalation = None if pipe.escalation is None else pipe.escalation.stats()
                stats.outputs = out.describe()
                failed = crash is not None and not isinstance(crash, KeyboardInterrupt)
                state = ("crashed" if failed else f"stopped by {stats.signal}" if stats.interrupted
                         else "stopped: output error" if stats.error else "source lost" if grabber.error
                         else "finished")
                if server is not None:  # pages say "ended" (with why) instead of reconnecting forever
                    capped = cfg.max_frames is not None and stats.frames >= cfg.max_frames
                    server.publish_end(state if state != "finished" else "stopped after --max-frames" if capped
                                       else "the video ended" if getattr(source, "kind", "") == "file"
                                       else "the source ended")
                with contextlib.suppress(OutputError):
                    out.health.stopping({**fields(), "exit": 1 if failed or (grabber.error and not stats.interrupted)
                                         else stats.exit_code}, state)
    stats.stage_ms = times.percentiles()
    print(stats.summary(), file=sys.stderr)
    if grabber.error is not None and not stats.interrupted and not stats.error:
        grabber.error.stats = stats  # what was processed before the source was lost
        raise grabber.error
    return stats


def _rss():
    from edge_dfd.video.health import rss_mb

    v = rss_mb()
    return None if v is None else round(v, 1)


def _r(v: float, nd: int = 4):
    return None if v is None or np.isnan(v) else round(float(v), nd)


def event_record(frame: Frame, f: FaceResult, utc: str) -> dict:
    """One line of ``--events``: ``score`` / ``smoothed`` are null and ``verdict`` "pending" until the track's
    first classification; ``age`` is how old (s) the crop behind the newest score is."""
    return {"time": round(frame.time, 3), "frame": frame.index, "track": f.track, "box": list(f.box),
            "crop": list(f.crop), "det_score": _r(f.det_score), "score": _r(f.score), "smoothed": _r(f.smoothed),
            "verdict": f.verdict, "age": _r(f.age, 3), "fresh": f.fresh, "detected": f.detected, "utc": utc,
            **f.escalation_fields()}


class _Output:
    """Window, saved video (``segments.VideoSegments``), JSONL events (``outputs.EventLog``) and health
    (status file, heartbeat, sd_notify) for each processed frame."""

    def __init__(self, cfg: LiveConfig, fps: float, rotate, server=None):
        from edge_dfd.video.health import Health
        from edge_dfd.video.outputs import EventLog
        from edge_dfd.video.segments import VideoSegments

        self.show, self.fps, self.server = cfg.show, fps, server
        self._published = 0.0
        self.events = self.video = None
        self.events = EventLog(cfg.events, rotate, cfg.events_keep) if cfg.events else None
        self.video = VideoSegments(cfg.save, fps, cfg.save_segment, cfg.save_keep) if cfg.save else None
        self.health = Health(cfg.status, cfg.heartbeat or 10.0, heartbeat=cfg.heartbeat > 0)
        self.folders = {p.parent for p in (getattr(self.events, "path", None), getattr(self.video, "path", None),
                                           self.health.path) if p is not None}
        self._last = self._fps = None
        self._frames, self._t0 = 0, time.perf_counter()
        self._disk_checked = 0.0
        self._rate = (time.perf_counter(), 0, 0.0)  # (t, frames) at the last health write, and the FPS since

    def emit(self, frame: Frame, faces: list[FaceResult], times: StageTimes) -> bool:
        records = None
        if self.events is not None or self.server is not None:
            t = time.time()
            utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
            records = [event_record(frame, f, utc) for f in faces]
        if self.events is not None:
            self.events.write([json.dumps(r) for r in records])
            self.events.tick()
        web_frame = self.server is not None and self.server.wants_frames
        if not (self.show or self.video or self.server):
            return False
        now = time.perf_counter()
        if self._last is not None:  # exponential moving average of the wall-clock frame rate
            inst = 1.0 / max(now - self._last, 1e-6)
            self._fps = inst if self._fps is None else 0.9 * self._fps + 0.1 * inst
        self._last = now
        self._frames += 1
        if self.server is not None:
            self._publish(records, faces)
        if not (self.show or self.video or web_frame):
            return False
        img = draw(frame.image.copy(), faces, self._fps, times.last)
        if self.video is not None:
            self.video.write(img, frame.time)
        if web_frame:
            import cv2

            ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                self.server.publish_frame(jpeg.tobytes())
        if self.show:
            import cv2

            cv2.imshow("edge-dfd live (q to quit)", img)
            return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
        return False

    def _publish(self, records: list[dict], faces: list[FaceResult]) -> None:
        """Web view: fresh verdicts as events at once; the track list and FPS at most 5 times a second."""
        fresh = [r for r, f in zip(records, faces) if f.fresh]
        if fresh:
            self.server.publish_events(fresh)
        now = time.monotonic()
        if now - self._published >= 0.2:
            self._published = now
            self.server.publish_tracks([{k: r[k] for k in ("track", "verdict", "smoothed", "score", "age", "box")}
                                        for r in records])
            self.server.publish_stats({"fps": None if self._fps is None else round(self._fps, 1),
                                       "frames": self._frames, "faces": len(records),
                                       "uptime": round(time.perf_counter() - self._t0, 1)})

    def health_fps(self, frames: int) -> float:
        """Frames per second since the previous call (the previous status write) at least 0.2 s earlier."""
        t, n, fps = self._rate
        now = time.perf_counter()
        if now - t >= 0.2:
            fps = (frames - n) / (now - t)
            self._rate = (now, frames, fps)
        return fps

    def check_disk(self) -> None:
        from edge_dfd.video import outputs

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
        if self.server is not None:
            auth = "token" if self.server.token else "no auth"
            parts.append(f"web view {self.server.url} ({auth})")
        return "; ".join(parts)

    def close(self) -> None:
        from edge_dfd.video.outputs import OutputError

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

