"""The per-format speed table of ``python -m benchmarks.live --speed`` (results/live.{json,md}): a video of one
moving face on a generated background; the face detectors alone, then ``run_live`` for every model format
(``--models`` files, else the bundled default model in every bundled format, else an untrained CNN exported by
``edge_dfd.export.convert``)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import SHARED, machine_facts
from benchmarks.live_scenes import FPS, H, W
from edge_dfd.core.util import read_csv_rows

DETECTORS = ("blazeface", "blazeface-full", "haar", "none")


# ----------------------------------------------------------------------------- speed: test video


def face_images(n: int, size: int) -> tuple[list[np.ndarray], str]:
    """n BGR face images: real 140k sample test images if the shared data is here, else generated ones."""
    import cv2

    root = SHARED / "faces140k-sample"
    if (root / "test.csv").is_file():
        rows = read_csv_rows(root / "test.csv")[:: max(1, 150 // n)][:n]
        imgs = [cv2.imread(str(root / "real_vs_fake" / "real-vs-fake" / r["path"])) for r in rows]
        return [cv2.resize(i, (size, size), interpolation=cv2.INTER_AREA) for i in imgs if i is not None], str(root)
    from benchmarks.synth import synth_face

    return [cv2.cvtColor(synth_face(i % 2 == 1, size, i), cv2.COLOR_RGB2BGR) for i in range(n)], "generated (benchmarks/synth.py)"


def background(seed: int) -> np.ndarray:
    """A generated background: a colour gradient with soft random rectangles and sensor noise."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    img = c0 + (c1 - c0) * (xx / W)[..., None] * 0.7 + (c1 - c0) * (yy / H)[..., None] * 0.3
    for _ in range(6):
        x, y = int(rng.integers(0, W - 80)), int(rng.integers(0, H - 80))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(40, 200)), y + int(rng.integers(40, 160))),
                      rng.uniform(30, 220, 3).tolist(), -1)
    img = cv2.GaussianBlur(img, (0, 0), 3) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_video(path: Path, frames: int, face_size: int = 200) -> tuple[list[tuple], str]:
    """Write the test video; returns the pasted face box of each frame and where the faces came from."""
    import cv2

    faces, origin = face_images(max(1, frames // 60 + 1), face_size)
    bgs = [background(s) for s in range(3)]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    boxes = []
    for i in range(frames):
        t = i / FPS
        x = int((W - face_size) * (0.5 + 0.45 * np.sin(2 * np.pi * t / 5.0)))
        y = int((H - face_size) * (0.5 + 0.4 * np.sin(2 * np.pi * t / 3.3)))
        frame = bgs[(i // 90) % len(bgs)].copy()
        frame[y : y + face_size, x : x + face_size] = faces[(i // 60) % len(faces)]
        vw.write(frame)
        boxes.append((x, y, x + face_size, y + face_size))
    vw.release()
    return boxes, origin


# ----------------------------------------------------------------------------- models


def pick_models(args, work: Path) -> tuple[dict[str, Path], str]:
    from edge_dfd.core.formats import format_of_file
    from edge_dfd.runtime import zoo

    if args.models:
        out = {}
        for m in args.models:
            f = format_of_file(m)
            out[f.name if f else Path(m).name] = Path(m)
        return out, "given on the command line"
    have = zoo.available_formats()
    if have:
        return {f: zoo.default_path(f) for f in have}, f"bundled default model ({zoo.default_dir()})"
    return fallback_models(work), "study CNN, untrained, exported by edge_dfd.export.convert (speed only; no bundled model yet)"


def fallback_models(work: Path) -> dict[str, Path]:
    from edge_dfd.core.formats import EXPORT_FORMATS, FORMATS
    from edge_dfd.export.convert import convert_model
    from edge_dfd.modelling.models import build_model

    keras_path = work / "cnn.keras"
    build_model("cnn", img_size=256).save(keras_path)
    calib = SHARED / "faces140k-sample"
    if not (calib / "valid.csv").is_file():
        from benchmarks.synth import make_140k

        calib = make_140k(work / "calib", {"valid": 32}, size=256, splits=("valid",))
    results = convert_model(keras_path, list(EXPORT_FORMATS), work, calib_data=calib, calib_size=64, verify_size=32)
    models = {"keras": keras_path}
    for r in results:
        if Path(r.path).is_file():
            models[r.format] = Path(r.path)
    return {k: models[k] for k in FORMATS if k in models}


# ----------------------------------------------------------------------------- measurements


def bench_detectors(video: Path, truth: list[tuple], threads: int) -> list[dict]:
    import cv2

    from edge_dfd.images.faces import make_detector

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    rows = []
    for name in DETECTORS:
        det = make_detector(name, threads=threads)
        det.detect(frames[0])  # warm-up
        ms, found, centred, extra = [], 0, 0, 0
        for f, (x1, y1, x2, y2) in zip(frames, truth):
            t0 = time.perf_counter()
            boxes, _ = det.detect(f)
            ms.append((time.perf_counter() - t0) * 1e3)
            if len(boxes):
                found += 1
                extra += len(boxes) - 1
                cx, cy = (boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2
                centred += int(x1 <= cx <= x2 and y1 <= cy <= y2)
        rows.append({"detector": name, "frames": len(frames), "ms_p50": _p(ms, 50), "ms_p90": _p(ms, 90),
                     "frames_with_face": found, "centred_on_face": centred, "extra_boxes": extra})
        print(f"detector {name:15s} {rows[-1]['ms_p50']:6.2f} ms p50, face in {found}/{len(frames)} frames "
              f"({centred} centred, {extra} extra boxes)", file=sys.stderr)
    return rows


def bench_live(models: dict[str, Path], video: Path, frames: int, threads: int) -> list[dict]:
    from edge_dfd.video import LiveConfig, run_live

    runs = [(fmt, "blazeface", 1) for fmt in models]
    if "tflite-int8" in models:
        runs += [("tflite-int8", d, 1) for d in DETECTORS if d != "blazeface"] + [("tflite-int8", "blazeface", 3)]
    rows = []
    for fmt, det, every in runs:
        n = min(frames, 90) if fmt == "keras" else frames
        cfg = LiveConfig(model=str(models[fmt]), source=str(video), faces=det, detect_every=every,
                         max_frames=n, threads=threads)
        print(f"live {fmt} + {det} (detect every {every}):", file=sys.stderr)
        stats = run_live(cfg)
        rows.append({"format": fmt, "detector": det, "detect_every": every, "frames": stats.frames,
                     "fps": round(stats.fps, 1), "faces": stats.faces,
                     **{f"{k}_p50": v["p50"] for k, v in stats.stage_ms.items()},
                     **{f"{k}_p90": v["p90"] for k, v in stats.stage_ms.items()}})
    return rows


def _p(v, q) -> float:
    return round(float(np.percentile(v, q)), 3)


# ----------------------------------------------------------------------------- speed: report


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Live pipeline benchmark",
        "",
        f"`{res['command']}` on {m.get('cpu')} ({m.get('usable_cores')} usable cores), threads={res['threads']}, "
        f"1-minute load average at start {res.get('load_avg_1min_at_start', '?')} (other jobs share the cores).",
        f"Video: {W}x{H}, {FPS:.0f} fps MJPG, {res['frames']} frames, one moving {res['face_size']} px face; "
        f"faces: {res['faces_from']}. Models: {res['models_from']}.",
        "",
        "## End to end (`edge_dfd.video.run_live`, video file read in the capture thread)",
        "",
        "| format | detector | detect every | frames | FPS | capture | detect | preprocess | infer | draw |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["live"]:
        st = " | ".join(f"{r.get(s + '_p50', 0):.2f} / {r.get(s + '_p90', 0):.2f}"
                        for s in ("capture", "detect", "preprocess", "infer", "draw"))
        lines.append(f"| {r['format']} | {r['detector']} | {r['detect_every']} | {r['frames']} | **{r['fps']}** | {st} |")
    lines += ["", "Stage columns: ms per frame, p50 / p90. `capture` is the decode time in the capture thread "
              "(overlaps with the rest); `draw` is 0 without --show/--save.", "",
              "## Face detectors alone", "",
              "| detector | ms p50 | ms p90 | frames with a face | box centred on the face | extra boxes |",
              "|---|---|---|---|---|---|"]
    for r in res["detectors"]:
        lines.append(f"| {r['detector']} | {r['ms_p50']:.2f} | {r['ms_p90']:.2f} | {r['frames_with_face']}/{r['frames']} "
                     f"| {r['centred_on_face']} | {r['extra_boxes']} |")
    t = [r for r in res["live"] if r["format"] == "tflite-int8" and r["detector"] == "blazeface" and r["detect_every"] == 1]
    if t:
        verdict = "met" if t[0]["fps"] >= 60 else "NOT met"
        lines += ["", f"Target >= 60 FPS end to end with tflite-int8 + BlazeFace: **{verdict}** ({t[0]['fps']} FPS)."]
    return "\n".join(lines) + "\n"


def speed_main(args, command: str) -> int:
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

    if args.markdown_only:
        res = json.loads((args.out / "live.json").read_text())
        atomic_write_text(args.out / "live.md", markdown(res))
        return 0
    threads = args.threads or 2
    with tempfile.TemporaryDirectory(prefix="edge-dfd-live-") as tmp:
        work = Path(tmp)
        video = work / "test.avi"
        truth, origin = make_video(video, args.frames, args.face_size)
        models, models_from = pick_models(args, work)
        print(f"models ({models_from}): {', '.join(models)}", file=sys.stderr)
        res = {
            "command": command,
            "machine": machine_facts(threads), "load_avg_1min_at_start": round(os.getloadavg()[0], 1),
            "threads": threads, "frames": args.frames,
            "face_size": args.face_size, "faces_from": origin, "models_from": models_from,
            "models": {k: Path(v).name for k, v in models.items()},
            "detectors": bench_detectors(video, truth, threads),
            "live": bench_live(models, video, args.frames, threads),
        }
    atomic_write_json(args.out / "live.json", res)
    atomic_write_text(args.out / "live.md", markdown(res))
    print(markdown(res))
    return 0
