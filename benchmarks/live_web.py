"""Live frame rate of `edge-dfd live --serve` with 4 viewers, and with an attack running (issue 28).

    python -m benchmarks.live_web                          # results/live_web.json + .md
    python -m benchmarks.live_web --seconds 5 --repeats 1 --out /tmp/lw     # a quick check of the script

The source is a camera-like looping MJPEG stream on 127.0.0.1 (benchmarks/mjpeg_server.py: 640x480 faces with
their surroundings, ``--fps`` frames a second); live runs the default pipeline on it with ``--serve 0.0.0.0:0``
(so the token is required) in these scenarios, each a fresh process, interleaved over ``--repeats`` rounds:

* ``no serve``: no web view at all (the baseline);
* ``serve, 0 viewers``: the web view, nobody watching (frames are not even JPEG-encoded);
* ``4 viewers``: four pages' worth of clients on 127.0.0.1, each an MJPEG stream and an event stream, read as fast
  as they come;
* ``4 viewers + attack``: the same, while benchmarks/web_attack.py attacks from 127.0.0.2: 100 slow-loris
  connections (a byte a second), a flood of random / malformed requests and 64 KB headers, wrong-token guesses
  and 2 viewers that never read. A good client then opens the page and the stream (seconds to the page and to
  the first frame).

Per scenario, after ``--warmup`` s: live's frame rate over ``--seconds`` s (frames processed, from its status
file), live's CPU time per processed frame (/proc/PID/stat utime + stime: what serving costs the pipeline), the
frames each viewer received per second, live's thread count and RSS. Medians over the rounds. The attack runs in
this process and competes for the same cores (say how many the machine has, and whether it was shared). Results
are written only when every scenario of every round completed (never a partial table).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import REPO, RESULTS, machine_facts
from benchmarks.web_attack import Attack, connect, exchange_from, good_client, proc_status
from edge_dfd.video.web_loop import HEAD_TIMEOUT

SCENARIOS = ("no serve", "serve, 0 viewers", "4 viewers", "4 viewers + attack")
BEFORE = "db36c5a"  # the commit before issue 28: edge_dfd/video/web.py on http.server's ThreadingHTTPServer


def idle_cost(make_server, n: int = 100) -> dict:
    """Threads and RSS of THIS process before and with ``n`` connections that never finish their request."""
    import socket

    server = make_server()
    try:
        time.sleep(0.3)
        before = proc_status(os.getpid())
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: local")
            socks.append(s)
        time.sleep(3.0)  # the thread-per-connection server starts its threads as it accepts
        during = proc_status(os.getpid())
        for s in socks:
            s.close()
        return {"idle_connections": n, "threads_before": before["threads"], "threads_with_idle": during["threads"],
                "rss_growth_mb": round(during["rss_mb"] - before["rss_mb"], 1)}
    finally:
        server.close()


def idle_costs(work: Path) -> dict:
    """100 idle connections against the web view of BEFORE (one thread each) and the current one."""
    import importlib.util

    from edge_dfd.video.web import LiveServer

    out = {"now (asyncio, one thread)": idle_cost(lambda: LiveServer("127.0.0.1", 0).start())}
    try:
        old = subprocess.run(["git", "show", f"{BEFORE}:edge_dfd/video/web.py"], cwd=REPO, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return out  # not a git checkout with that commit: only the current server
    (work / "web_before.py").write_bytes(old)
    spec = importlib.util.spec_from_file_location("web_before", work / "web_before.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out[f"before ({BEFORE}, ThreadingHTTPServer)"] = idle_cost(lambda: mod.LiveServer("127.0.0.1", 0).start())
    return out


class Viewer:
    """One page's clients on 127.0.0.1: the MJPEG stream (JPEG parts counted) and the event stream (bytes)."""

    def __init__(self, port: int, cookie: str):
        self.port, self.cookie = port, cookie
        self.frames = self.event_bytes = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._stream, daemon=True),
                        threading.Thread(target=self._events, daemon=True)]
        for t in self.threads:
            t.start()

    def _open(self, path: str):
        s = connect(self.port, source="127.0.0.1", timeout=2.0)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {self.cookie}\r\n\r\n".encode())
        return s

    def _stream(self) -> None:
        with self._open("/stream.mjpg") as s:
            buf = b""
            while not self.stop.is_set():
                try:
                    chunk = s.recv(1 << 18)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buf += chunk
                while (i := buf.find(b"Content-Length: ")) >= 0 and (j := buf.find(b"\r\n\r\n", i)) >= 0:
                    n = int(buf[i + 16 : buf.index(b"\r\n", i)])
                    if len(buf) < j + 4 + n:
                        break
                    self.frames += 1
                    buf = buf[j + 4 + n :]

    def _events(self) -> None:
        with self._open("/events") as s:
            while not self.stop.is_set():
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                self.event_bytes += len(chunk)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def read_status(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_scenario(name: str, args, source_url: str, model: str, work: Path) -> dict:
    status = work / f"status-{re.sub(r'[^a-z0-9]+', '-', name)}.json"
    status.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "edge_dfd", "live", "--model", model, "--source", source_url,
           "--faces", args.faces, "--status", str(status), "--heartbeat", "1"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if name != "no serve":
        cmd += ["--serve", "0.0.0.0:0", "--serve-clients", "12"]
    env = {k: v for k, v in os.environ.items() if k != "EDGE_DFD_SERVE_TOKEN"}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    port = token = None
    viewers: list[Viewer] = []
    attack = None
    res: dict = {"scenario": name}
    try:
        t0 = time.monotonic()
        while name != "no serve" and port is None:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("live exited: " + "".join(lines[-5:]))
            lines.append(line)
            m = re.search(r"serving the web view on http://0\.0\.0\.0:(\d+)/\?token=(\S+)", line)
            if m:
                port, token = int(m.group(1)), m.group(2)
        threading.Thread(target=lambda: [lines.append(ln) for ln in proc.stderr], daemon=True).start()
        while not ((st := read_status(status)) and st.get("frames", 0) > 0):
            if proc.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError("live did not start: " + "".join(lines[-5:]))
            time.sleep(0.2)
        if name in ("4 viewers", "4 viewers + attack"):
            page = exchange_from(port, f"GET /?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), 10)
            cookie = re.search(rb"Set-Cookie: ([^;]+);", page).group(1).decode()
            viewers = [Viewer(port, cookie) for _ in range(4)]
        if name == "4 viewers + attack":
            attack = Attack(port, token, slowloris=100, never_read=2).start()
        time.sleep(args.warmup)
        s0, c0, f0 = time.monotonic(), cpu_s(proc.pid), read_status(status)["frames"]
        v0 = [v.frames for v in viewers]
        if attack is not None:
            time.sleep(min(3.0, args.seconds / 2))
            good = good_client(port, token)
            res["good_client"] = {"page_status": good["page_status"], "page_s": round(good["page_s"], 3),
                                  "first_frame_s": None if good["frame_s"] is None else round(good["frame_s"], 3)}
        time.sleep(max(0.0, args.seconds - (time.monotonic() - s0)))
        time.sleep(1.1)  # the status file is rewritten every second: take the newest one
        s1, c1, st1 = time.monotonic(), cpu_s(proc.pid), read_status(status)
        frames = st1["frames"] - f0
        ps = proc_status(proc.pid)
        res.update({
            "fps": round(frames / (s1 - s0), 2),
            "cpu_ms_per_frame": round(1e3 * (c1 - c0) / max(frames, 1), 2),
            "viewer_fps": [round((v.frames - a) / (s1 - s0), 2) for v, a in zip(viewers, v0)],
            "threads": ps.get("threads"), "rss_mb": round(ps.get("rss_mb", 0), 1),
        })
        if attack is not None:
            res["attack"] = {"fuzz_requests": sum(attack.statuses.values()),
                             "big_header_requests": sum(attack.big.values()),
                             "guesses": dict(attack.guesses), "slowloris_open": len(attack.slow_open),
                             "slowloris_cut": len(attack.slow_closed_after),
                             "never_read_dropped": attack.never_read_dropped()}
        if proc.poll() is not None:
            raise RuntimeError(f"live exited with {proc.returncode}: " + "".join(lines[-5:]))
        return res
    finally:
        if attack is not None:
            attack.stop()
        for v in viewers:
            v.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="measured window per scenario")
    ap.add_argument("--warmup", type=float, default=5.0, help="s after the first frame before measuring")
    ap.add_argument("--repeats", type=int, default=2, help="rounds (scenarios interleaved); medians reported")
    ap.add_argument("--fps", type=float, default=30.0, help="the camera stream's frame rate")
    ap.add_argument("--model", default="default", help="'default', 'tiny' (test model) or a model file")
    ap.add_argument("--faces", default="blazeface")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="live_web", help="result file stem")
    ap.add_argument("--note", default="", help="a line for the report (e.g. the machine's load)")
    args = ap.parse_args(argv)

    from benchmarks.mjpeg_server import MJPEGServer, scene_frames
    from edge_dfd.images.faces import make_detector

    work = Path(tempfile.mkdtemp(prefix="edge_dfd_live_web_"))
    if args.model == "tiny":
        from benchmarks.synth import tiny_onnx

        model, model_desc = str(tiny_onnx(work / "tiny.onnx")), "tiny test ONNX model (benchmarks/synth.py)"
    else:
        model, model_desc = args.model, f"{args.model} (live's default format)"
    frames, frames_from = scene_frames(8, detector=make_detector(args.faces, threads=1))
    load_start = [round(v, 2) for v in os.getloadavg()]
    idle = idle_costs(work)
    rounds: list[dict] = []
    with MJPEGServer(frames, fps=args.fps, drop_every=None) as cam:
        for r in range(args.repeats):
            for name in SCENARIOS:
                res = run_scenario(name, args, cam.url, model, work)
                print(f"round {r + 1}: {name:20s} {res['fps']:6.2f} FPS, {res['cpu_ms_per_frame']:6.2f} CPU ms/frame, "
                      f"viewers {res['viewer_fps']}", file=sys.stderr)
                rounds.append(res)
    table = {}
    for name in SCENARIOS:
        rs = [r for r in rounds if r["scenario"] == name]
        table[name] = {
            "fps": statistics.median(r["fps"] for r in rs),
            "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in rs),
            "viewer_fps": (statistics.median(statistics.mean(r["viewer_fps"]) for r in rs)
                           if rs[0]["viewer_fps"] else None),
            "threads": max(r["threads"] for r in rs), "rss_mb": max(r["rss_mb"] for r in rs),
            "runs": len(rs),
        }
        goods = [r["good_client"] for r in rs if "good_client" in r]
        if goods:
            table[name]["good_client_page_s"] = max(g["page_s"] for g in goods)
            table[name]["good_client_first_frame_s"] = max((g["first_frame_s"] or 99) for g in goods)
    if len(rounds) != args.repeats * len(SCENARIOS):
        print("live_web: incomplete, nothing written", file=sys.stderr)
        return 1
    res = {
        "command": "python -m benchmarks.live_web " + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "note": args.note,
        "machine": {**machine_facts(args.threads), "loadavg_at_start": load_start,
                    "loadavg_at_end": [round(v, 2) for v in os.getloadavg()]},
        "model": model_desc, "faces": args.faces, "frames_from": frames_from, "camera_fps": args.fps,
        "seconds": args.seconds, "warmup": args.warmup, "repeats": args.repeats,
        "table": table, "rounds": rounds, "idle_connections": idle,
    }
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / f"{args.name}.json", res)
    atomic_write_text(args.out / f"{args.name}.md", markdown(res))
    print(markdown(res))
    return 0


def markdown(r: dict) -> str:
    m, t = r["machine"], r["table"]
    base = t["no serve"]
    out = [
        "# `edge-dfd live --serve`: frame rate with 4 viewers and under attack",
        "",
        f"`{r['command']}` - {r['date']}, {m.get('cpu')} ({m.get('usable_cores')} usable cores, load average "
        f"{m.get('loadavg_at_start')} at the start, {m.get('loadavg_at_end')} at the end). Model: {r['model']}, "
        f"faces: {r['faces']}; source: a {r['camera_fps']:g} fps MJPEG camera stream on 127.0.0.1 ({r['frames_from']}); "
        f"live serves `0.0.0.0:0` with a token. Each scenario a fresh process, {r['warmup']:g} s warm-up, "
        f"{r['seconds']:g} s measured, medians of {r['repeats']} interleaved rounds. The viewers and the attack run "
        "in the benchmark's own process, on the same cores as live.",
        "",
        *([f"**Note:** {r['note']}", ""] if r.get("note") else []),
        "| scenario | live FPS | vs no serve | live CPU ms / frame | each viewer receives (frames/s) | threads | RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in t.items():
        vf = "-" if row["viewer_fps"] is None else f"{row['viewer_fps']:.1f}"
        out.append(f"| {name} | {row['fps']:.1f} | {row['fps'] / base['fps']:.2f}x | {row['cpu_ms_per_frame']:.1f} | "
                   f"{vf} | {row['threads']} | {row['rss_mb']:.0f} |")
    a = t.get("4 viewers + attack", {})
    last = next((x for x in reversed(r["rounds"]) if "attack" in x), None)
    if last:
        at = last["attack"]
        out += ["", f"Attack (last round): {at['slowloris_open']} slow-loris connections ({at['slowloris_cut']} cut by the "
                f"server's {HEAD_TIMEOUT:g} s head timeout within the window), {at['fuzz_requests']} random / malformed requests, "
                f"{at['big_header_requests']} requests with a 64 KB header, wrong-token guesses {at['guesses']} "
                f"(429 = slowed down), {at['never_read_dropped']} of 2 never-reading viewers dropped. "
                f"A good client during the attack (worst round): page in {a.get('good_client_page_s')} s, first frame "
                f"in {a.get('good_client_first_frame_s')} s."]
    out += ["", "100 connections that never finish their request, against the web view alone (in the benchmark's "
            "process):", "", "| server | threads before | threads with 100 idle connections | RSS growth MB |",
            "|---|---|---|---|"]
    for name, c in r.get("idle_connections", {}).items():
        out.append(f"| {name} | {c['threads_before']} | {c['threads_with_idle']} | {c['rss_growth_mb']} |")
    out += ["", "Threads and RSS: the live process at the end of the window (largest over the rounds). "
            "`viewer_fps` is the mean over the 4 stream viewers; a viewer receives at most the frames live processes.",
            "", "[Back to docs/live.md](../../docs/live.md)"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
