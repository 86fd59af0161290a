"""The annotated video of ``edge-dfd live --save``, optionally cut into segments of ``segment`` seconds. The segment
being written is ``NAME.partial.avi`` (visible, never hidden) and is renamed when it is closed (rotation, end,
Ctrl-C, SIGTERM, an error). ``.avi`` is written by OpenCV's own MJPEG/AVI writer, which puts every frame on disk
as it comes: a ``.partial.avi`` left by SIGKILL plays (without an index) and is renamed into place at the next
start. A leftover ``.partial.mp4`` cannot play (the MP4 index is written last): removed. Names, pruning and the
output-path checks: ``edge_dfd.video.outputs``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.video.outputs import (
    STAMP_RE,
    OutputError,
    check_output_path,
    prune,
    report_hidden_leftovers,
    stamped,
    unique,
    warn,
)

VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def _plays(path: Path) -> bool:
    """True when OpenCV can open ``path`` and read its first frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return bool(cap.isOpened() and cap.read()[0])
    finally:
        cap.release()


class VideoSegments:
    """The annotated video: one file ``path``, or with ``segment`` seconds, files ``stem.<UTC start>.suffix``
    of that length (by frame time: file position, or seconds since capture started for live sources).
    The open file is ``<name>.partial<suffix>`` and is renamed when closed. ``keep``: how many finished
    segments to keep (0: all)."""

    def __init__(self, path, fps: float, segment: float | None = None, keep: int = 0, option: str = "--save"):
        self.option, self.fps, self.segment, self.keep = option, float(fps), segment, keep
        self.path = check_output_path(path, option)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in VIDEO_CODECS:
            raise EdgeDFDError(f"{option} {path}: expected a .avi (MJPG) or .mp4 (mp4v) file name")
        self.writer = None
        self.current: Path | None = None  # final name of the open file
        self.partial: Path | None = None
        self.finished: list[Path] = []  # files this run closed (pruned ones included)
        self.frames_in: dict[Path, int] = {}
        self._t0 = 0.0
        report_hidden_leftovers(self.path)
        self.recovered = self._recover_leftovers()

    def _partial_of(self, final: Path) -> Path:
        return final.with_name(f"{final.stem}.partial{final.suffix}")

    def _recover_leftovers(self) -> list[Path]:
        """``.partial`` files left by a killed run: .avi ones play, so they are renamed into place (named after
        their last write time); .mp4 ones cannot, so they are removed. Both are reported."""
        rx = re.compile(rf"^{re.escape(self.path.stem)}(?:\.{STAMP_RE})?\.partial{re.escape(self.path.suffix)}$")
        out = []
        for p in sorted(q for q in self.path.parent.iterdir() if rx.match(q.name)):
            st = p.stat()
            if self.suffix == ".avi" and _plays(p):
                target = stamped(self.path, st.st_mtime) if self.segment is None else unique(
                    p.with_name(p.name.replace(".partial", "")))
                os.replace(p, target)
                warn(f"{self.option}: {p.name} was left by a run that did not stop cleanly; it plays up to its "
                     f"last written frame and is kept as {target.name} ({st.st_size / 2**20:.1f} MB)")
                out.append(target)
            else:
                p.unlink()
                why = ("an unfinished .mp4 cannot be played (use .avi for services)" if self.suffix == ".mp4"
                       else "killed before its first frame reached the disk")
                warn(f"{self.option}: removed {p.name}, left by a run that did not stop cleanly ({why})")
        return out

    def write(self, img, t: float) -> None:
        if self.writer is not None and self.segment and t - self._t0 >= self.segment:
            self._finish()
        if self.writer is None:
            self._start(img.shape, t)
        self.writer.write(img)
        self.frames_in[self.current] += 1

    def _start(self, shape, t: float) -> None:
        import cv2

        self.current = self.path if self.segment is None else stamped(self.path)
        self.partial = self._partial_of(self.current)
        h, w = shape[:2]
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.suffix])
        if self.suffix == ".avi":  # OpenCV's own AVI writer: frames reach the disk as they come
            self.writer = cv2.VideoWriter(str(self.partial), cv2.CAP_OPENCV_MJPEG, fourcc, self.fps, (w, h))
        else:
            self.writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, (w, h))
        if not self.writer.isOpened():
            self.writer = None
            raise OutputError(f"{self.option}: OpenCV cannot write {VIDEO_CODECS[self.suffix]} video to {self.partial}")
        self.frames_in[self.current] = 0
        self._t0 = t

    def _finish(self) -> None:
        self.writer.release()
        self.writer = None
        try:
            os.replace(self.partial, self.current)
        except OSError as exc:
            raise OutputError(f"{self.option} {self.partial}: cannot rename to {self.current.name} "
                              f"({exc.strerror or exc})") from None
        self.finished.append(self.current)
        if self.segment:
            prune(self.path, self.keep)

    def close(self) -> None:
        if self.writer is not None:
            self._finish()

    def describe(self) -> str:
        if not self.finished:
            return "no video written"
        if self.segment is None:
            return f"video {self.finished[0]} ({self.frames_in[self.finished[0]]} frames)"
        n = sum(self.frames_in.values())
        return f"{len(self.finished)} video segments {self.path.stem}.*{self.suffix} ({n} frames)"
