"""Soak test of `edge-dfd live` as a service: a looping HTTP MJPEG stream on 127.0.0.1 that drops every ~20 s.

    python -m benchmarks.soak_live --minutes 10 --name soak_live_10min       # results/soak_live_10min.*
    python -m benchmarks.soak_live --minutes 1.5 --out /tmp/soak              # a quick check of the script

1. Serves 640x480 frames at ``--fps`` as multipart/x-mixed-replace (what IP cameras send) from this process,
   cutting every connection after ``--drop-every`` s. Frames are whole 140k sample photos (faces with their
   surroundings) read at run time from ../shared/data, kept only where BlazeFace finds one face, each held for
   ``--hold`` s (a person in front of the camera); generated scenes without the shared data
   (benchmarks/mjpeg_server.py).
2. Runs ``python -m edge_dfd live`` on it as a service would (the default pipeline: aligned crops, classifier
   worker at 10 Hz per track; events, 60 s video segments keeping the newest 5, status file and heartbeat),
   samples its RSS (/proc/PID/status VmRSS) and the status file (frames, FPS, reconnects) every
   ``--sample-every`` s. At the end it waits until the newest drop is ``--settle`` s old (the reconnect is then
   done) and stops live with SIGTERM, so that every drop can be matched by a reconnect.
3. Checks (all must hold for exit 0): exit code 143 and the summary; every drop reconnected (reconnects in the
   summary = drops the server made); events complete (frames in the summary = distinct frames in the events =
   event lines, one face per frame) and continuous (no gap between consecutive events longer than
   ``--max-gap`` s: a drop + reconnect takes ~1 s); the classifier kept going (verdicts in the events, no
   verdict older than ``--max-age`` s); every kept video segment plays; no temporary file left; RSS growth
   after the first minute < ``--max-rss-growth`` %. Results: ``--out``/``--name``.json and .md.

The classifier is the bundled default model (``--model default``, ``--format`` as ``edge-dfd live`` loads it);
``--model tiny`` uses the tiny hand-built ONNX model of the tests (the pipeline's own RSS and FPS without a
real network), or pass a model file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, RESULTS, machine_facts

SUMMARY = re.compile(r"live: (\d+) frames in ([\d.]+) s = ([\d.]+) FPS, (\d+) faces .*?(\d+) dropped, (\d+) reconnects"
                     r"\)(?:, (\d+) classified)?")


def vmrss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def parse_summary(err: str) -> dict | None:
    m = SUMMARY.search(err)
    if not m:
        return None
    return {"frames": int(m.group(1)), "seconds": float(m.group(2)), "fps": float(m.group(3)),
            "faces": int(m.group(4)), "dropped": int(m.group(5)), "reconnects": int(m.group(6)),
            "classified": None if m.group(7) is None else int(m.group(7))}


def event_checks(events: list[dict], summary: dict | None, max_gap: float, max_age: float) -> dict:
    """Completeness (one face per frame), continuity (gaps between consecutive events, by the events' own
    source time) and the classifier's health (verdicts, fresh scores, ages)."""
    frames = [e["frame"] for e in events]
    distinct = len(set(frames))
    times = np.array([e["time"] for e in events], np.float64)
    gaps = np.diff(times) if len(times) > 1 else np.zeros(0)
    verdicts = {v: sum(e.get("verdict") == v for e in events) for v in ("fake", "real", "pending")}
    ages = np.array([e["age"] for e in events if e.get("age") is not None], np.float64)
    fresh_t = [e["time"] for e in events if e.get("fresh")]
    fresh_gap = float(np.max(np.diff(fresh_t))) if len(fresh_t) > 1 else None
    complete = bool(summary) and len(events) == distinct == summary["frames"] == summary["faces"]
    out = {
        "lines": len(events), "distinct_frames": distinct, "complete": complete,
        "monotonic_frames": bool(np.all(np.diff(frames) > 0)) if len(frames) > 1 else True,
        "max_gap_s": round(float(gaps.max()), 3) if len(gaps) else None,
        "gaps_over_0_5_s": int((gaps > 0.5).sum()),
        "continuous": bool(len(gaps)) and float(gaps.max()) <= max_gap,
        "verdicts": verdicts, "fresh": len(fresh_t),
        "max_s_between_fresh_scores": None if fresh_gap is None else round(fresh_gap, 3),
        "age_s": {"p50": round(float(np.median(ages)), 3), "p99": round(float(np.percentile(ages, 99)), 3),
                  "max": round(float(ages.max()), 3)} if len(ages) else None,
    }
    out["classifier_ok"] = bool(len(ages)) and float(ages.max()) <= max_age and verdicts["fake"] + verdicts["real"] > 0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0, help="stream frame rate")
    ap.add_argument("--hold", type=float, default=1.0, help="seconds each photo is shown")
    ap.add_argument("--drop-every", type=float, default=20.0, help="seconds per connection before the server cuts it")
    ap.add_argument("--settle", type=float, default=3.0, help="s after the newest drop before SIGTERM at the end")
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument("--model", default="default", help="'default', 'ten-pass', 'tiny' (test model) or a model file")
    ap.add_argument("--format", default=None, help="bundled format with --model default (default: live's)")
    ap.add_argument("--faces", default="blazeface")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-gap", type=float, default=3.0, help="longest allowed gap between events (s)")
    ap.add_argument("--max-age", type=float, default=5.0, help="oldest allowed verdict age (s)")
    ap.add_argument("--max-rss-growth", type=float, default=10.0, help="%% after the first minute")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="soak_live", help="result file stem")
    ap.add_argument("--keep-data", action="store_true", help="keep the events / video folder")
    ap.add_argument("--note", default="", help="a line for the report (e.g. the machine's load)")
    args = ap.parse_args(argv)

    import cv2

    from benchmarks.mjpeg_server import MJPEGServer, scene_frames
    from edge_dfd.images.faces import make_detector

    work = Path(tempfile.mkdtemp(prefix="edge_dfd_soak_"))
    if args.model == "tiny":
        from benchmarks.synth import tiny_onnx

        model, model_desc = str(tiny_onnx(work / "tiny.onnx")), "tiny test ONNX model (benchmarks/synth.py, 32 px)"
    else:
        from edge_dfd.core.fsutil import sha256_file
        from edge_dfd.runtime import resolve_model

        p = resolve_model(args.model, args.format)
        model = args.model
        model_desc = f"{args.model}{' --format ' + args.format if args.format else ''} = {p.name} " \
                     f"(sha256 {sha256_file(p)[:12]}...)"
    frames, frames_from = scene_frames(24, detector=make_detector(args.faces, threads=1))
    data = work / "data"
    data.mkdir()
    ev, st, video = data / "events.jsonl", data / "status.json", data / "video.avi"
    cmd = [sys.executable, "-m", "edge_dfd", "live", "--model", model, "--faces", args.faces,
           "--events", str(ev), "--save", str(video), "--save-segment", "60",
           "--save-keep", "5", "--status", str(st), "--heartbeat", "5", "--reconnects", "8"]
    if args.format:
        cmd += ["--format", args.format]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    samples = []
    load_start = [round(v, 2) for v in os.getloadavg()]
    hold = max(1, round(args.hold * args.fps))
    with MJPEGServer(frames, fps=args.fps, drop_every=args.drop_every, hold=hold) as srv:
        cmd[cmd.index("--faces"):cmd.index("--faces")] = ["--source", srv.url]
        print("soak:", " ".join(cmd), file=sys.stderr)
        errlog = open(work / "stderr.log", "w")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errlog)
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        next_sample = t0
        settling = False
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                break
            if now >= end:
                # stop only once the newest drop is --settle s old: its reconnect is done, the next drop far off
                last = srv.drop_times[-1] if srv.drop_times else -1e9
                if now - last >= args.settle or now - end > args.drop_every + 30:
                    break
                settling = True
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
                      f"FPS {s['fps']}  reconnects {s['reconnects']} / drops {srv.drops}", file=sys.stderr)
                next_sample += args.sample_every
            time.sleep(0.1 if settling else 0.5)
        alive = proc.poll() is None
        t_stop = time.monotonic()
        rss_final = vmrss_mb(proc.pid) if alive else None
        if alive:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        stop_s = time.monotonic() - t_stop
        server = {"frames_sent": srv.sent, "connections": srv.connections, "drops": srv.drops}
    errlog.close()
    err = (work / "stderr.log").read_text()
    summary = parse_summary(err)
    events = [json.loads(x) for x in ev.read_text().splitlines()] if ev.is_file() else []
    evc = event_checks(events, summary, args.max_gap, args.max_age)
    seg_frames = {}
    for p in sorted(data.glob("video.*.avi")):
        cap = cv2.VideoCapture(str(p))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        seg_frames[p.name] = n
    leftovers = sorted(p.name for p in data.iterdir() if p.name.startswith(".") or ".partial" in p.name)
    rss = [s for s in samples if s["rss_mb"] and s["frames"]]  # from the first processed frame on
    if rss_final:
        rss.append({"t_s": round(t_stop - t0, 1), "rss_mb": round(rss_final, 1), "frames": None})
    first_min = next((s for s in rss if s["t_s"] >= 60), None)
    rss_end = rss[-1] if rss else None
    growth = (100 * (rss_end["rss_mb"] - first_min["rss_mb"]) / first_min["rss_mb"]
              if first_min and rss_end and rss_end is not first_min else None)
    fps = [s["fps"] for s in samples if s["fps"] and s["t_s"] > 5]
    reconnected = bool(summary) and summary["reconnects"] == server["drops"]
    checks = {
        "exit_143_after_sigterm": code == 143 and alive,
        "every_drop_reconnected": reconnected,
        "events_complete": evc["complete"],
        "events_continuous": evc["continuous"],
        "classifier_kept_going": evc["classifier_ok"],
        "segments_play": bool(seg_frames) and all(seg_frames.values()),
        "no_temporary_files": not leftovers,
        "rss_growth_ok": growth is not None and growth < args.max_rss_growth,
    }
    res = {
        "command": "python -m benchmarks.soak_live " + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": args.note,
        "machine": {**machine_facts(args.threads), "loadavg_at_start": load_start,
                    "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "live_command": " ".join(cmd),
        "model": model_desc,
        "frames_from": frames_from,
        "minutes_asked": args.minutes, "minutes_run": round((t_stop - t0) / 60, 2),
        "stream": {"fps": args.fps, "hold_s": args.hold, "drop_every_s": args.drop_every, **server},
        "exit_code": code, "stopped_after_s": round(stop_s, 2), "ran_until_sigterm": alive,
        "summary": summary,
        "events": evc,
        "limits": {"max_gap_s": args.max_gap, "max_age_s": args.max_age, "max_rss_growth_pct": args.max_rss_growth},
        "video_segments_kept": seg_frames, "leftover_temporary_files": leftovers,
        "rss_mb": {"start": rss[0]["rss_mb"] if rss else None, "after_1_min": first_min and first_min["rss_mb"],
                   "end": rss_end and rss_end["rss_mb"], "max": max(s["rss_mb"] for s in rss) if rss else None,
                   "growth_after_first_minute_pct": None if growth is None else round(growth, 2)},
        "fps": {"mean": round(sum(fps) / len(fps), 2) if fps else None, "min": min(fps) if fps else None,
                "max": max(fps) if fps else None},
        "checks": checks, "passed": all(checks.values()),
        "samples": samples,
        "stderr_tail": err.splitlines()[-8:],
    }
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"{args.name}.json", res)
    atomic_write_text(args.out / f"{args.name}.md", markdown(res))
    print(markdown(res))
    if not args.keep_data:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"soak: data kept in {work}", file=sys.stderr)
    return 0 if res["passed"] else 1


def markdown(r: dict) -> str:
    s, rss, e = r["summary"] or {}, r["rss_mb"], r["events"]
    m = r["machine"]
    age = e.get("age_s") or {}
    v = e.get("verdicts", {})
    ok = lambda b: "yes" if b else "**NO**"  # noqa: E731
    c = r.get("checks", {})
    out = [
        "# `edge-dfd live` soak: looping MJPEG stream on 127.0.0.1, dropped every "
        f"{r['stream']['drop_every_s']:.0f} s",
        "",
        f"`{r['command']}` - {r['date']}, {m.get('cpu')} ({m.get('usable_cores')} cores, load average "
        f"{m.get('loadavg_at_start')} at the start, {m.get('loadavg_at_end')} at the end), model: {r['model']}; "
        f"frames: {r['frames_from']}.",
        "",
        f"live: `{r['live_command']}`",
        "",
        *([f"**Note:** {r['note']}", ""] if r.get("note") else []),
        f"**Result: {'PASSED' if r.get('passed') else 'FAILED'}** - "
        + ", ".join(f"{k.replace('_', ' ')}: {ok(b)}" for k, b in c.items()),
        "",
        "| measure | value |",
        "|---|---|",
        f"| duration | {r['minutes_run']} min (asked {r['minutes_asked']}) |",
        f"| stop | SIGTERM -> exit {r['exit_code']} after {r['stopped_after_s']} s |",
        f"| frames processed (summary) | {s.get('frames')} in {s.get('seconds')} s = {s.get('fps')} FPS |",
        f"| stream | {r['stream']['fps']:g} fps, each photo {r['stream'].get('hold_s', 0):g} s, "
        f"{r['stream']['frames_sent']} frames sent, {r['stream']['connections']} connections, "
        f"{r['stream']['drops']} drops |",
        f"| reconnects (summary) | {s.get('reconnects')} (= drops: {ok(c.get('every_drop_reconnected'))}) |",
        f"| frames dropped (newest-frame policy) | {s.get('dropped')} |",
        f"| events | {e['lines']} lines, {e['distinct_frames']} distinct frames, {s.get('faces')} faces: "
        f"{'complete' if e['complete'] else 'INCOMPLETE'} |",
        f"| event continuity | longest gap {e.get('max_gap_s')} s (limit {r['limits']['max_gap_s']} s), "
        f"{e.get('gaps_over_0_5_s')} gaps > 0.5 s |",
        f"| classifier | {s.get('classified')} classified; verdicts fake / real / pending {v.get('fake')} / "
        f"{v.get('real')} / {v.get('pending')}; {e.get('fresh')} fresh scores, longest wait between two "
        f"{e.get('max_s_between_fresh_scores')} s |",
        f"| verdict age p50 / p99 / max | {age.get('p50')} / {age.get('p99')} / {age.get('max')} s "
        f"(limit {r['limits']['max_age_s']} s) |",
        f"| video segments kept (--save-keep 5) | {len(r['video_segments_kept'])}, frames "
        f"{list(r['video_segments_kept'].values())} |",
        f"| temporary files left | {r['leftover_temporary_files'] or 'none'} |",
        f"| RSS start / after 1 min / end / max | {rss['start']} / {rss['after_1_min']} / {rss['end']} / "
        f"{rss['max']} MB |",
        f"| RSS growth after the first minute | {rss['growth_after_first_minute_pct']} % "
        f"(limit {r['limits']['max_rss_growth_pct']} %) |",
        f"| FPS (status file, per interval) mean / min / max | {r['fps']['mean']} / {r['fps']['min']} / "
        f"{r['fps']['max']} |",
        "",
        "## Samples",
        "",
        "| t (s) | RSS (MB) | frames | FPS | reconnects | server drops |",
        "|---|---|---|---|---|---|",
    ]
    samples = r["samples"]
    step = max(1, len(samples) // 40)
    for smp in samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else []):
        out.append(f"| {smp['t_s']:.0f} | {smp['rss_mb']} | {smp['frames']} | {smp['fps']} | {smp['reconnects']} "
                   f"| {smp.get('server_drops')} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
