"""`edge-dfd data` and a capped `edge-dfd train --recipe deploy` at the 140k data set's real size, and at 10k.

    python -m benchmarks.train_scale                       # 10k and 140k rows of hard links to the shared sample
    python -m benchmarks.train_scale --sizes 10000 --steps 5

Builds, under /tmp, a data set in the original 140k layout ({train,valid,test}.csv + real_vs_fake/real-vs-fake/...)
with the original split proportions (100k / 20k / 20k of 140k) whose images are HARD LINKS to the ~1,000 images of
the shared faces140k-sample (no copies: a few MB of directory entries). Then, per size, in fresh processes:
`edge-dfd data` (time, peak RSS) and `edge-dfd train --recipe deploy --epochs 2 --steps-per-epoch S` with
`--eval-sample` (valid / test capped: the point is the training side's memory and speed, not a 40k-image
evaluation on 2 CPU cores); peak RSS (wait4), wall time, the train-phase images/s of epoch 2 (epoch 1 traces the
graph) from history.csv. Face boxes: the links share inodes, so the box cache finds each unique file once; the
per-image cost of a real data set is `face boxes` in benchmarks/results/train_pipeline.md.
Writes benchmarks/results/train_scale.{json,md} with machine facts, only when every size ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import FACES140K, RESULTS, have_split, machine_facts
from benchmarks.synth import write_split_csv
from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

PROPORTIONS = {"train": 100 / 140, "valid": 20 / 140, "test": 20 / 140}


def build_links(src: Path, dest: Path, rows: int) -> Path:
    """A 140k-layout folder of ``rows`` images, each a hard link to one of ``src``'s images."""
    from edge_dfd.images.data import IMAGES_SUBDIR, load_dataset

    pool = [r for recs in load_dataset(src).values() for r in recs]
    by_label = {lab: [r for r in pool if r.label == lab] for lab in (0, 1)}
    k = 0
    for split, frac in PROPORTIONS.items():
        n = int(round(rows * frac))
        out = []
        for i in range(n):
            lab = i % 2
            rec = by_label[lab][k % len(by_label[lab])]
            cls = "real" if lab == 1 else "fake"
            rel = f"{split}/{cls}/L{k:06d}.jpg"
            target = dest / IMAGES_SUBDIR / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(rec.path, target)
            out.append([len(out), f"link/{rec.path.name}", f"L{k:06d}", lab, cls, rel])
            k += 1
        write_split_csv(dest, split, out)
    return dest


def run(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds and peak RSS (MB) of that process (os.wait4)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... exited {p.returncode}: {err.strip().splitlines()[-1:]}")
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": usage.ru_maxrss / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,140000", help="comma-separated row counts")
    ap.add_argument("--steps", type=int, default=8, help="--steps-per-epoch of the capped training")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--eval-sample", type=int, default=64)
    args = ap.parse_args(argv)
    if not have_split(FACES140K, "train"):
        print(f"skipped: {FACES140K} not found (the shared sample is beside a development checkout only)")
        return 0
    py = sys.executable
    results = []
    for rows in (int(s) for s in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix=f"edge-dfd-scale{rows}-", dir="/tmp"))
        try:
            t = time.perf_counter()
            ds = build_links(FACES140K, tmp / "ds", rows)
            built = time.perf_counter() - t
            data = run([py, "-m", "edge_dfd", "data", str(ds)])
            train = run([py, "-m", "edge_dfd", "train", "--recipe", "deploy", "--data", str(ds), "--out",
                         str(tmp / "run"), "--epochs", "2", "--steps-per-epoch", str(args.steps), "--batch-size",
                         str(args.batch), "--eval-sample", str(args.eval_sample), "--patience", "0", "-q"])
            from edge_dfd.train import read_history

            hist = read_history(tmp / "run" / "history.csv")
            results.append({"rows": rows, "link_seconds": built, "data": data, "train": train,
                            "train_images_per_s_epoch2": hist[-1].get("train_images_per_s"),
                            "epoch_seconds": [h["seconds"] for h in hist]})
            print(f"{rows:>7} rows: data {data['seconds']:.1f}s {data['peak_rss_mb']:.0f} MB; train "
                  f"{train['seconds']:.0f}s peak {train['peak_rss_mb']:.0f} MB, "
                  f"{results[-1]['train_images_per_s_epoch2'] or float('nan'):.1f} images/s (epoch 2)", flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    base = results[0]["train"]["peak_rss_mb"]
    lines = [f"| {r['rows']:,} | {r['data']['seconds']:.1f} | {r['data']['peak_rss_mb']:.0f} | "
             f"{r['train']['seconds']:.0f} | {r['train']['peak_rss_mb']:.0f} | "
             f"{100 * (r['train']['peak_rss_mb'] / base - 1):+.1f} % | {r['train_images_per_s_epoch2'] or 0:.1f} |"
             for r in results]
    md = "\n".join([
        "# Training at the 140k set's real size (`python -m benchmarks.train_scale`)", "",
        f"Hard links to {FACES140K.name} in the 140k layout (100k / 20k / 20k proportions); capped deploy training: "
        f"2 epochs x {args.steps} steps x batch {args.batch} at 224 px, valid / test sampled to {args.eval_sample} "
        f"images. Fresh process per command; machine shared with other jobs (2 cores).", "",
        "| rows | `data` s | `data` peak MB | train s | train peak MB | vs first | train images/s (epoch 2) |",
        "|---:|---:|---:|---:|---:|---:|---:|", *lines, ""])
    print(md)
    atomic_write_json(RESULTS / "train_scale.json", {"settings": vars(args), "results": results,
                                                      "machine": machine_facts(),
                                                      "note": "shared 2-core machine; one run per size"})
    atomic_write_text(RESULTS / "train_scale.md", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
