"""The README's main job, timed as a user runs it: ``edge-dfd bench`` with no arguments (every bundled format of
the default model: speed, and accuracy on the bundled evaluation sample), then its tables copied to
``benchmarks/results/bench_default.{json,md}`` (+ ``bench_default_pareto.png``) with the wall time and the
machine's load average before and after (the 2-core machine may be shared: latencies then read high and noisy).

    python -m benchmarks.bench_default              # about 2 minutes on 2 cores
    python -m benchmarks.bench_default --out DIR    # write somewhere else

Nothing is written when the run fails or any row is not "ok" (committed results are never replaced by a
partial table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS
from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

BUDGET_S = 180  # the limit for the no-argument bench on this machine


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_default", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for bench_default.{json,md} [benchmarks/results]")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_default_") as tmp:
        cmd = [sys.executable, "-m", "edge_dfd", "bench", "--quiet", "--out", tmp]
        load_before = _load()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        load_after = _load()
        if proc.returncode != 0:
            sys.exit(f"edge-dfd bench failed (exit {proc.returncode}); nothing written:\n{proc.stderr[-2000:]}")
        doc = json.loads((Path(tmp) / "bench.json").read_text())
        bad = [f"{r['format']}: {r['status']}" for r in doc["rows"] if r["status"] != "ok"]
        if bad or not doc["rows"]:
            sys.exit(f"not every format was measured ({'; '.join(bad) or 'no rows'}); nothing written")
        shared = bool(load_before and load_before[0] > 1.5) or bool(load_after and load_after[0] > 1.5)
        run = {"command": "edge-dfd bench", "wall_s": round(wall, 1), "budget_s": BUDGET_S,
               "load_average_before": load_before, "load_average_after": load_after, "shared_machine": shared,
               "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        a.out.mkdir(parents=True, exist_ok=True)
        png = Path(tmp) / "pareto.png"
        if png.is_file():
            shutil.copy(png, a.out / "bench_default_pareto.png")
        atomic_write_json(a.out / "bench_default.json", {"run": run, **doc})
        state = (f"**shared**: load average {load_before} before, {load_after} after on "
                 f"{doc['machine'].get('usable_cores')} cores, so the latencies read high and noisy (compare formats "
                 "within one run only)" if shared else f"idle (load average {load_before} before, {load_after} after)")
        head = [f"# `edge-dfd bench` with no arguments, {run['time']}", "",
                f"`python -m benchmarks.bench_default` ran `edge-dfd bench`: **{run['wall_s']} s wall** (budget "
                f"{BUDGET_S} s). The machine was {state}.", ""]
        if png.is_file():
            head += ["![latency vs accuracy](bench_default_pareto.png)", ""]
        atomic_write_text(a.out / "bench_default.md", "\n".join(head) + (Path(tmp) / "bench.md").read_text())
    print(f"edge-dfd bench: {run['wall_s']} s wall (load {load_before} -> {load_after}); "
          f"wrote {a.out / 'bench_default.md'} and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
