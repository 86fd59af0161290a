"""``edge-dfd scan``: P(fake) per face track and per video for video files, the offline twin of ``live``.

Each video is decoded once, front to back, as fast as it decodes (no display, no pacing, never a backwards
seek): frames that are not sampled are skipped with ``cap.grab()`` (no colour conversion), each sampled frame
goes through a fresh ``LivePipeline`` (detect, track, align, crop; every face classified, ``classify_hz=None``)
at t = frame index / fps. Sampling: every N-th frame (``every``) or K frames evenly spaced over the frame
count (``frames``, the centre of each of K equal slices; every ~1 s of video when the count is unknown).

Aggregation:
- a track's P(fake) is sigmoid(mean logit) of its frames' P(fake) (each clipped to [1e-6, 1 - 1e-6]);
- a video's P(fake) is its most suspicious track among those seen in >= ``min_track_frames`` sampled frames
  (all tracks when none is): one fake face among real ones makes the video fake, so faces are not averaged;
  the frame minimum keeps a one-frame false detection (a poster, a pattern in the background) from deciding.

    from edge_dfd.video.scan import collect_videos, scan_videos
    for v in scan_videos(collect_videos(["clips/"]), backend, "blazeface", frames=32): print(v.path, v.p_fake)
"""

from __future__ import annotations

import csv
import glob
import io
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_dfd.core.errors import DataError, UsageError
from edge_dfd.core.verdicts import verdict
from edge_dfd.images.preprocess import VIDEO_SUFFIXES
from edge_dfd.runtime.predict import GLOB_CHARS
from edge_dfd.video.pipeline import DEFAULT_ALIGN

DEFAULT_FRAMES = 32
DEFAULT_MIN_TRACK_FRAMES = 2
EPS = 1e-6
COLUMNS = ["kind", "video", "track", "p_fake", "verdict", "frames_used", "faces", "status", "error"]
STAGE = "stage"  # with --escalate only: track rows say which stage decided (1 or 2)
OUT_SUFFIXES = (".csv", ".jsonl")


@dataclass
class TrackResult:
    track: int
    p_fake: float
    verdict: str
    frames: int  # sampled frames with this face
    stage: int | None = None  # with --escalate: 2 when the second model's opinion is in p_fake, else 1


@dataclass
class VideoResult:
    path: str
    status: str  # ok | no face | unreadable | no frames
    frames: int = 0  # sampled frames decoded
    tracks: list = field(default_factory=list)
    p_fake: float | None = None
    verdict: str = ""
    error: str = ""
    decoded: int = 0  # frames decoded or skipped with grab(), sampled or not

    @property
    def scanned(self) -> bool:
        return self.status in ("ok", "no face")

    def rows(self) -> list[dict]:
        """One 'video' row, then one 'track' row per face track (columns: COLUMNS; None = empty)."""
        p = None if self.p_fake is None else round(self.p_fake, 6)
        out = [dict(kind="video", video=self.path, track=None, p_fake=p, verdict=self.verdict,
                    frames_used=self.frames, faces=len(self.tracks), status=self.status, error=self.error)]
        out += [dict(kind="track", video=self.path, track=t.track, p_fake=round(t.p_fake, 6), verdict=t.verdict,
                     frames_used=t.frames, faces=None, status="ok", error="",
                     **({} if t.stage is None else {STAGE: t.stage})) for t in self.tracks]
        return out


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()


def collect_videos(inputs, recursive: bool = False) -> list[str]:
    """Files (taken as given), folders (their video files; sub-folders with ``recursive``) and globs (their video
    files) -> paths in a stable order, each once. DataError naming every input that matched nothing."""
    paths, seen, problems = [], set(), []
    for raw in map(str, inputs):
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(str(q) for q in (p.rglob("*") if recursive else p.iterdir()) if _is_video(q))
            why = f"folder contains no videos ({' '.join(VIDEO_SUFFIXES)})" + (
                "" if recursive else "; --recursive looks in sub-folders")
        elif p.exists():
            found, why = [str(p)], ""
        elif GLOB_CHARS & set(raw):
            found = sorted(f for f in glob.glob(os.path.expanduser(raw), recursive=True) if _is_video(Path(f)))
            why = "no video file matches this pattern"
        else:
            found, why = [], "file not found"
        if not found:
            problems.append(f"{raw}: {why}")
        for f in found:
            if f not in seen:
                seen.add(f)
                paths.append(f)
    if problems:
        raise DataError("; ".join(problems))
    return paths


def check_sampling(every: int | None, frames: int | None) -> tuple[int | None, int | None]:
    """(every, frames) with the default applied; UsageError for both, or a value < 1."""
    if every is not None and frames is not None:
        raise UsageError("--every and --frames are mutually exclusive: give one of them")
    for name, v in (("--every", every), ("--frames", frames)):
        if v is not None and int(v) < 1:
            raise UsageError(f"{name} {v}: expected an integer >= 1")
    return every, (DEFAULT_FRAMES if every is None and frames is None else frames)


def sample_plan(count: int, fps: float, every: int | None, frames: int | None) -> tuple[list[int] | None, int]:
    """(sorted frame indices, 0) for ``frames`` with a known count; (None, step) for every step-th frame."""
    if every is None and count > 0:
        k = min(int(frames), count)
        return [int((i + 0.5) * count / k) for i in range(k)], 0
    return None, int(every or max(1, round(fps)))


def iter_frames(cap, targets: list[int] | None, step: int):
    """Yield (index, BGR frame) for the planned frames, grabbing (not decoding to BGR) the rest; stops at the end."""
    idx = 0
    for target in itertools.count(0, step) if targets is None else targets:
        while idx < target:
            if not cap.grab():
                return
            idx += 1
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        idx += 1
        yield idx - 1, frame


def logit_mean(ps) -> float:
    """sigmoid(mean(logit(p))), p clipped to [EPS, 1 - EPS]."""
    p = np.clip(np.asarray(ps, np.float64), EPS, 1 - EPS)
    return float(1.0 / (1.0 + np.exp(-np.mean(np.log(p / (1 - p))))))


def scan_video(path, backend, detector, every=None, frames=None, align: str = DEFAULT_ALIGN,
               margin: float | None = None, threshold: float | None = None,
               min_track_frames: int = DEFAULT_MIN_TRACK_FRAMES, on_frame=None, cascade=None) -> VideoResult:
    """Scan one video file (see the module doc); ``on_frame(done, planned or None)`` after each sampled frame.
    ``cascade`` (``--escalate``): a track whose running verdict is uncertain after 3 sampled frames gets the
    second model's opinion on its sharpest crops (``edge_dfd.video.escalation``, no rate limit offline); its
    P(fake) then combines that opinion with its mean logit (the cascade's rule) and its row says stage 2."""
    import cv2

    from edge_dfd.video.pipeline import LivePipeline
    from edge_dfd.video.sources import SourceError, VideoSource

    every, frames = check_sampling(every, frames)
    try:
        src = VideoSource(os.path.abspath(path))
    except SourceError:
        why = "cannot be opened (not a video OpenCV can decode)" if Path(path).is_file() else "file not found"
        return VideoResult(str(path), "unreadable", error=why)
    res = VideoResult(str(path), "no frames")
    scores: dict[int, list[float]] = {}
    second: dict[int, float] = {}  # track -> the escalation model's margin
    count = int(max(0.0, src.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0))
    try:
        targets, step = sample_plan(count, src.fps, every, frames)
        esc = None
        if cascade is not None:
            from edge_dfd.video.escalation import Escalation

            esc = Escalation(cascade, rate_hz=0)
        pipe = LivePipeline(backend, detector, 1, threshold, margin=margin, align=align, classify_hz=None, worker=False,
                            escalation=esc)
        for idx, frame in iter_frames(src.cap, targets, step):
            for r in pipe.process(frame, idx / src.fps):
                if r.fresh and r.score == r.score:  # NaN: not classified (cannot happen with classify_hz=None)
                    scores.setdefault(r.track, []).append(r.score)
                if r.escalation and r.escalation.get("ok"):
                    second[r.track] = r.escalation["z_second"]
            res.frames += 1
            if on_frame is not None:
                on_frame(res.frames, len(targets) if targets is not None else -(-count // step) or None)
        if targets is not None and 0 < res.frames < len(targets):  # a truncated file, or a wrong frame count
            res.error = f"decoding ended at frame {int(src.cap.get(cv2.CAP_PROP_POS_FRAMES))} of {count}"
    except cv2.error as exc:  # a decoder error mid-file: keep what was read
        res.error = f"decoding stopped: {str(exc).strip().splitlines()[-1][:200]}"
    finally:
        res.decoded = int(src.cap.get(cv2.CAP_PROP_POS_FRAMES) or 0)
        src.release()
    if not res.frames:
        res.error = res.error or f"no frame could be decoded (frame count {count})"
        return res
    thr = pipe.threshold
    res.tracks = [TrackResult(tid, p, verdict(p, thr), len(s), None if cascade is None else 1)
                  for tid, s in sorted(scores.items()) for p in [logit_mean(s)]]
    for t in res.tracks:
        if t.track in second:
            from edge_dfd.runtime.cascade import combine, from_margin
            from edge_dfd.runtime.cascade import margin as margin_of

            z = combine(margin_of(t.p_fake, thr), second[t.track], cascade.rule)
            t.p_fake, t.stage = float(from_margin(z, thr)), 2
            t.verdict = verdict(t.p_fake, thr)
    if not res.tracks:
        res.status = "no face"
        return res
    pool = [t for t in res.tracks if t.frames >= min_track_frames] or res.tracks
    best = max(pool, key=lambda t: t.p_fake)
    res.status, res.p_fake, res.verdict = "ok", best.p_fake, best.verdict
    return res


def scan_videos(paths, backend, detector_spec="blazeface", every=None, frames=None, align: str = DEFAULT_ALIGN,
                margin: float | None = None, threshold: float | None = None, threads: int | None = None,
                progress: bool = True, min_track_frames: int = DEFAULT_MIN_TRACK_FRAMES, on_video=None,
                stream=None, cascade=None) -> list[VideoResult]:
    """Scan each path; ``detector_spec`` is a ``--faces`` value or a detector. A progress bar over videos (with
    the frames of the current one) goes to ``stream`` (stderr) unless ``progress`` is False; a video that cannot
    be read gets a 'skipped:' line there. ``on_video(VideoResult)`` after each video. ``cascade``: per-track
    escalation (``scan_video``)."""
    from edge_dfd.core import progress as prog
    from edge_dfd.images.faces import make_detector
    from edge_dfd.images.preprocess import set_opencv_threads

    every, frames = check_sampling(every, frames)
    set_opencv_threads(threads)
    detector = make_detector(detector_spec, threads=threads) if isinstance(detector_spec, str) else detector_spec
    paths = [str(p) for p in paths]
    stream = stream or sys.stderr
    bar = prog.bar(len(paths), "scan", unit="video", stream=stream) if progress else _NoBar()
    shown = [0.0]

    def on_frame(done, planned):
        if time.monotonic() - shown[0] >= 0.5:
            shown[0] = time.monotonic()
            bar.set_postfix(f"frame {done}/{planned or '?'}")

    results = []
    with bar:
        for path in paths:
            bar.set_description(f"scan {Path(path).name[:40]}")
            bar.set_postfix("")
            v = scan_video(path, backend, detector, every, frames, align, margin, threshold, min_track_frames, on_frame,
                           cascade)
            if not v.scanned:
                prog.echo(f"skipped: {v.path}: {v.status}: {v.error}", stream)
            results.append(v)
            if on_video is not None:
                on_video(v)
            bar.update(1)
    return results


class _NoBar:
    def __getattr__(self, name):
        return lambda *a, **k: None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def check_out(out) -> Path | None:
    """The --out path (its folder checked writable now, not after a long scan); UsageError for another suffix."""
    if not out:
        return None
    from edge_dfd.core.fsutil import ensure_writable_dir

    path = Path(out)
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise UsageError(f"--out {out}: expected a .csv or .jsonl file name")
    ensure_writable_dir(path.parent)
    return path


def write_results(path, results) -> Path:
    """All rows of ``results`` to a .csv or .jsonl file, atomically (a temporary file renamed into place)."""
    from edge_dfd.core.fsutil import atomic_write_text

    path = check_out(path)
    rows = [row for v in results for row in v.rows()]
    buf = io.StringIO()
    if path.suffix.lower() == ".csv":
        cols = COLUMNS + ([STAGE] if any(STAGE in r for r in rows) else [])
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        buf.writelines(json.dumps(r) + "\n" for r in rows)
    return atomic_write_text(path, buf.getvalue())

