"""Soak test of `edge-dfd live` as a service: a looping HTTP MJPEG stream on 127.0.0.1 that drops every ~20 s.

    python benchmarks/soak_live.py --minutes 30                    # the full soak (results/soak_live.*)
    python benchmarks/soak_live.py --minutes 1.5 --out /tmp/soak   # a quick check of the script

1. Serves 640x480 frames at ``--fps`` as multipart/x-mixed-replace (what IP cameras send) from this process,
   cutting every connection after ``--drop-every`` s. Frames are whole 140k sample photos (faces with their
   surroundings) read at run time from ../shared/data, kept only where BlazeFace finds one face; generated
   scenes without the shared data (tests/mjpeg_server.py).
2. Runs ``python -m edge_dfd live`` on it as a service would (events, 60 s video segments keeping the newest 5,
   status file and heartbeat every 5 s), samples its RSS (/proc/PID/status VmRSS) and the status file (frames, FPS,
   reconnects) every ``--sample-every`` s, then stops it with SIGTERM.
3. Checks: exit code 143 and the summary; events complete (frames in the summary = distinct frames in the
   events = event lines, one face per frame); every kept video segment plays; RSS growth after the first
   minute. Results: ``--out``/soak_live.json and soak_live.md.

The classifier is the tiny ONNX model of tests/test_live.py (32 px; the bundled default model is being
replaced while this is measured) unless ``--model`` names a file: RSS and FPS are those of the pipeline
(capture, BlazeFace, outputs), not of a large network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def vmrss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--fps", type=float, default=15.0, help="stream frame rate")
    ap.add_argument("--drop-every", type=float, default=20.0, help="seconds per connection before the server cuts it")
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument("--model", default=None, help="model file (default: the tiny test ONNX model)")
    ap.add_argument("--faces", default="blazeface")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--keep-data", action="store_true", help="keep the events / video folder")
    ap.add_argument("--note", default="", help="a line for the report (e.g. why the run is shorter)")
    args = ap.parse_args(argv)

    from mjpeg_server import MJPEGServer, scene_frames
    from test_live import tiny_onnx

    from edge_dfd.faces import make_detector
    from edge_dfd.machine import machine_facts

    work = Path(tempfile.mkdtemp(prefix="edge_dfd_soak_"))
    model = Path(args.model) if args.model else tiny_onnx(work / "tiny.onnx")
    frames, frames_from = scene_frames(24, detector=make_detector(args.faces, threads=1))
    data = work / "data"
    data.mkdir()
    ev, st, video = data / "events.jsonl", data / "status.json", data / "video.avi"
    cmd = [sys.executable, "-m", "edge_dfd", "live", "--model", str(model), "--faces", args.faces,
           "--threads", str(args.threads), "--events", str(ev), "--save", str(video), "--save-segment", "60",
           "--save-keep", "5", "--status", str(st), "--heartbeat", "5", "--reconnects", "8"]
    samples = []
    with MJPEGServer(frames, fps=args.fps, drop_every=args.drop_every) as srv:
        cmd[cmd.index("--faces"):cmd.index("--faces")] = ["--source", srv.url]
        print("soak:", " ".join(cmd), file=sys.stderr)
        errlog = open(work / "stderr.log", "w")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errlog)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_sample = t0
        while time.monotonic() < end:
            if proc.poll() is not None:
                break
            now = time.monotonic()
            if now >= next_sample:
                status = {}
                try:
                    status = json.loads(st.read_text())
                except (OSError, ValueError):
                    pass
                rss_now = vmrss_mb(proc.pid)
                samples.append({"t_s": round(now - t0, 1), "rss_mb": rss_now and round(rss_now, 1),
                                "frames": status.get("frames"), "fps": status.get("fps"),
                                "reconnects": status.get("reconnects"), "events_lines": status.get("events_lines"),
                                "server_drops": srv.drops})
                s = samples[-1]
                print(f"soak: {s['t_s']:7.0f} s  RSS {s['rss_mb'] or 0:6.1f} MB  frames {s['frames']}  "
                      f"FPS {s['fps']}  reconnects {s['reconnects']}", file=sys.stderr)
                next_sample += args.sample_every
            time.sleep(0.5)
        alive = proc.poll() is None
        t_stop = time.monotonic()
        if alive:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        stop_s = time.monotonic() - t_stop
        server = {"frames_sent": srv.sent, "connections": srv.connections, "drops": srv.drops}
    errlog.close()
    err = (work / "stderr.log").read_text()
    m = re.search(r"live: (\d+) frames in ([\d.]+) s = ([\d.]+) FPS, (\d+) faces .*?(\d+) dropped, (\d+) reconnects",
                  err)
    summary = {"frames": int(m.group(1)), "seconds": float(m.group(2)), "fps": float(m.group(3)),
               "faces": int(m.group(4)), "dropped": int(m.group(5)), "reconnects": int(m.group(6))} if m else None
    lines = ev.read_text().splitlines()
    events = [json.loads(x) for x in lines]
    distinct = len({e["frame"] for e in events})
    segs = sorted(data.glob("video.*.avi"))
    seg_frames = {}
    import cv2

    for p in segs:
        cap = cv2.VideoCapture(str(p))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        seg_frames[p.name] = n
    leftovers = sorted(p.name for p in data.iterdir() if p.name.startswith(".") or ".partial" in p.name)
    rss = [s for s in samples if s["rss_mb"] and s["frames"]]  # from the first processed frame on
    first_min = next((s for s in rss if s["t_s"] >= 60), None)
    rss_end = rss[-1] if rss else None
    growth = (100 * (rss_end["rss_mb"] - first_min["rss_mb"]) / first_min["rss_mb"]
              if first_min and rss_end and rss_end is not first_min else None)
    fps = [s["fps"] for s in samples if s["fps"] and s["t_s"] > 5]
    res = {
        "command": "python benchmarks/soak_live.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": args.note,
        "machine": machine_facts(args.threads),
        "load_avg_1min_at_end": round(os.getloadavg()[0], 1),
        "live_command": " ".join(cmd),
        "model": str(args.model or "tiny test ONNX model (tests/test_live.py tiny_onnx, 32 px)"),
        "frames_from": frames_from,
        "minutes_asked": args.minutes, "minutes_run": round((t_stop - t0) / 60, 2),
        "stream": {"fps": args.fps, "drop_every_s": args.drop_every, **server},
        "exit_code": code, "stopped_after_s": round(stop_s, 2), "ran_until_sigterm": alive,
        "summary": summary,
        "events": {"lines": len(lines), "distinct_frames": distinct,
                   "complete": bool(summary) and len(lines) == distinct == summary["frames"] == summary["faces"]},
        "video_segments_kept": seg_frames, "leftover_temporary_files": leftovers,
        "rss_mb": {"start": rss[0]["rss_mb"] if rss else None, "after_1_min": first_min and first_min["rss_mb"],
                   "end": rss_end and rss_end["rss_mb"], "max": max(s["rss_mb"] for s in rss) if rss else None,
                   "growth_after_first_minute_pct": None if growth is None else round(growth, 2)},
        "fps": {"mean": round(sum(fps) / len(fps), 2) if fps else None, "min": min(fps) if fps else None,
                "max": max(fps) if fps else None},
        "samples": samples,
        "stderr_tail": err.splitlines()[-8:],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak_live.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "soak_live.md").write_text(markdown(res))
    print(markdown(res))
    if not args.keep_data:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"soak: data kept in {work}", file=sys.stderr)
    ok = code == 143 and res["events"]["complete"] and not leftovers and all(seg_frames.values())
    return 0 if ok else 1


def markdown(r: dict) -> str:
    s, rss, e = r["summary"] or {}, r["rss_mb"], r["events"]
    out = [
        "# `edge-dfd live` soak: looping MJPEG stream on 127.0.0.1, dropped every "
        f"{r['stream']['drop_every_s']:.0f} s",
        "",
        f"`{r['command']}` - {r['date']}, {r['machine'].get('cpu')} ({r['machine'].get('usable_cores')} cores, "
        f"load {r['load_avg_1min_at_end']} at the end), model: {r['model']}; frames: {r['frames_from']}.",
        "",
        f"live: `{r['live_command']}`",
        "",
        *([f"**Note:** {r['note']}", ""] if r.get("note") else []),
        "| measure | value |",
        "|---|---|",
        f"| duration | {r['minutes_run']} min (asked {r['minutes_asked']}) |",
        f"| stop | SIGTERM -> exit {r['exit_code']} after {r['stopped_after_s']} s |",
        f"| frames processed (summary) | {s.get('frames')} in {s.get('seconds')} s = {s.get('fps')} FPS |",
        f"| stream | {r['stream']['fps']} fps, {r['stream']['frames_sent']} frames sent, "
        f"{r['stream']['connections']} connections, {r['stream']['drops']} drops |",
        f"| reconnects (summary) | {s.get('reconnects')} |",
        f"| frames dropped (newest-frame policy) | {s.get('dropped')} |",
        f"| events | {e['lines']} lines, {e['distinct_frames']} distinct frames, {s.get('faces')} faces: "
        f"{'complete' if e['complete'] else 'INCOMPLETE'} |",
        f"| video segments kept (--save-keep 5) | {len(r['video_segments_kept'])}, frames "
        f"{list(r['video_segments_kept'].values())} |",
        f"| temporary files left | {r['leftover_temporary_files'] or 'none'} |",
        f"| RSS start / after 1 min / end / max | {rss['start']} / {rss['after_1_min']} / {rss['end']} / "
        f"{rss['max']} MB |",
        f"| RSS growth after the first minute | {rss['growth_after_first_minute_pct']} % |",
        f"| FPS (status file, per interval) mean / min / max | {r['fps']['mean']} / {r['fps']['min']} / "
        f"{r['fps']['max']} |",
        "",
        "## Samples",
        "",
        "| t (s) | RSS (MB) | frames | FPS | reconnects |",
        "|---|---|---|---|---|",
    ]
    samples = r["samples"]
    step = max(1, len(samples) // 40)
    for smp in samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else []):
        out.append(f"| {smp['t_s']:.0f} | {smp['rss_mb']} | {smp['frames']} | {smp['fps']} | {smp['reconnects']} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
