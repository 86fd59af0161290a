"""``edge-dfd live``: real-time detection from a webcam, video file, stream or the Raspberry Pi camera."""

from __future__ import annotations

import click

from edge_dfd.cli.escalate import escalate_options
from edge_dfd.cli.options import options_from
from edge_dfd.video.config import LiveConfig


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
@options_from(LiveConfig, exclude=("escalate_hz",), source={"callback": _check_source},
              serve={"callback": _check_serve}, events_rotate={"callback": _check_rotate})
@escalate_options
@options_from(LiveConfig, only=("escalate_hz",))
def cmd(escalate, escalate_fraction, calib_data, **settings):
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
    from edge_dfd.video import run_live

    serve, serve_auth = settings["serve"], settings["serve_auth"]
    serve_token_file, serve_cert, serve_key = settings["serve_token_file"], settings["serve_cert"], settings["serve_key"]
    given = [n for n, v in (("--serve-token-file", serve_token_file), ("--serve-cert", serve_cert),
                            ("--serve-key", serve_key)) if v] + (["--serve-auth"] if serve_auth != "auto" else [])
    if given and not serve:
        raise click.UsageError(f"{given[0]} needs --serve [HOST:]PORT")
    if serve_key and not serve_cert:
        raise click.UsageError("--serve-key needs --serve-cert")
    if serve_token_file and serve_auth == "none":
        raise click.UsageError("--serve-token-file and --serve-auth none contradict each other")

    escalate_fraction, calib_data = resolve(escalate, escalate_fraction, calib_data)  # --escalate (docs/cascade.md)
    cfg = LiveConfig(**settings, escalate=escalate and {"model": escalate, "fraction": escalate_fraction,
                                                        "calib_data": calib_data, "hz": settings["escalate_hz"]})
    return run_live(cfg).exit_code
