"""Does a short `--recipe deploy --init default` fine-tune keep the bundled default's accuracy? (issue 26 item 5)

    python -m benchmarks.finetune_check                                   # 1 epoch x 20 steps x 32 (~5 min on 2 cores)
    python -m benchmarks.finetune_check --epochs 3 --steps 60 --patience 0 --label 3x60
    python -m benchmarks.finetune_check --lr 1e-4 --label lr1e-4

Runs, in a temporary folder and as a child process (wall time and peak RSS of that process, os.wait4):

    edge-dfd train --recipe deploy --init default --data SHARED/faces140k-sample --data SHARED/ffhq-tpdne-128
                   --epochs E --steps-per-epoch S --batch-size B [--lr LR] [--patience P] --out TMP/run

then scores the bundled default (its `keras` format: the fine-tune's start, same runtime) and the fine-tuned
`model.keras`, each at its own threshold, on the bundled evaluation sample (edge_dfd/assets/eval_sample: the
shared sets' test splits, 660 images) - what `edge-dfd evaluate MODEL` with no --data scores. Reports both
accuracies and AUCs (overall and per set), the paired accuracy difference fine-tuned - default with Newcombe's 95 %
interval (`edge_dfd.core.verdicts.paired_accuracy_diff`), the paired AUC difference (DeLong) and the verdict: the
fine-tune keeps the default's accuracy within 1 point when the difference is >= -1 point (`within_1_point`);
`bound_within_1_point` says whether the interval's low end is too (660 images rarely settle that).

Writes benchmarks/results/finetune_check[_LABEL].{json,md} with machine facts, only when every step ran. Exit 0
when the fine-tune is within 1 point, 3 when it is not (the results are still written), 1 with one line when the
shared data is missing or a step fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import FACES140K, RESULTS, TPDNE128, machine_facts, need_data, write_results

TOLERANCE = 0.01  # "within 1 point" of accuracy


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.finetune_check", description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=1, help="--epochs of the fine-tune [default: 1]")
    ap.add_argument("--steps", type=int, default=20, help="--steps-per-epoch of the fine-tune [default: 20]")
    ap.add_argument("--batch-size", type=int, default=32, help="[default: 32]")
    ap.add_argument("--lr", type=float, default=None, help="--lr of the fine-tune [default: train's, 1e-5 from a "
                                                           "trained detector]")
    ap.add_argument("--patience", type=int, default=None, help="--patience of the fine-tune [default: train's]")
    ap.add_argument("--label", default="", help="suffix of the result files (finetune_check_LABEL.json), so that "
                                                "variants do not replace the default run's files")
    args = ap.parse_args(argv)
    for name in ("epochs", "steps", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(args, name)})")
    if args.lr is not None and not args.lr > 0:
        ap.error(f"--lr must be > 0 (got {args.lr})")
    if args.label and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.label):
        ap.error(f"--label must be letters, digits, '.', '_' or '-' (got {args.label!r})")
    return args


def result_stem(label: str = "") -> str:
    return "finetune_check" + (f"_{label}" if label else "")


def train_command(args, out: Path, python: str = sys.executable) -> list[str]:
    cmd = [python, "-m", "edge_dfd", "train", "--recipe", "deploy", "--init", "default",
           "--data", str(FACES140K), "--data", str(TPDNE128), "--epochs", str(args.epochs),
           "--steps-per-epoch", str(args.steps), "--batch-size", str(args.batch_size), "--out", str(out), "-q"]
    if args.lr is not None:
        cmd += ["--lr", f"{args.lr:g}"]
    if args.patience is not None:
        cmd += ["--patience", str(args.patience)]
    return cmd


def run_child(cmd: list[str], log_path: Path) -> dict:
    """Run ``cmd`` (stdout and stderr to ``log_path``); its wall seconds and peak RSS in MB (os.wait4: this
    process only, not the benchmark's). One ``error:`` line and exit 1 when it fails."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t = time.perf_counter()
    with open(log_path, "wb") as log:
        p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"error: {' '.join(cmd[2:5])} ... exited {code}: {tail[0]}")
    return {"seconds": round(secs, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def score(model, format=None) -> dict:
    """P(fake) of ``model`` on the bundled evaluation sample, as `edge-dfd evaluate MODEL` (no --data) scores it."""
    from edge_dfd.bench.accuracy import by_set
    from edge_dfd.bench.evaluate import score_records
    from edge_dfd.core.metrics import binary_report
    from edge_dfd.runtime import load_model
    from edge_dfd.runtime.sample import eval_sample

    smp = eval_sample()
    if smp.problems:
        raise SystemExit(f"error: the bundled evaluation sample is damaged: {smp.problems[0]}")
    backend = load_model(str(model), format=format)
    y, p, errors, _ = score_records(backend, smp.records)
    if errors:
        raise SystemExit(f"error: {errors[0][0]}: {errors[0][1]}")
    rep = binary_report(y, p, backend.threshold)
    return {"model": str(model) if format is None else f"{model} ({format})", "threshold": backend.threshold,
            "n": int(y.size), "accuracy": rep["accuracy"], "auc": rep["auc"],
            "by_set": by_set(y, p.astype("float64"), backend.threshold, smp.sets), "y": y, "p": p}


def compare(default: dict, tuned: dict) -> dict:
    """Paired accuracy and AUC differences (fine-tuned - default) on the same images, and the verdict."""
    import numpy as np

    from edge_dfd.core.verdicts import is_fake, paired_accuracy_diff, paired_auc_diff

    y = np.asarray(default["y"])
    if not np.array_equal(y, tuned["y"]):
        raise ValueError("the two models were scored on different images")
    ok_t = is_fake(tuned["p"], tuned["threshold"]) == y.astype(bool)
    ok_d = is_fake(default["p"], default["threshold"]) == y.astype(bool)
    acc = paired_accuracy_diff(ok_t, ok_d)
    auc = paired_auc_diff(y, tuned["p"], default["p"])
    return {"accuracy_diff": acc, "auc_diff": {k: auc[k] for k in ("diff", "low", "high", "level")},
            "tolerance": TOLERANCE, "within_1_point": bool(acc["diff"] >= -TOLERANCE - 1e-12),
            "bound_within_1_point": bool(acc["low"] >= -TOLERANCE - 1e-12)}


def table(res: dict) -> str:
    """The results .md: one row per model, then the paired difference and the verdict."""
    s, d, t, c = res["settings"], res["default"], res["finetuned"], res["comparison"]
    a = c["accuracy_diff"]
    lr = "train's default (1e-5)" if s["lr"] is None else f"{s['lr']:g}"
    patience = "train's default (3)" if s["patience"] is None else s["patience"]

    def row(name, m):
        sets = " | ".join(f"{m['by_set'][k]['accuracy']:.4f}" for k in sorted(m["by_set"]))
        return f"| {name} | {m['accuracy']:.4f} | {m['auc']:.4f} | {sets} | {m['threshold']:.4f} |"

    names = sorted(d["by_set"])
    verdict = "within 1 point" if c["within_1_point"] else "NOT within 1 point"
    return "\n".join([
        f"# Fine-tune check (`python -m benchmarks.finetune_check{' --label ' + s['label'] if s['label'] else ''}`)",
        "",
        f"`edge-dfd train --recipe deploy --init default` on faces140k-sample + ffhq-tpdne-128: {s['epochs']} epoch(s) "
        f"x {s['steps']} steps x batch {s['batch_size']}, lr {lr}, patience {patience}. Scored on the bundled "
        f"evaluation sample ({d['n']} test images), each model at its own threshold. One run on a shared 2-core "
        f"machine (load average {res['load_avg']:.2f} at the end).",
        "",
        "| model | accuracy | AUC | " + " | ".join(f"acc {n}" for n in names) + " | threshold |",
        "|---|---:|---:|" + "---:|" * len(names) + "---:|",
        row("default", d), row("fine-tuned", t),
        "",
        f"- paired accuracy difference (fine-tuned - default): {100 * a['diff']:+.2f} points, 95 % interval "
        f"[{100 * a['low']:+.2f}, {100 * a['high']:+.2f}] ({a['a_only']} images right only after, {a['b_only']} "
        f"only before); AUC difference {c['auc_diff']['diff']:+.4f} "
        f"[{c['auc_diff']['low']:+.4f}, {c['auc_diff']['high']:+.4f}]",
        f"- verdict: **{verdict}** of the default's accuracy (the interval's low end "
        f"{'is' if c['bound_within_1_point'] else 'is not'} within 1 point too)",
        f"- train: {res['train']['seconds']:.0f} s wall, peak RSS {res['train']['peak_rss_mb']:.0f} MB",
        ""])


def main(argv=None) -> int:
    args = parse_args(argv)
    need_data(FACES140K, TPDNE128, split="train")
    tmp = Path(tempfile.mkdtemp(prefix="edge-dfd-finetune-"))
    out = tmp / "run"
    cmd = train_command(args, out)
    print("running: edge-dfd " + " ".join(cmd[3:]), flush=True)
    try:
        train = run_child(cmd, tmp / "train.log")
        print(f"train: {train['seconds']:.0f} s, peak RSS {train['peak_rss_mb']:.0f} MB", flush=True)
        default = score("default", format="keras")
        tuned = score(out / "model.keras")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    comparison = compare(default, tuned)
    strip = ("y", "p")
    res = {"settings": vars(args), "command": "edge-dfd " + " ".join(cmd[3:]).replace(str(tmp), "TMP"),
           "train": train, "default": {k: v for k, v in default.items() if k not in strip},
           "finetuned": {k: v for k, v in tuned.items() if k not in strip} | {"model": "TMP/run/model.keras"},
           "comparison": comparison, "machine": machine_facts(), "load_avg": round(os.getloadavg()[0], 2),
           "note": "one run on a shared 2-core machine (other jobs running)"}
    md = table(res)
    print(md)
    stem = result_stem(args.label)
    write_results({RESULTS / f"{stem}.json": res, RESULTS / f"{stem}.md": md + "\n"})
    return 0 if comparison["within_1_point"] else 3


if __name__ == "__main__":
    raise SystemExit(main())
