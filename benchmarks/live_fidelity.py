"""Fidelity of ``python -m benchmarks.live`` (its docstring describes the method): live verdicts from
``edge_dfd.video.run_live`` on a video of unseen test faces next to the still verdicts of ``predict`` on the same
image files, with the oracle crop and per-face diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO
from benchmarks.live_scenes import FPS, fidelity_video, test_images


def load_state() -> dict:
    """Load average and whether a release job (training) shares the cores: numbers are only trusted without."""
    try:
        rel = subprocess.run(["pgrep", "-f", "edge[-_]dfd train"], capture_output=True, text=True).stdout.split()
    except OSError:
        rel = []
    return {"loadavg": [round(v, 2) for v in os.getloadavg()], "release_job_running": bool(rel),
            "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}


def split_spec(spec: str) -> tuple[str, str | None]:
    """'default:tflite-int8' -> ('default', 'tflite-int8'); 'ten-pass' -> ('ten-pass', None)."""
    name, _, fmt = spec.partition(":")
    return name, fmt or None


def model_facts(spec: str) -> dict:
    from edge_dfd.core.fsutil import sha256_file
    from edge_dfd.runtime import resolve_model

    name, fmt = split_spec(spec)
    p = resolve_model(name, fmt)
    return {"spec": spec, "file": str(p.relative_to(REPO) if p.is_relative_to(REPO) else p),
            "bytes": p.stat().st_size, "sha256_12": sha256_file(p)[:12],
            "mtime_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.stat().st_mtime))}




def still_scores(spec: str, images: list[dict], threads: int | None) -> tuple[np.ndarray, float]:
    """P(fake) of each original image file through the model (what ``edge-dfd predict`` does) and the threshold."""
    from edge_dfd.images.preprocess import load_image
    from edge_dfd.runtime import load_model

    name, fmt = split_spec(spec)
    backend = load_model(name, format=fmt, threads=threads)
    p = []
    for start in range(0, len(images), 16):
        batch = np.stack([load_image(im["path"], backend.input_size) for im in images[start:start + 16]])
        p.extend(np.asarray(backend.predict(batch), np.float32).ravel().tolist())
    return np.asarray(p, np.float32), float(backend.meta.threshold)


def oracle_scores(spec: str, video: Path, placements: list[dict], threads: int | None) -> np.ndarray:
    """P(fake) of the exact image square cut from each face's first decoded video frame: what the video
    (resize to the shown size, MJPG) alone costs, without a detector or a crop framing."""
    import cv2

    from edge_dfd.images.preprocess import prepare_batch
    from edge_dfd.runtime import load_model

    name, fmt = split_spec(spec)
    backend = load_model(name, format=fmt, threads=threads)
    want = {pl["f0"]: pl for pl in placements}
    cap, crops, f = cv2.VideoCapture(str(video)), [], 0
    while len(crops) < len(placements):
        ok, frame = cap.read()
        if not ok:
            break
        if f in want:
            pl = want[f]
            sq = frame[pl["y"]:pl["y"] + pl["side"], pl["x"]:pl["x"] + pl["side"]]
            crops.append(cv2.cvtColor(sq, cv2.COLOR_BGR2RGB))
        f += 1
    cap.release()
    p = [np.asarray(backend.predict(prepare_batch(crops[i:i + 16], backend.input_size)), np.float32).ravel()
         for i in range(0, len(crops), 16)]
    return np.concatenate(p)


def read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_live_events(spec: str, video: Path, events: Path, threads: int | None, **kw):
    """``run_live`` on ``video`` with --events; returns (stats, events, seconds including the model load)."""
    from edge_dfd.video import LiveConfig, run_live

    name, fmt = split_spec(spec)
    events.unlink(missing_ok=True)
    t0 = time.perf_counter()
    stats = run_live(LiveConfig(model=name, format=fmt, source=str(video), events=str(events), threads=threads, **kw))
    return stats, read_events(events), time.perf_counter() - t0


def face_verdicts(events: list[dict], placements: list[dict], fps: float = FPS) -> list[dict]:
    """Per shown face: its events (box centre inside the shown image, the nearest to its centre), the majority
    verdict (pending left out, a tie to the newest), the tracks, and whether its track came from the face
    before it (a track carried across the cut keeps the previous face's scores in its smoothing)."""
    by_frame: dict[int, list[dict]] = {}
    for e in events:
        by_frame.setdefault(e["frame"], []).append(e)
    out, prev_tracks = [], set()
    for pl in placements:
        x, y, s = pl["x"], pl["y"], pl["side"]
        cx, cy = x + s / 2, y + s / 2
        mine, extra = [], 0
        for f in range(pl["f0"], pl["f1"]):
            cands = []
            for e in by_frame.get(f, []):
                bx, by = (e["box"][0] + e["box"][2]) / 2, (e["box"][1] + e["box"][3]) / 2
                if x <= bx <= x + s and y <= by <= y + s:
                    cands.append(((bx - cx) ** 2 + (by - cy) ** 2, e))
            extra += len(by_frame.get(f, [])) - min(1, len(cands))
            if cands:
                mine.append(min(cands, key=lambda c: c[0])[1])
        verdicts = [e["verdict"] for e in mine if e["verdict"] in ("fake", "real")]
        nf, nr = verdicts.count("fake"), verdicts.count("real")
        verdict = None if not verdicts else "fake" if nf > nr else "real" if nr > nf else verdicts[-1]
        # the face's own classifications: fresh scores whose crop was taken from this face's frames
        own = [e["score"] for e in mine if e.get("fresh") and e.get("score") is not None
               and e["frame"] - (e.get("age") or 0.0) * fps >= pl["f0"] - 0.5]
        tracks = sorted({e["track"] for e in mine})
        out.append({"frames_with_event": len(mine), "verdict_frames": len(verdicts), "fake_frames": nf,
                    "real_frames": nr, "verdict": verdict, "tracks": tracks,
                    "carried": bool(set(tracks) & prev_tracks), "extra_boxes": extra,
                    "own_scores": [round(v, 4) for v in own],
                    "ages": [e["age"] for e in mine if e.get("age") is not None]})
        prev_tracks = set(tracks)
    return out


def per_face_line(f: dict) -> str:
    """One face of a run in one line: verdict, frames with a verdict / with an event, tracks, carried, own score."""
    own = f"{np.mean(f['own_scores']):.3f}" if f["own_scores"] else "-"
    return (f"{f['verdict'] or 'missed'} {f['verdict_frames']}/{f['frames_with_event']} tracks "
            f"{','.join(map(str, f['tracks'])) or '-'}{' carried' if f['carried'] else ''} own {own}")


def stage_fps(stage_ms: dict) -> dict:
    """stage -> {"ms_p50", "ms_p90", "fps": 1000 / p50} (the rate that stage alone would allow)."""
    return {k: {"ms_p50": v["p50"], "ms_p90": v["p90"], "fps": round(1000 / v["p50"], 1) if v["p50"] > 0 else None}
            for k, v in stage_ms.items()}


def bench_fidelity(args, work: Path) -> dict:
    images = test_images(args.faces, args.seed, args.ffhq)
    truth = np.array([im["fake"] for im in images])
    print(f"fidelity: {len(images)} faces ({int(truth.sum())} fake), {args.frames_per_face} frames each",
          file=sys.stderr)
    res = {"state_at_start": load_state(), "faces": len(images), "fake": int(truth.sum()),
           "sets": {s: sum(im["set"] == s for im in images) for s in {im["set"] for im in images}},
           "frames_per_face": args.frames_per_face, "sizes_px": list(args.sizes), "scales": args.scales,
           "threads": args.threads, "classify_hz": "live default (10 per track)",
           "images": [{k: im[k] for k in ("set", "id", "fake")} for im in images],
           "models": {}, "runs": []}
    videos = {}
    for scale in args.scales:
        video = work / f"fidelity_x{scale:g}.avi"
        videos[scale] = (video, fidelity_video(video, images, args.frames_per_face, tuple(args.sizes), scale,
                                               args.seed + 7))
    for spec in args.fidelity_models:
        p_still, thr = still_scores(spec, images, args.threads)
        still_ok = (p_still >= thr) == truth
        res["models"][spec] = {**model_facts(spec), "threshold": thr, "still_acc": round(float(still_ok.mean()), 4),
                               "still_p_fake": [round(float(v), 4) for v in p_still]}
        print(f"fidelity: {spec} still accuracy {still_ok.mean():.3f} (threshold {thr:.3f})", file=sys.stderr)
        for scale in args.scales:
            video, placements = videos[scale]
            p_or = oracle_scores(spec, video, placements, args.threads)
            or_ok = (p_or >= thr) == truth
            res["models"][spec].setdefault("oracle_crop_acc", {})[f"{scale:g}"] = round(float(or_ok.mean()), 4)
            print(f"fidelity: {spec} x{scale:g} oracle crop (true image square from the video) accuracy "
                  f"{or_ok.mean():.3f}", file=sys.stderr)
            for align in args.aligns:
                for mode in args.modes:
                    stats, events, wall = run_live_events(spec, video, work / "ev.jsonl", args.threads, align=align,
                                                          realtime=mode == "realtime")
                    faces = face_verdicts(events, placements)
                    live_ok = np.array([f["verdict"] == ("fake" if t else "real") for f, t in zip(faces, truth)])
                    missed_none = sum(f["frames_with_event"] == 0 for f in faces)
                    missed_pending = sum(f["frames_with_event"] > 0 and f["verdict"] is None for f in faces)
                    own = np.array([np.mean(f["own_scores"]) if f["own_scores"] else np.nan for f in faces])
                    own_ok = np.where(np.isnan(own), False, (own >= thr) == truth)
                    ages = [a for f in faces for a in f["ages"]]
                    fresh_track = np.array([not f["carried"] for f in faces])
                    row = {"model": spec, "scale": scale, "align": align, "mode": mode,
                           "live_acc": round(float(live_ok.mean()), 4), "still_acc": round(float(still_ok.mean()), 4),
                           "diff_pts": round(100 * float(live_ok.mean() - still_ok.mean()), 1),
                           "own_score_acc": round(float(own_ok.mean()), 4),
                           "oracle_crop_acc": round(float(or_ok.mean()), 4),
                           "agree_with_still": round(float((live_ok == still_ok).mean()), 4),
                           "missed_no_face": int(missed_none), "missed_all_pending": int(missed_pending),
                           "carried_tracks": int(sum(f["carried"] for f in faces)),
                           "not_carried": {"faces": int(fresh_track.sum()),
                                           "live_acc": round(float(live_ok[fresh_track].mean()), 4)
                                           if fresh_track.any() else None,
                                           "still_acc": round(float(still_ok[fresh_track].mean()), 4)
                                           if fresh_track.any() else None},
                           "extra_boxes": int(sum(f["extra_boxes"] for f in faces)),
                           "fake_called_real": int(sum(t and f["verdict"] == "real" for f, t in zip(faces, truth))),
                           "real_called_fake": int(sum(not t and f["verdict"] == "fake" for f, t in zip(faces, truth))),
                           "frames": stats.frames, "dropped": stats.dropped, "fps": round(stats.fps, 1),
                           "classified": stats.classified, "seconds": round(stats.seconds, 2),
                           "classified_per_s": round(stats.classified / stats.seconds, 1) if stats.seconds else None,
                           "age_s_p50": round(float(np.median(ages)), 3) if ages else None,
                           "stages": stage_fps(stats.stage_ms), "wall_s": round(wall, 1), "load": load_state(),
                           "per_face": [per_face_line(f) for f in faces]}
                    res["runs"].append(row)
                    print(f"fidelity: {spec} x{scale:g} {align:7s} {mode:8s} live {row['live_acc']:.3f} vs still "
                          f"{row['still_acc']:.3f} ({row['diff_pts']:+.1f} pts), missed {missed_none}+"
                          f"{missed_pending}, carried {row['carried_tracks']}, {row['fps']} FPS", file=sys.stderr)
    res["state_at_end"] = load_state()
    return res
