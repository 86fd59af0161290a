"""Live pipeline benchmarks: fidelity (live verdicts next to still verdicts on the same faces), FPS targets,
and the per-format speed table.

    python -m benchmarks.live                         # fidelity + FPS targets -> results/live_fidelity.{json,md}
    python -m benchmarks.live --fidelity-only         # only the fidelity section (the other one is kept)
    python -m benchmarks.live --fps-targets           # only the FPS targets section (the other one is kept)
    python -m benchmarks.live --faces 10 --fps-seconds 4 --out /tmp/x   # a quick check of the script
    python -m benchmarks.live --speed [--models a.tflite b.onnx --frames 300]   # per format -> results/live.*

Run from the repository root (``benchmarks`` is a package; nothing edits sys.path). Test images are read at
run time from ../shared/data (``EDGE_DFD_SHARED_DATA``) and never copied into the repository; the videos are
written to a temporary folder and removed.

**Fidelity** (``--fidelity-only``): a 640x480, 30 fps MJPG video (OpenCV's writer, whose fixed quality is about
JPEG 75: ~24 KB a frame, like a webcam's MJPG) of ``--faces`` different test images of the
140k sample (half fake; ``--ffhq N`` adds N ffhq-tpdne-128 test images, upscaled), each shown for
``--frames-per-face`` frames at a random size (``--sizes``, px) and place, in natural surroundings: the image
extended to the whole frame by reflection (``cv2.BORDER_REFLECT_101``, continuous: no hard edge), sharp next to
the image and heavily blurred farther out. Still accuracy: ``load_model(...).predict`` on the original image
files (what ``edge-dfd predict`` does), at the model's threshold. Live accuracy: ``edge_dfd.video.run_live`` on
the video with ``--events``; each face's events are those of its frames whose box centre lies in the shown
image (the nearest one to its centre when there are more), and its live verdict is the majority of their
``verdict`` fields (pending frames left out; a tie goes to the newest verdict). A face without events or with
only pending ones counts as wrong and is reported as missed. Diagnostics per run: faces whose track was carried
over from the face before (the tracker's IoU match across the cut: the smoothing then mixes both faces), the
accuracy of each face's own fresh scores (no smoothing, no carry-over), and per model the oracle crop (the exact
image square cut from the decoded video: what the video's resampling and compression alone cost). Runs: ``--align aligned`` and ``box`` x file mode
(the schedule runs inline in the video's own time) and ``--realtime`` (played at 30 fps, classifier worker on
the wall clock) x the bundled default model in the Pi's format (tflite-int8) and ``--model ten-pass`` x
``--scales`` (default 1 and 1.25: the faces also shown 1.25x larger). ``--label all150 --faces 150 --scales 1``
stores a larger run beside the main one.

**FPS targets** (``--fps-targets``): 640x480 scenes with 1, 2 and 3 faces (each in its own reflected
surroundings, blended smoothly; the view pans slowly), played with ``--realtime`` from MJPG files (the capture
thread decodes every frame at the file's rate and the loop takes the newest one, exactly as with a camera).
Two sources per case: 120 fps, faster than the pipeline, which measures the loop's capacity, and the target
rate itself (30 fps for ten-pass, 60 for the single-pass default), which checks that the loop keeps up
(frames processed / frames the source delivered). A looping HTTP MJPEG server in this process would share the
GIL and the cores with the pipeline and an unthrottled one makes the capture thread decode as fast as it can;
a paced file costs one decode per source frame and nothing else. Reported: displayed FPS (frames processed per
second by the loop), classifications per second, median / p90 verdict age (events), and the per-stage ms.
Targets (issue 14): >= 30 FPS with the ten-pass model, >= 60 FPS end to end with the single-pass int8 model.

Only numbers measured on a quiet machine mean anything: the JSON records the load average and whether the
training job (``edge-dfd train``) was running.

**Speed** (``--speed``, the older table: results/live.{json,md}): a video of one moving face on a generated
background; face detectors alone, then ``run_live`` for every model format (``--models`` files, else the
bundled default model in every bundled format, else an untrained CNN exported by ``edge_dfd.export.convert``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, machine_facts
from benchmarks.live_fidelity import bench_fidelity, load_state, model_facts, run_live_events, stage_fps
from benchmarks.live_scenes import fps_video, test_images
from benchmarks.live_speed import speed_main

FIDELITY_MODELS = ("default:tflite-int8", "ten-pass")  # spec[:format]
TARGETS = {"ten-pass": 30.0, "default:tflite-int8": 60.0}  # FPS targets of issue 14
TARGET_NOTE = {"ten-pass": "displayed FPS >= 30 with the ten-pass model",
               "default:tflite-int8": "end to end FPS >= 60 with the single-pass int8 model"}


# ----------------------------------------------------------------------------- FPS targets


def bench_fps_targets(args, work: Path) -> dict:
    import cv2

    images = test_images(6, args.seed + 100)
    imgs = [cv2.imread(im["path"]) for im in images]
    res = {"state_at_start": load_state(), "seconds_per_run": args.fps_seconds, "threads": args.threads,
           "source": "MJPG file played with --realtime (paced at the file's fps, newest-frame policy, classifier "
                     "worker) - the camera code path",
           "models": {spec: model_facts(spec) for spec in args.fps_models}, "runs": []}
    videos: dict[tuple[int, float], tuple[Path, int]] = {}
    for spec in args.fps_models:
        for k in args.fps_faces:
            for src_fps in (args.fps_fast, TARGETS.get(spec, 30.0)):
                if (k, src_fps) not in videos:
                    p = work / f"faces{k}_{src_fps:g}fps.avi"
                    videos[(k, src_fps)] = (p, fps_video(p, imgs, k, args.fps_seconds, src_fps))
                video, n = videos[(k, src_fps)]
                for output in (["events"] + (["events+save"] if args.fps_save and k == max(args.fps_faces) else [])):
                    kw = {"save": str(work / "out.avi")} if output == "events+save" else {}
                    stats, events, _ = run_live_events(spec, video, work / "ev.jsonl", args.threads, realtime=True,
                                                       **kw)
                    ages = [e["age"] for e in events if e.get("age") is not None]
                    per_frame = np.bincount([e["frame"] for e in events], minlength=1)
                    row = {"model": spec, "faces": k, "source_fps": src_fps, "source_frames": n, "output": output,
                           "frames": stats.frames, "dropped": stats.dropped, "fps": round(stats.fps, 1),
                           "kept_up": round(stats.frames / n, 3),
                           "faces_per_frame": round(stats.faces / max(1, stats.frames), 2),
                           "classified": stats.classified,
                           "classified_per_s": round(stats.classified / stats.seconds, 1) if stats.seconds else None,
                           "age_s_p50": round(float(np.median(ages)), 3) if ages else None,
                           "age_s_p90": round(float(np.percentile(ages, 90)), 3) if ages else None,
                           "pending_events": sum(e["verdict"] == "pending" for e in events),
                           "events": len(events), "max_faces_in_a_frame": int(per_frame.max()) if len(events) else 0,
                           "stages": stage_fps(stats.stage_ms), "load": load_state()}
                    res["runs"].append(row)
                    print(f"fps: {spec} {k} face(s) source {src_fps:g} fps {output}: {row['fps']} FPS "
                          f"({row['kept_up']:.0%} of source frames), {row['classified_per_s']} classified/s, "
                          f"age p50 {row['age_s_p50']} s", file=sys.stderr)
    res["verdicts"] = {}
    for spec in args.fps_models:
        target = TARGETS.get(spec, 30.0)
        rows = [r for r in res["runs"] if r["model"] == spec and r["output"] == "events"]
        cap = [r for r in rows if r["source_fps"] == args.fps_fast]
        at = [r for r in rows if r["source_fps"] == target]
        met = bool(cap) and all(r["fps"] >= target for r in cap) and all(r["kept_up"] >= 0.97 for r in at)
        res["verdicts"][spec] = {"target_fps": target, "what": TARGET_NOTE.get(spec, ""), "met": met,
                                 "capacity_fps": {r["faces"]: r["fps"] for r in cap},
                                 "kept_up_at_target": {r["faces"]: r["kept_up"] for r in at}}
    res["state_at_end"] = load_state()
    return res


# ----------------------------------------------------------------------------- fidelity report


def _stage_cell(r: dict, stage: str) -> str:
    s = r["stages"].get(stage)
    return "-" if s is None else f"{s['ms_p50']:.1f} ({s['fps']:.0f})"


def _not_carried(r: dict) -> str:
    nc = r.get("not_carried")
    if not nc or nc["live_acc"] is None:
        return "-"
    return f"{nc['live_acc']:.3f} / {nc['still_acc']:.3f} (n={nc['faces']})"


def fidelity_markdown(res: dict) -> str:
    lines = ["# Live fidelity and FPS targets", "",
             "`edge-dfd live` (``edge_dfd.video.run_live``) on 640x480 MJPG videos of unseen test faces in natural "
             "surroundings, next to `edge-dfd predict` on the same image files. Generated by "
             "`python -m benchmarks.live` (benchmarks/live.py; its docstring describes the method).", ""]
    fids = {k: v for k, v in sorted(res.items()) if k.startswith("fidelity") and v}
    fps = res.get("fps_targets")
    for name, sec in [*fids.items(), ("FPS targets", fps)]:
        if sec:
            m, st = sec["machine"], sec["state_at_start"]
            lines.append(f"- {name}: `{sec['command']}`, {sec['date']}; {m.get('cpu')}, {m.get('usable_cores')} "
                         f"usable cores; load average {st['loadavg']} at the start, "
                         f"{sec['state_at_end']['loadavg']} at the end; release job running: "
                         f"{st['release_job_running'] or sec['state_at_end']['release_job_running']}.")
    if res.get("notes"):
        lines += ["", "## Findings", "", *[f"- {n}" for n in res["notes"]]]
    models = {}
    for sec in [*fids.values(), fps or {}]:
        models.update(sec.get("models", {}))
    if models:
        lines += ["", "Models:", ""]
        for spec, mf in models.items():
            lines.append(f"- `{spec}`: {mf['file']} ({mf['bytes'] / 1e6:.1f} MB, sha256 {mf['sha256_12']}..., "
                         f"modified {mf['mtime_utc']} UTC)")
    for key, fid in fids.items():
        title = "" if key == "fidelity" else f" ({key.split('_', 1)[1]})"
        lines += ["", f"## Fidelity{title}: per-face live verdict vs still verdict", "",
                  f"{fid['faces']} different test images ({fid['fake']} fake; {fid['sets']}), each shown for "
                  f"{fid['frames_per_face']} frames (30 fps) at a random size {fid['sizes_px'][0]}-"
                  f"{fid['sizes_px'][1]} px (x scale) and place. Still: the image file through the model at its "
                  "threshold. Live: majority of the face's per-frame `verdict` events. **diff** = live - still in "
                  "points (target: within 3). missed = faces without events (no face found) + faces whose events "
                  "were all pending; carried = faces whose track continued from the face before (IoU >= 0.3 "
                  "across the cut: its smoothing then mixes in the previous face's scores); own-score acc = the "
                  "mean of the face's own fresh scores at the threshold (no smoothing, no carry-over); oracle-crop "
                  "acc = the exact image square cut from the decoded video frame through the model (no detector, "
                  "no crop framing: what the video's resampling and MJPG compression alone cost).", "",
                  "| model | scale | align | mode | live acc | still acc | **diff** | own-score acc | oracle-crop acc "
                  "| missed | carried | live / still acc, faces not carried "
                  "| fake->real / real->fake | FPS | classified/s | age p50 (s) | detect ms (FPS) | preprocess "
                  "| resize | infer |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in fid["runs"]:
            mode = "file (inline)" if r["mode"] == "file" else "--realtime (worker)"
            lines.append(
                f"| {r['model']} | {r['scale']:g}x | {r['align']} | {mode} | {r['live_acc']:.3f} | {r['still_acc']:.3f} "
                f"| **{r['diff_pts']:+.1f}** | {r['own_score_acc']:.3f} | {r.get('oracle_crop_acc', float('nan')):.3f} "
                f"| {r['missed_no_face']} + "
                f"{r['missed_all_pending']} | {r['carried_tracks']} | {_not_carried(r)} | {r['fake_called_real']} / "
                f"{r['real_called_fake']} | {r['fps']} | {r['classified_per_s']} | {r['age_s_p50']} | "
                f"{_stage_cell(r, 'detect')} | {_stage_cell(r, 'preprocess')} | {_stage_cell(r, 'resize')} | "
                f"{_stage_cell(r, 'infer')} |")
        within = [r for r in fid["runs"] if abs(r["diff_pts"]) <= 3.0 or r["diff_pts"] > 0]
        lines += ["", f"Within 3 points of still (or better): {len(within)} of {len(fid['runs'])} runs."]
        for spec in fid["models"]:
            mine = [r for r in fid["runs"] if r["model"] == spec]
            mean = {a: np.mean([r["live_acc"] for r in mine if r["align"] == a]) for a in sorted({r["align"] for r in mine})}
            if len(mean) > 1:
                best = max(mean, key=mean.get)
                lines.append(f"- `{spec}`: mean live accuracy by crop " + ", ".join(
                    f"{a} {v:.3f}" for a, v in mean.items()) + f" -> **{best}** frames this model's faces best "
                    f"(oracle crop {fid['models'][spec].get('oracle_crop_acc')}).")
        lines += ["",
                  "Stage columns: p50 ms per frame (inline: per frame that ran it; worker: per classifier call) and "
                  "in brackets 1000 / p50, the rate that stage alone allows. File mode runs as fast as it can "
                  "(FPS = processing rate, classification every 3rd frame per track = 10 Hz of video time); "
                  "--realtime plays the video at 30 fps."]
    if fps:
        lines += ["", "## FPS targets (640x480, 1-3 faces, --realtime MJPG source)", "",
                  f"{fps['seconds_per_run']} s per run; source: {fps['source']}. Capacity: a 120 fps source, "
                  "faster than the pipeline; at target: a source at the target rate, kept up = frames processed / "
                  "frames delivered. FPS = frames processed per second by the loop (what a window or the web view "
                  "shows). `events+save` also draws every frame and encodes it to MJPG (the cost of a displayed or "
                  "streamed output).", "",
                  "| model | faces | source fps | output | FPS | kept up | classified/s | verdict age p50 / p90 (s) "
                  "| detect ms | preprocess ms | infer ms (worker) | draw ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in fps["runs"]:
            cell = {s: f"{r['stages'][s]['ms_p50']:.1f}" if s in r["stages"] else "-"
                    for s in ("detect", "preprocess", "infer", "draw")}
            lines.append(f"| {r['model']} | {r['faces']} | {r['source_fps']:g} | {r['output']} | **{r['fps']}** | "
                         f"{r['kept_up']:.0%} | {r['classified_per_s']} | {r['age_s_p50']} / {r['age_s_p90']} | "
                         f"{cell['detect']} | {cell['preprocess']} | {cell['infer']} | {cell['draw']} |")
        lines.append("")
        for v in fps["verdicts"].values():
            lines.append(f"- Target {v['what']}: **{'met' if v['met'] else 'NOT met'}** (capacity "
                         f"{v['capacity_fps']} FPS by face count; kept up at {v['target_fps']:g} fps: "
                         f"{ {k: f'{x:.0%}' for k, x in v['kept_up_at_target'].items()} })")
    return "\n".join(lines) + "\n"


def write_fidelity(out: Path, sections: dict) -> dict:
    """Merge the measured sections into live_fidelity.json (a section not measured now is kept) and rewrite .md."""
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

    path = out / "live_fidelity.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    res.update(sections)
    atomic_write_json(path, res)
    atomic_write_text(out / "live_fidelity.md", fidelity_markdown(res))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fidelity-only", action="store_true", help="only the fidelity section")
    ap.add_argument("--fps-targets", action="store_true", help="only the FPS targets section")
    ap.add_argument("--speed", action="store_true", help="the per-format speed table (results/live.*) instead")
    ap.add_argument("--threads", type=int, default=None, help="runtime threads (default: live's default)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the existing .json")
    ap.add_argument("--note", action="append", help="with --markdown-only: replace the findings (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default=None,
                    help="store the fidelity section as fidelity_LABEL (beside the main one), e.g. a larger run")
    g = ap.add_argument_group("fidelity")
    g.add_argument("--faces", type=int, default=40, help="140k sample test images (half fake)")
    g.add_argument("--ffhq", type=int, default=0, help="ffhq-tpdne-128 test images added (half fake, upscaled)")
    g.add_argument("--frames-per-face", type=int, default=12)
    g.add_argument("--sizes", type=int, nargs=2, default=(200, 320), metavar=("MIN", "MAX"))
    g.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.25], help="face size factors")
    g.add_argument("--aligns", nargs="+", default=["aligned", "box"], choices=["aligned", "box"])
    g.add_argument("--modes", nargs="+", default=["file", "realtime"], choices=["file", "realtime"])
    g.add_argument("--fidelity-models", nargs="+", default=list(FIDELITY_MODELS), metavar="SPEC",
                   help="model[:format], e.g. default:tflite-int8 ten-pass model.onnx")
    g = ap.add_argument_group("FPS targets")
    g.add_argument("--fps-models", nargs="+", default=list(FIDELITY_MODELS), metavar="SPEC")
    g.add_argument("--fps-faces", type=int, nargs="+", default=[1, 2, 3])
    g.add_argument("--fps-seconds", type=float, default=10.0, help="seconds of video per run")
    g.add_argument("--fps-fast", type=float, default=120.0, help="source fps faster than the pipeline")
    g.add_argument("--fps-save", action="store_true",
                   help="also run the most faces with --save (draw + MJPG encode of every frame)")
    g = ap.add_argument_group("speed (--speed)")
    g.add_argument("--models", nargs="*", help="model files (default: the bundled model in every format)")
    g.add_argument("--frames", type=int, default=300)
    g.add_argument("--face-size", type=int, default=200)
    args = ap.parse_args(argv)
    command = "python -m benchmarks.live " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.speed:
        return speed_main(args, command)
    if args.markdown_only:
        write_fidelity(args.out, {"notes": args.note} if args.note else {})
        return 0

    sections = {}
    do_fid, do_fps = not args.fps_targets or args.fidelity_only, not args.fidelity_only or args.fps_targets
    with tempfile.TemporaryDirectory(prefix="edge-dfd-live-") as tmp:
        fid_key = "fidelity" if not args.label else f"fidelity_{args.label}"
        for name, on, fn in ((fid_key, do_fid, bench_fidelity), ("fps_targets", do_fps, bench_fps_targets)):
            if on:
                date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                machine = {**machine_facts(args.threads), "loadavg_at_start": load_state()["loadavg"]}
                sec = fn(args, Path(tmp))
                machine["loadavg_at_end"] = load_state()["loadavg"]
                sections[name] = {"command": command, "date": date, "machine": machine, **sec}
    res = write_fidelity(args.out, sections)
    print(fidelity_markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
