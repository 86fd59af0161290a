"""``edge-dfd scan``: P(fake) per face track and per video for video files, folders or globs."""

from __future__ import annotations

import click

from edge_dfd.cli.escalate import escalate_options
from edge_dfd.core.formats import FORMATS
from edge_dfd.core.meta import DEFAULT_MARGIN
from edge_dfd.video.pipeline import ALIGN_MODES, DEFAULT_ALIGN


def _check_out(ctx, param, value):
    if value and not value.lower().endswith((".csv", ".jsonl")):
        raise click.BadParameter(f"'{value}': expected a .csv or .jsonl file name")
    return value


def _line(v) -> str:
    """The stdout table line of one video: P(fake), verdict or status, sampled frames, faces, path."""
    p, what = ("-", v.status) if v.p_fake is None else (f"{v.p_fake:.4f}", v.verdict)
    return f"{p:>6}  {what:<10}  {v.frames:>4} frames  {len(v.tracks):>2} faces  {v.path}"


def _summary(results, seconds: float) -> dict:
    ok = [v for v in results if v.status == "ok"]
    frames, decoded = sum(v.frames for v in results), sum(v.decoded for v in results)
    return {"videos": len(results), "fake": sum(v.verdict == "fake" for v in ok),
            "real": sum(v.verdict == "real" for v in ok), "no_face": sum(v.status == "no face" for v in results),
            "skipped": sum(not v.scanned for v in results), "frames": frames, "decoded": decoded,
            "seconds": round(seconds, 3), "frames_per_s": round(frames / seconds, 2) if seconds > 0 else None,
            "decoded_per_s": round(decoded / seconds, 2) if seconds > 0 else None}


@click.command("scan")
@click.argument("inputs", nargs=-1, required=True, metavar="VIDEO|DIR|GLOB...")
@click.option("--model", "-m", default="default", show_default=True,
              help="Model file (.tflite, .onnx, .keras), 'default' (the bundled single-pass detector) or 'ten-pass'.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=None,
              help="Format of the bundled model to use with --model default (e.g. tflite-int8 on a Pi).")
@click.option("--faces", default="blazeface", show_default=True, metavar="DETECTOR",
              help="Face detector: blazeface | blazeface-full | haar | yunet:MODEL.onnx | none (centre square).")
@click.option("--every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Sample every N-th frame.")
@click.option("--frames", type=click.IntRange(min=1), default=None, metavar="K",
              help="Sample K frames evenly spaced over the video [default: 32, unless --every is given].")
@click.option("--recursive", "-r", is_flag=True, help="Look for videos in sub-folders of a DIR too.")
@click.option("--align", type=click.Choice(ALIGN_MODES), default=DEFAULT_ALIGN, show_default=True,
              help="Crop framing: 'aligned' (eye/nose/mouth keypoints onto the training images' framing), "
                   "'box' (face box plus --margin) or 'auto' (the crop the model's metadata states, as in live).")
@click.option("--margin", type=click.FloatRange(0, 2), default=None,
              help="Square crop margin around the face box, as a fraction of the box side (--align box, and "
                   "faces without keypoints) [default: the model's, from its metadata; "
                   f"{DEFAULT_MARGIN} for files without one].")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Verdict threshold on P(fake) [default: the model's, from its metadata].")
@click.option("--min-track-frames", type=click.IntRange(min=1), default=2, show_default=True, metavar="N",
              help="A video's P(fake) is its most suspicious face track seen in at least N sampled frames "
                   "(any track when none is).")
@click.option("--out", default=None, callback=_check_out, metavar="FILE.csv|FILE.jsonl",
              help="Write a row per video and per face track (written atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for the model runtime (default: all cores), the face detector and OpenCV.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr.")
@escalate_options
def cmd(inputs, model, fmt, faces, every, frames, recursive, align, margin, threshold, min_track_frames, out,
        as_json, threads, quiet, escalate, escalate_fraction, calib_data):
    """Scan video files for deepfake faces: sample frames, detect, align and track faces, classify each face
    in each sampled frame, then give P(fake) per face track (mean logit over its frames) and per video (its
    most suspicious track). Decodes as fast as it can; frames that are not sampled are skipped undecoded.

    Prints one line per video (P(fake), verdict, sampled frames, faces, path). Unreadable or empty videos are
    listed and skipped; a video without a face is a 'no face' row. Exit 1 when no video could be read.

    \b
    edge-dfd scan clip.mp4
    edge-dfd scan videos/ 'more/**/*.mp4' --frames 64 --out scan.csv
    edge-dfd scan videos/ --recursive --every 10 --format tflite-int8 --out scan.jsonl
    """
    import json
    import os
    import sys
    import time

    from edge_dfd.core import progress
    from edge_dfd.core.errors import DataError
    from edge_dfd.video.scan import check_out, collect_videos, scan_videos, write_results

    if every is not None and frames is not None:
        raise click.UsageError("--every and --frames are mutually exclusive: give one of them")
    progress.set_quiet(quiet)
    paths = collect_videos(inputs, recursive)  # input and --out problems before the model loads
    out_path = check_out(out)
    from edge_dfd.runtime import load_model

    backend = load_model(model, format=fmt, threads=threads or os.cpu_count())
    from edge_dfd.cli.escalate import wrap  # --escalate: per-track second opinions, track rows get a stage

    cascade = wrap(backend, escalate, escalate_fraction, calib_data, threads or os.cpu_count())
    cascade = None if cascade is backend else cascade

    def show(v):
        if not as_json:
            progress.echo(_line(v), sys.stdout)

    t0 = time.perf_counter()
    results = scan_videos(paths, backend, faces, every=every, frames=frames, align=align, margin=margin,
                          threshold=threshold, threads=threads, min_track_frames=min_track_frames, on_video=show,
                          cascade=cascade)
    s = _summary(results, time.perf_counter() - t0)
    if not any(v.scanned for v in results):
        v = results[-1]
        raise DataError(f"none of the {len(results)} video(s) could be read (e.g. {v.path}: {v.status}: {v.error})")
    if out_path:
        write_results(out_path, results)
    if as_json:
        videos = [dict(v.rows()[0], tracks=v.rows()[1:]) for v in results]
        print(json.dumps({"model": backend.describe(), "videos": videos, "summary": s}, indent=2))
    rate = f", {s['frames_per_s']:.1f} sampled frames/s" if s["frames_per_s"] else ""
    click.echo(f"{s['videos']} videos: {s['fake']} fake, {s['real']} real, {s['no_face']} without a face; "
               f"{s['skipped']} skipped (unreadable or empty); {s['frames']} frames sampled ({s['decoded']} decoded) "
               f"in {s['seconds']:.2f} s{rate}", err=True)
    if out_path:
        click.echo(f"wrote {out_path}", err=True)
