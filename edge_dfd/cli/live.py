"""``edge-dfd live``: real-time detection from a webcam, video file, stream or the Raspberry Pi camera."""

from __future__ import annotations

import click

from edge_dfd.formats import FORMATS


def _check_rotate(ctx, param, value):
    from edge_dfd.outputs import parse_rotate

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
@click.option("--source", "-s", default="0", show_default=True,
              help="Camera index, video file, stream URL (rtsp://, http://) or 'picamera2'.")
@click.option("--faces", default="blazeface", show_default=True, metavar="DETECTOR",
              help="Face detector: blazeface | blazeface-full | haar | yunet:MODEL.onnx | none (centre square).")
@click.option("--detect-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the face detector every N frames; boxes are carried in between.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Verdict threshold on the smoothed P(fake) [default: the model's, from its metadata].")
@click.option("--smooth", type=click.IntRange(min=1), default=8, show_default=True,
              help="Average each face track's P(fake) over its last N frames.")
@click.option("--margin", type=click.FloatRange(0, 2), default=0.33, show_default=True,
              help="Square crop margin around the face box, as a fraction of the box side, each side.")
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
                   "--heartbeat seconds (10 by default).")
@click.option("--heartbeat", type=click.FloatRange(min=0), default=0, show_default=True, metavar="SECONDS",
              help="Print a status line on stderr every SECONDS (0: never).")
def cmd(model, fmt, source, faces, detect_every, threshold, smooth, margin, show, save, events, max_frames, threads,
        reconnects, save_segment, save_keep, events_rotate, events_keep, status, heartbeat):
    """Real-time deepfake detection: faces are detected, tracked and classified in every frame.

    Prints frames, FPS and p50/p90 ms per stage (capture, detect, preprocess, infer, draw) on exit.
    With a .tflite or .onnx model TensorFlow is never imported.

    Ctrl-C, SIGTERM and SIGHUP stop it after the current frame: outputs are finalised, the summary is
    printed, the exit code is 128 + the signal (130, 143, 129). --events appends and can be followed
    with tail -f.

    \b
    edge-dfd live --source 0 --show
    edge-dfd live --source clip.mp4 --faces blazeface-full --save out.mp4 --events faces.jsonl
    edge-dfd live --source picamera2 --format tflite-int8 --threads 4 --detect-every 3
    edge-dfd live --source rtsp://cam/s --events ev.jsonl --events-rotate 1d --save v.avi --save-segment 300
    """
    from edge_dfd.live import LiveConfig, run_live

    cfg = LiveConfig(model=model, format=fmt, source=source, faces=faces, detect_every=detect_every, threshold=threshold,
                     smooth=smooth, margin=margin, show=show, save=save, events=events, max_frames=max_frames,
                     threads=threads, reconnects=reconnects, save_segment=save_segment, save_keep=save_keep,
                     events_rotate=events_rotate, events_keep=events_keep, status=status, heartbeat=heartbeat)
    return run_live(cfg).exit_code
