"""``edge-dfd live``: real-time detection from a webcam, video file, stream or the Raspberry Pi camera."""

from __future__ import annotations

import click

from edge_dfd.cli.escalate import escalate_options
from edge_dfd.core.formats import FORMATS
from edge_dfd.video.pipeline import ALIGN_MODES, DEFAULT_ALIGN, DEFAULT_CLASSIFY_HZ, DEFAULT_MARGIN


def _check_serve(ctx, param, value):
    if value is None:
        return None
    from edge_dfd.video.web_guard import parse_serve

    try:
        parse_serve(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _check_source(ctx, param, value):
    """A URL must look like one (scheme://host...): a typo is a usage error, not a 10-s connection timeout."""
    import re
    from urllib.parse import urlsplit

    v = (value or "").strip()
    if "://" in v:
        u = urlsplit(v)
        if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", u.scheme or "") or not u.netloc:
            raise click.BadParameter(f"'{value}' is not a valid stream URL (expected scheme://host[:port]/path, "
                                     "e.g. rtsp://192.168.1.20:554/stream)")
    elif re.match(r"^(rtsp|rtmp|https?|udp|tcp)s?:/?[^/]", v, re.I):
        raise click.BadParameter(f"'{value}' is not a valid stream URL (missing '//' after the scheme)")
    return value


def _check_rotate(ctx, param, value):
    from edge_dfd.video.outputs import parse_rotate

    try:
        parse_rotate(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("live")
@click.option("--model", "-m", default="default", show_default=True,
              help="Model file (.tflite, .onnx, .keras), 'default' (the bundled single-pass detector) or 'ten-pass' (the previous ten-pass one).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
              help="Format of the bundled model to use with --model default (e.g. tflite-int8 on a Pi).")
@click.option("--source", "-s", default="0", show_default=True, callback=_check_source,
              help="Camera index, video file, stream URL (rtsp://, http://) or 'picamera2'.")
@click.option("--faces", default="blazeface", show_default=True, metavar="DETECTOR",
              help="Face detector: blazeface | blazeface-full | haar | yunet:MODEL.onnx | none (centre square).")
@click.option("--detect-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the face detector every N frames; boxes are carried in between.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Verdict threshold on the smoothed P(fake) [default: the model's, from its metadata].")
@click.option("--smooth", type=click.IntRange(min=1), default=8, show_default=True,
              help="Average each face track's P(fake) over its last N frames.")
@click.option("--margin", type=click.FloatRange(0, 2), default=DEFAULT_MARGIN, show_default=True,
              help="Square crop margin around the face box, as a fraction of the box side, each side "
                   "(--align box, and faces without keypoints).")
@click.option("--align", type=click.Choice(ALIGN_MODES), default=DEFAULT_ALIGN, show_default=True,
              help="Crop framing: 'aligned' maps the detector's eye/nose/mouth keypoints onto the 140k training "
                   "images' framing (rotation, scale, shift); 'box' is the face box plus --margin; 'auto' picks "
                   "the crop measured best in video for the model: aligned (the bundled default, ten-pass and "
                   "models trained on 140k images), box for the MobileNetV2 single-pass student.")
@click.option("--classify-hz", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_CLASSIFY_HZ,
              show_default=True, metavar="HZ",
              help="Classify each face track at most HZ times a second (new tracks first, then round robin); "
                   "cameras and streams do it in a worker thread, so a slow model never lowers the frame rate.")
@click.option("--realtime", is_flag=True,
              help="Play a video file at its own frame rate, like a camera (default: as fast as it decodes, "
                   "verdicts scheduled in the video's own time).")
@click.option("--serve", default=None, metavar="[HOST:]PORT", callback=_check_serve,
              help="Serve a web page with the annotated stream, the tracks and an event feed "
                   "(read-only; host 127.0.0.1 unless given, e.g. 0.0.0.0:8080 for the LAN, which then needs "
                   "the token printed at start: see --serve-auth).")
@click.option("--serve-clients", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="Most viewers of --serve at once.")
@click.option("--serve-auth", type=click.Choice(["auto", "token", "none"]), default="auto", show_default=True,
              help="Token for --serve: 'auto' requires one when bound to a non-loopback address (every client, "
                   "local ones too); 'token' always; 'none' never (on a LAN address: a loud warning, anyone "
                   "on the network can watch). The token is random unless --serve-token-file or "
                   "$EDGE_DFD_SERVE_TOKEN gives one.")
@click.option("--serve-token-file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Read the --serve token from FILE (not readable by other users; e.g. systemd LoadCredential=, "
                   "then --serve-token-file ${CREDENTIALS_DIRECTORY}/NAME).")
@click.option("--serve-cert", type=click.Path(dir_okay=False), default=None, metavar="CERT.pem",
              help="Serve HTTPS with this PEM certificate (self-signed: see docs/live.md).")
@click.option("--serve-key", type=click.Path(dir_okay=False), default=None, metavar="KEY.pem",
              help="The private key of --serve-cert (unless the certificate file holds it).")
@click.option("--show", is_flag=True, help="Show a window with boxes, scores, FPS and stage times (q quits).")
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the annotated video: OUT.avi (MJPG; plays even after a kill) or OUT.mp4 (mp4v).")
@click.option("--events", default=None, metavar="OUT.jsonl|-",
              help="Append one JSON line per face per processed frame (time, frame, track, box, score, smoothed, "
                   "verdict, utc) as it happens; '-' for stdout.")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N processed frames.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for the model runtime, the face detector and OpenCV.")
@click.option("--reconnects", type=click.IntRange(min=0), default=5, show_default=True,
              help="Reconnect attempts (with backoff) when a camera or stream drops.")
@click.option("--save-segment", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Cut --save into segments OUT.<UTC start>.avi of this many seconds; a kill loses at most "
                   "the open segment (.avi: its last few frames).")
@click.option("--save-keep", type=click.IntRange(min=0), default=0, show_default=True,
              help="Finished video segments to keep, newest first (0: all).")
@click.option("--events-rotate", default=None, metavar="SIZE|INTERVAL", callback=_check_rotate,
              help="Rotate --events at a size (100MB) or a UTC-aligned interval (30min, 1h, 1d) to "
                   "OUT.<UTC stamp>.jsonl.")
@click.option("--events-keep", type=click.IntRange(min=0), default=10, show_default=True,
              help="Rotated event files to keep, newest first (0: all).")
@click.option("--status", type=click.Path(dir_okay=False), default=None, metavar="FILE.json",
              help="Status file (last frame age, FPS, frames, faces, reconnects, RSS) rewritten every "
                   "--heartbeat seconds, or every 10 s when --heartbeat is 0.")
@click.option("--heartbeat", type=click.FloatRange(min=0), default=0, show_default=True, metavar="SECONDS",
              help="Print a status line on stderr every SECONDS (0: never; --status is then rewritten every 10 s).")
@escalate_options
@click.option("--escalate-hz", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, metavar="HZ",
              help="With --escalate: at most HZ escalations a second, all face tracks together.")
def cmd(model, fmt, source, faces, detect_every, threshold, smooth, margin, align, classify_hz, realtime, serve,
        serve_clients, serve_auth, serve_token_file, serve_cert, serve_key, show, save, events, max_frames,
        threads, reconnects, save_segment, save_keep, events_rotate, events_keep, status, heartbeat, escalate,
        escalate_fraction, calib_data, escalate_hz):
    """Real-time deepfake detection: faces are detected and tracked in every frame, and classified on a
    schedule (--classify-hz per track) on crops framed like the training images.

    Prints frames, FPS and p50/p90 ms per stage (capture, detect, preprocess, infer, draw) on exit.
    With a .tflite or .onnx model TensorFlow is never imported.

    Ctrl-C, SIGTERM and SIGHUP stop it after the current frame: outputs are finalised, the summary is
    printed, the exit code is 128 + the signal (130, 143, 129). --events appends and can be followed
    with tail -f.

    \b
    edge-dfd live --source 0 --show
    edge-dfd live --source picamera2 --serve 0.0.0.0:8080      # watch a headless Pi: open the printed URL
    edge-dfd live --source clip.mp4 --faces blazeface-full --save out.mp4 --events faces.jsonl
    edge-dfd live --source picamera2 --format tflite-int8 --threads 4 --detect-every 3
    edge-dfd live --source rtsp://cam/s --events ev.jsonl --events-rotate 1d --save v.avi --save-segment 300
    """
    from edge_dfd.cli.escalate import resolve
    from edge_dfd.video import LiveConfig, run_live

    given = [n for n, v in (("--serve-token-file", serve_token_file), ("--serve-cert", serve_cert),
                            ("--serve-key", serve_key)) if v] + (["--serve-auth"] if serve_auth != "auto" else [])
    if given and not serve:
        raise click.UsageError(f"{given[0]} needs --serve [HOST:]PORT")
    if serve_key and not serve_cert:
        raise click.UsageError("--serve-key needs --serve-cert")
    if serve_token_file and serve_auth == "none":
        raise click.UsageError("--serve-token-file and --serve-auth none contradict each other")

    escalate_fraction, calib_data = resolve(escalate, escalate_fraction, calib_data)  # --escalate (docs/cascade.md)

    cfg = LiveConfig(model=model, format=fmt, source=source, faces=faces, detect_every=detect_every, threshold=threshold,
                     smooth=smooth, margin=margin, show=show, save=save, events=events, max_frames=max_frames,
                     threads=threads, reconnects=reconnects, save_segment=save_segment, save_keep=save_keep,
                     events_rotate=events_rotate, events_keep=events_keep, status=status, heartbeat=heartbeat,
                     align=align, classify_hz=classify_hz, realtime=realtime, serve=serve, serve_clients=serve_clients,
                     serve_auth=serve_auth, serve_token_file=serve_token_file, serve_cert=serve_cert,
                     serve_key=serve_key,
                     escalate=escalate and {"model": escalate, "fraction": escalate_fraction, "calib_data": calib_data,
                                            "hz": escalate_hz})
    return run_live(cfg).exit_code
