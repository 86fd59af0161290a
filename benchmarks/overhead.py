"""Does the bench harness distort what it measures? Batch-1 latency of ``edge_dfd.bench.latency_ms``
(Backend.predict: checks, quantise, invoke, dequantise) vs a bare ``interpreter.invoke()`` /
``session.run()`` loop on the same model, same input, same threads. Target: within 5 %.

    python -m benchmarks.overhead MODEL.tflite MODEL.onnx ...
    python -m benchmarks.overhead        # the runs/bench_archs cache files, else the bundled default's files

Rounds alternate harness and bare loops (A B A B ...) so that load from other processes hits both
alike; the reported value is the median over rounds of each round's median. Writes
benchmarks/results/overhead.json (machine facts included) and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, RUNS, latency_ms, machine_facts, need, write_results


def bare_loop(det, x: np.ndarray, warmup: int, runs: int) -> np.ndarray:
    """The same model through its runtime's own API only (inputs prepared once, outside the timing)."""
    clock = time.perf_counter
    if det.runtime == "tflite":
        it, idx, out = det.interpreter, det._in["index"], det._out["index"]
        xin = det._quantize(x)

        def step():
            it.set_tensor(idx, xin)
            it.invoke()
            return it.get_tensor(out)
    else:
        sess, feed, outs = det.session, {det._in_name: x.astype(det._in_dtype)}, [det._out_name]

        def step():
            return sess.run(outs, feed)
    for _ in range(warmup):
        step()
    t = np.empty(runs)
    for i in range(runs):
        t0 = clock()
        step()
        t[i] = (clock() - t0) * 1000.0
    return t


def measure(path: Path, threads: int, rounds: int, runs: int, warmup: int) -> dict:
    from edge_dfd.export.imagesets import probe_inputs
    from edge_dfd.runtime import load_model

    det = load_model(path, threads=threads)
    x = probe_inputs(1, det.input_size)
    harness, bare = [], []
    for _ in range(rounds):
        harness.append(np.median(latency_ms(det, x, warmup, runs)))
        bare.append(np.median(bare_loop(det, x, warmup, runs)))
    h, b = float(np.median(harness)), float(np.median(bare))
    return {"model": str(path), "format": det.format, "threads": threads, "rounds": rounds, "runs": runs,
            "harness_ms_p50": round(h, 4), "bare_ms_p50": round(b, 4), "overhead_pct": round(100 * (h - b) / b, 2),
            "within_5pct": abs(h - b) / b <= 0.05}


def default_models() -> list[Path]:
    """runs/bench_archs's exports (python -m benchmarks.bench_archs) or, in a fresh clone, every bundled
    .tflite / .onnx file of the default model."""
    from edge_dfd.core.formats import FORMATS
    from edge_dfd.runtime import zoo

    cached = sorted(p for p in (RUNS / "bench_archs").rglob("*") if p.suffix in (".tflite", ".onnx"))
    return cached or [zoo.default_dir() / FORMATS[f].filename(zoo.STEM) for f in zoo.available_formats()
                      if FORMATS[f].filename(zoo.STEM).endswith((".tflite", ".onnx"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", default=str(RESULTS / "overhead.json"))
    args = ap.parse_args(argv)
    models = [Path(m) for m in args.models] or default_models()
    need(bool(models), "models to measure (none given, none in runs/bench_archs, no bundled .tflite / .onnx file)",
         "give MODEL.tflite / MODEL.onnx paths or run python -m benchmarks.bench_archs first")
    missing = [str(m) for m in models if not m.is_file()]
    need(not missing, f"model files that exist ({', '.join(missing)} not found)", "give MODEL paths that exist")
    rows = [measure(m, args.threads, args.rounds, args.runs, args.warmup) for m in models]
    print(f"{'model':<40} {'format':<15} {'harness ms':>10} {'bare ms':>9} {'overhead':>9}  ok")
    for r in rows:
        print(f"{Path(r['model']).name:<40} {r['format']:<15} {r['harness_ms_p50']:>10.3f} {r['bare_ms_p50']:>9.3f} "
              f"{r['overhead_pct']:>8.2f}%  {'yes' if r['within_5pct'] else 'NO'}")
    write_results({Path(args.out): {"machine": machine_facts(args.threads), "rows": rows, "models": "given" if
                   args.models else "default", "note": "median over rounds of per-round medians; rounds alternate "
                   "harness/bare"}}, complete=len(rows) == len(models))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r["within_5pct"] for r in rows) else 3


if __name__ == "__main__":
    sys.exit(main())
