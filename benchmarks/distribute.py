"""Training throughput: 1 process vs MultiWorkerMirroredStrategy with 1 and 2 workers on THIS machine.

    python -m benchmarks.distribute                      # generated data (benchmarks/synth.py), 64 px
    python -m benchmarks.distribute --data DIR --img-size 128 --epochs 3

Each configuration runs the real CLI (`python -m edge_dfd train ... --distribute ...`) in fresh processes;
the 2-worker run uses a TF_CONFIG on two free 127.0.0.1 ports. Throughput = training images / epoch seconds
from the chief's history.csv, median over epochs 2..N (epoch 1 includes graph tracing). The generated data
has no valid split, so an epoch is training only. --batch-size is per replica (the global batch doubles with
two workers, as in the README). Writes benchmarks/results/distribute.{json,md} with machine facts.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, machine_facts
from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

CONFIGS = (("none", 1), ("multi-worker", 1), ("multi-worker", 2))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_config(mode: str, workers: int, data: Path, args, work: Path) -> dict:
    run = work / f"run-{mode}-{workers}"
    cmd = [sys.executable, "-m", "edge_dfd", "train", "--data", str(data), "--out", str(run), "--arch", args.arch,
           "--epochs", str(args.epochs), "--img-size", str(args.img_size), "--batch-size", str(args.batch_size),
           "--no-augment", "--patience", "0", "--distribute", mode]
    addrs = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    procs = []
    for i in range(workers):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        if mode == "multi-worker":
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addrs}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=args.timeout)[1] for p in procs]
    wall = time.perf_counter() - t0
    for p, err in zip(procs, errs):
        if p.returncode != 0:
            raise SystemExit(f"{mode} x{workers} failed (exit {p.returncode}):\n{err[-2000:]}")
    from edge_dfd.train import read_history

    rows = read_history(run / "history.csv")
    n_train = sum(json.loads((run / "config.json").read_text())["counts"]["train"].values())
    secs = [r["seconds"] for r in rows]
    steady = secs[1:] or secs
    ips = [n_train / s for s in steady]
    return {
        "mode": mode, "workers": workers, "per_replica_batch": args.batch_size,
        "global_batch": args.batch_size * workers, "train_images": n_train,
        "epoch_seconds": [round(s, 3) for s in secs],
        "images_per_s": round(statistics.median(ips), 1),
        "images_per_s_min_max": [round(min(ips), 1), round(max(ips), 1)],
        "wall_seconds": round(wall, 1), "load_avg_1min_at_start": round(load, 2),
    }


def markdown(res: dict) -> str:
    m, rows = res["machine"], res["results"]
    base = rows[0]["images_per_s"]
    lines = [
        "# Distributed training throughput (tf.distribute)", "",
        (f"`{res['command']}` on {m['cpu']} ({m['usable_cores']} usable cores, {m['memory_gb']} GiB), "
         f"TensorFlow {m['versions'].get('tensorflow-cpu') or m['versions'].get('tensorflow')}, "
         f"Keras {m['versions'].get('keras')}. Data: {res['data']}; arch {res['arch']}, "
         f"{res['img_size']} px, {res['epochs']} epochs, no augmentation."), "",
        ("| configuration | processes | per-replica batch | global batch | images/s (median, epochs 2..N) | "
         "min–max | vs 1 process | wall s (incl. start-up) | load avg at start |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = "--distribute none" if r["mode"] == "none" else f"multi-worker, {r['workers']} worker(s)"
        lo, hi = r["images_per_s_min_max"]
        lines.append(f"| {name} | {r['workers']} | {r['per_replica_batch']} | {r['global_batch']} | "
                     f"**{r['images_per_s']}** | {lo}–{hi} | {r['images_per_s'] / base:.2f}x | "
                     f"{r['wall_seconds']} | {r['load_avg_1min_at_start']} |")
    lines += ["", res["note"], ""]
    return "\n".join(lines)


NOTE = (
    "Why no speed-up here: both workers share the same 2 CPU cores (and other jobs run on them), so a second "
    "worker adds no compute; it adds a gradient all-reduce over gRPC every step, a second TensorFlow runtime "
    "and thread pools competing for the same cores, and a per-epoch synchronisation of the distributed "
    "iterator. Multi-worker pays off only when each worker brings its own cores/GPUs and the network is fast "
    "relative to the step time; measure on the target cluster before relying on it."
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="dataset folder (default: generated, train split only)")
    ap.add_argument("--per-class", type=int, default=96, help="generated training images per class")
    ap.add_argument("--arch", default="cnn")
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="per replica")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out", type=Path, default=RESULTS / "distribute")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="edge-dfd-bench-dist-") as tmp:
        work = Path(tmp)
        if args.data is None:
            from benchmarks.synth import make_140k

            data = make_140k(work / "data", counts={"train": args.per_class, "test": 4}, size=args.img_size,
                             splits=("train", "test"))
            data_desc = f"generated (benchmarks/synth.py), {2 * args.per_class} training images, {args.img_size} px JPEG"
        else:
            data, data_desc = args.data.resolve(), str(args.data.resolve())
        results = []
        for mode, workers in CONFIGS:
            r = run_config(mode, workers, data, args, work)
            print(f"{mode} x{workers}: {r['images_per_s']} images/s (epochs {r['epoch_seconds']} s)", file=sys.stderr)
            results.append(r)
    res = {
        "command": " ".join(["python -m benchmarks.distribute", *(argv if argv is not None else sys.argv[1:])]),
        "data": data_desc, "arch": args.arch, "img_size": args.img_size, "epochs": args.epochs,
        "machine": machine_facts(), "results": results, "note": NOTE,
    }
    atomic_write_json(args.out.with_suffix(".json"), res)
    atomic_write_text(args.out.with_suffix(".md"), markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
