"""The video commands' settings: ``LiveConfig`` (the one owner of every ``edge-dfd live`` option's default, help
and choices; ``edge_dfd.cli.live`` builds its click options from it), ``ScanOptions`` (``edge-dfd scan``'s), and
live's summary: ``LiveStats`` and ``StageTimes``."""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field

import numpy as np

from edge_dfd.core.formats import FORMATS
from edge_dfd.core.meta import DEFAULT_MARGIN
from edge_dfd.core.options import listing, setting
from edge_dfd.images.faces import DETECTORS
from edge_dfd.runtime.options import MODEL_HELP
from edge_dfd.video.escalation import DEFAULT_RATE_HZ
from edge_dfd.video.pipeline import ALIGN_MODES, DEFAULT_ALIGN, DEFAULT_CLASSIFY_HZ
from edge_dfd.video.scan import DEFAULT_FRAMES, DEFAULT_MIN_TRACK_FRAMES
from edge_dfd.video.web_guard import AUTH_MODES

STAGES = ("capture", "detect", "preprocess", "resize", "infer", "draw")  # resize / infer: the classifier's
FACES_HELP = f"Face detector: {listing(DETECTORS, ' | ')} ('none': the centre square)."


@dataclass
class LiveConfig:
    """What ``run_live`` does; every field that is a command-line option says so in its ``setting``."""

    model: str = setting("default", short="-m", help=MODEL_HELP.replace(".keras/.tflite/.onnx", ".tflite, .onnx, .keras"))
    format: str | None = setting(None, choices=FORMATS, help="Format of the bundled model to use with --model default "
                                                             "(e.g. tflite-int8 on a Pi).")  # None: zoo.DEFAULT_FORMAT
    source: str = setting("0", short="-s", help="Camera index, video file, stream URL (rtsp://, http://) or 'picamera2'.")
    faces: str = setting("blazeface", metavar="DETECTOR", help=FACES_HELP)
    detect_every: int = setting(1, range=(1, None),
                                help="Run the face detector every N frames; boxes are carried in between.")
    threshold: float | None = setting(None, range=(0, 1), kind="float",
                                      help="Verdict threshold on the smoothed P(fake) [default: the model's, from its "
                                           "metadata].")
    smooth: int = setting(8, range=(1, None), help="Average each face track's P(fake) over its last N frames.")
    margin: float | None = setting(None, range=(0, 2), kind="float",
                                   help="Square crop margin around the face box, as a fraction of the box side, each "
                                        "side (--align box, and faces without keypoints) [default: the model's, from "
                                        f"its metadata; {DEFAULT_MARGIN} for files without one].")
    align: str = setting(DEFAULT_ALIGN, choices=ALIGN_MODES,
                         help="Crop framing: 'aligned' maps the detector's eye/nose/mouth keypoints onto the 140k "
                              "training images' framing (rotation, scale, shift); 'box' is the face box plus --margin; "
                              "'auto' is the crop the model's metadata states (written at training time; older "
                              "files: box for the MobileNetV2 single-pass student, aligned for the rest, the bundled "
                              "default and ten-pass included).")  # edge_dfd.core.meta.crop_spec
    classify_hz: float | None = setting(DEFAULT_CLASSIFY_HZ, range=(0, None), min_open=True, metavar="HZ",
                                        help="Classify each face track at most HZ times a second (new tracks first, "
                                             "then round robin); cameras and streams do it in a worker thread, so a "
                                             "slow model never lowers the frame rate.")  # None: every frame
    realtime: bool = setting(False, flag=True,
                             help="Play a video file at its own frame rate, like a camera (default: as fast as it "
                                  "decodes, verdicts scheduled in the video's own time).")
    serve: str | None = setting(None, metavar="[HOST:]PORT",
                                help="Serve a web page with the annotated stream, the tracks and an event feed "
                                     "(read-only; host 127.0.0.1 unless given, e.g. 0.0.0.0:8080 for the LAN, which "
                                     "then needs the token printed at start: see --serve-auth).")
    serve_clients: int = setting(4, range=(1, 64), help="Most viewers of --serve at once.")
    serve_auth: str = setting("auto", choices=AUTH_MODES,
                              help="Token for --serve: 'auto' requires one when bound to a non-loopback address "
                                   "(every client, local ones too); 'token' always; 'none' never (on a LAN address: a "
                                   "loud warning, anyone on the network can watch). The token is random unless "
                                   "--serve-token-file or $EDGE_DFD_SERVE_TOKEN gives one.")
    serve_token_file: str | None = setting(None, kind="file", metavar="FILE",
                                           help="Read the --serve token from FILE (not readable by other users; e.g. "
                                                "systemd LoadCredential=, then --serve-token-file "
                                                "${CREDENTIALS_DIRECTORY}/NAME).")
    serve_cert: str | None = setting(None, kind="file", metavar="CERT.pem",
                                     help="Serve HTTPS with this PEM certificate (self-signed: see docs/live.md).")
    serve_key: str | None = setting(None, kind="file", metavar="KEY.pem",
                                    help="The private key of --serve-cert (unless the certificate file holds it).")
    show: bool = setting(False, flag=True, help="Show a window with boxes, scores, FPS and stage times (q quits).")
    save: str | None = setting(None, kind="file",
                               help="Write the annotated video: OUT.avi (MJPG; plays even after a kill) or OUT.mp4 "
                                    "(mp4v).")
    events: str | None = setting(None, metavar="OUT.jsonl|-",
                                 help="Append one JSON line per face per processed frame (time, frame, track, box, "
                                      "score, smoothed, verdict, utc) as it happens; '-' for stdout.")
    max_frames: int | None = setting(None, range=(1, None), kind="int", help="Stop after N processed frames.")
    threads: int | None = setting(None, range=(1, None), kind="int",
                                  help="Threads for the model runtime, the face detector and OpenCV.")
    reconnects: int = setting(5, range=(0, None),
                              help="Reconnect attempts (with backoff) when a camera or stream drops.")
    backoff: float = setting(0.5, cli=False, help="Seconds before the first reconnect attempt (doubling after).")
    save_segment: float | None = setting(None, range=(1, None), kind="float", metavar="SECONDS",
                                         help="Cut --save into segments OUT.<UTC start>.avi of this many seconds; a "
                                              "kill loses at most the open segment (.avi: its last few frames).")
    save_keep: int = setting(0, range=(0, None), help="Finished video segments to keep, newest first (0: all).")
    events_rotate: str | None = setting(None, metavar="SIZE|INTERVAL",
                                        help="Rotate --events at a size (100MB) or a UTC-aligned interval (30min, 1h, "
                                             "1d) to OUT.<UTC stamp>.jsonl.")
    events_keep: int = setting(10, range=(0, None), help="Rotated event files to keep, newest first (0: all).")
    status: str | None = setting(None, kind="file", metavar="FILE.json",
                                 help="Status file (last frame age, FPS, frames, faces, reconnects, RSS) rewritten "
                                      "every --heartbeat seconds, or every 10 s when --heartbeat is 0.")
    heartbeat: float = setting(0, range=(0, None), kind="float", metavar="SECONDS",
                               help="Print a status line on stderr every SECONDS (0: never; --status is then rewritten "
                                    "every 10 s).")
    escalate: dict | None = setting(None, cli=False,
                                    help="--escalate: {'model', 'fraction', 'calib_data', 'hz'} "
                                         "(edge_dfd.video.escalation.from_config; the CLI's options: EscalateSettings).")
    escalate_hz: float = setting(DEFAULT_RATE_HZ, range=(0, None), min_open=True, metavar="HZ",
                                 help="With --escalate: at most HZ escalations a second, all face tracks together.")


@dataclass
class LiveStats:
    frames: int = 0
    seconds: float = 0.0
    faces: int = 0  # face results over all frames
    classified: int = 0  # classifier runs (faces scored)
    faceless: int = 0  # frames without a face
    skipped: int = 0
    dropped: int = 0
    reconnects: int = 0
    interrupted: bool = False  # stopped by Ctrl-C or a signal
    signal: str | None = None  # "SIGINT" | "SIGTERM" | "SIGHUP" when a signal stopped the run
    error: str | None = None  # an output failed mid-run (disk full): stopped cleanly, exit 1
    outputs: str = ""  # where the events and video went
    stage_ms: dict = field(default_factory=dict)  # stage -> {"p50": ms, "p90": ms}
    escalation: dict | None = None  # --escalate: tracks escalated, failures, the second model's ms

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
                f"({self.skipped} unreadable frames skipped, {self.dropped} dropped, {self.reconnects} reconnects), {self.classified} classified"
                f"\nlive: ms per frame p50/p90: {stages}")
        if self.interrupted:
            text += f"\nlive: stopped by {self.signal or 'SIGINT'}; outputs finalised (exit {self.exit_code})"
        if self.outputs:
            text += f"\nlive: {self.outputs}"
        if self.escalation:
            text += f"\nlive: {self.escalation['line']}"
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


def _pct(v, q) -> float:
    return round(float(np.percentile(v, q)), 3)


@dataclass
class ScanOptions:
    """``edge-dfd scan VIDEO...`` (``edge_dfd.video.scan.scan_videos``): the owner of its options' defaults, help and
    choices; ``--escalate``'s: ``edge_dfd.runtime.options.EscalateSettings``."""

    model: str = setting("default", short="-m",
                         help="Model file (.tflite, .onnx, .keras), 'default' (the bundled single-pass detector) or "
                              "'ten-pass'.")
    format: str | None = setting(None, choices=FORMATS, help="Format of the bundled model to use with --model default "
                                                             "(e.g. tflite-int8 on a Pi).")
    faces: str = setting("blazeface", metavar="DETECTOR", help=FACES_HELP)
    every: int | None = setting(None, range=(1, None), kind="int", metavar="N", help="Sample every N-th frame.")
    frames: int | None = setting(None, range=(1, None), kind="int", metavar="K",
                                 help="Sample K frames evenly spaced over the video [default: "
                                      f"{DEFAULT_FRAMES}, unless --every is given].")
    recursive: bool = setting(False, flag=True, short="-r", help="Look for videos in sub-folders of a DIR too.")
    align: str = setting(DEFAULT_ALIGN, choices=ALIGN_MODES,
                         help="Crop framing: 'aligned' (eye/nose/mouth keypoints onto the training images' framing), "
                              "'box' (face box plus --margin) or 'auto' (the crop the model's metadata states, as in "
                              "live).")
    margin: float | None = setting(None, range=(0, 2), kind="float",
                                   help="Square crop margin around the face box, as a fraction of the box side "
                                        "(--align box, and faces without keypoints) [default: the model's, from its "
                                        f"metadata; {DEFAULT_MARGIN} for files without one].")
    threshold: float | None = setting(None, range=(0, 1), kind="float",
                                      help="Verdict threshold on P(fake) [default: the model's, from its metadata].")
    min_track_frames: int = setting(DEFAULT_MIN_TRACK_FRAMES, range=(1, None), metavar="N",
                                    help="A video's P(fake) is its most suspicious face track seen in at least N "
                                         "sampled frames (any track when none is).")
    out: str | None = setting(None, metavar="FILE.csv|FILE.jsonl",
                              help="Write a row per video and per face track (written atomically).")
    threads: int | None = setting(None, range=(1, None), kind="int",
                                  help="Threads for the model runtime (default: all cores), the face detector and "
                                       "OpenCV.")
