"""Where a `train --recipe deploy` step's time goes: input pipeline alone, train step alone, both together.

    python -m benchmarks.train_pipeline                  # the shared 140k sample when present, else generated faces
    python -m benchmarks.train_pipeline --data DIR --batches 8 --size 224

Measured side by side in ONE process (medians over batches after a warm-up batch; the first train step traces
the graph and is dropped; the pipeline rows in 3 interleaved rounds, each row's best round kept, all recorded):
- pipeline alone: ``edge_dfd.train.deploy.train_dataset`` (decode + deployment augmentation + resize, face boxes
  cached first) with tf.data's private thread pool at 1 and at every core; images/s and images/s per thread;
  beside it the study recipe's pipeline (Keras preprocessing layers) for comparison;
- train step alone: the deploy model (single-pass EfficientNet-Lite0) on one batch already in memory, and the
  study recipe's ``--arch mobilenet_v2`` (five views per image) the same way;
- both: ``model.fit`` on the deploy pipeline; the ratio both / step alone (goal >= 0.9);
- plain loops on one thread (no tf.data): the deploy view (decode + ``augment``) beside the issue's reference
  (OpenCV decode + crop / flip / colour / blur / JPEG on every image, ``reference_view``), so that machines of
  different speed compare by their ratio.
It also says how many cores the pipeline needs to feed one GPU at a public training throughput of this backbone
(timm's results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv: efficientnet_lite0 1,674.68 samples/s at
batch 512, 224 px, AMP, RTX 3090 - a PyTorch figure; not re-measured here).
Writes benchmarks/results/train_pipeline[_LABEL].{json,md} with machine facts (only after every row is measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FACES140K, RESULTS, have_split, machine_facts, write_results

ROUNDS = 3  # interleaved rounds of the pipeline rows
DEPLOY_LOOP = "plain loop, deploy view (decode + deployment augmentation, 1 thread)"
REFERENCE_LOOP = "plain loop, the issue's reference (decode + crop/flip/colour/blur/JPEG, 1 thread)"
GPU_FIGURE = {"images_per_s": 1674.68, "model": "efficientnet_lite0", "batch": 512, "img_size": 224,
              "source": "huggingface/pytorch-image-models results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv "
                        "(train_samples_per_sec; AMP, NCHW, PyTorch 1.12, CUDA 11.3, RTX 3090)"}


def _records(data: Path | None, tmp: Path):
    from edge_dfd.images import data as dataset

    if data is None and have_split(FACES140K, "train"):
        data = FACES140K
    if data is None:
        from benchmarks.synth import make_140k

        data = make_140k(tmp / "synth", counts={"train": 64}, size=256, splits=("train",))
    return data, dataset.load_split(data, "train")


def _rate(ds, batches: int) -> tuple[float, list[float]]:
    """images/s: the median of per-batch rates over ``batches`` batches after one warm-up batch (the median
    resists the bursts of other jobs on a shared machine); also every per-batch rate."""
    it = iter(ds)
    next(it)
    rates = []
    for _ in range(batches):
        t = time.perf_counter()
        x, _ = next(it)
        n = int(x.shape[0])
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates), rates


def reference_view(path, rng, size: int):
    """The issue's one-thread reference (issue 26 item 3): OpenCV decode + random crop / flip / colour / blur /
    JPEG, every op on every image - what a plain augmentation pipeline costs on this machine."""
    import cv2

    img = cv2.cvtColor(cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    s = int(min(h, w) * rng.uniform(0.8, 1.0))
    top, left = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    img = cv2.resize(img[top:top + s, left:left + s], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    img = cv2.convertScaleAbs(img, alpha=rng.uniform(0.8, 1.2), beta=rng.uniform(-20, 20))
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(50, 96))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _loop_rate(view, n: int) -> float:
    """images/s of ``view(k)`` for k = 0..n-1 in a plain loop on this thread (median of 5 rounds of n / 5)."""
    per, rates = max(1, n // 5), []
    view(0)
    for r in range(5):
        t = time.perf_counter()
        for k in range(r * per, (r + 1) * per):
            view(k)
        rates.append(per / (time.perf_counter() - t))
    return statistics.median(rates)


def _threads(ds, n: int):
    import tensorflow as tf

    opts = tf.data.Options()
    opts.threading.private_threadpool_size = n
    opts.threading.max_intra_op_parallelism = 1
    return ds.with_options(opts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=6, help="measured batches per row (after a warm-up one)")
    ap.add_argument("--label", default="", help="write train_pipeline_LABEL.{json,md} (e.g. the machine's kind)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2
    import keras

    from edge_dfd.train import SkipLog, TrainConfig, deploy, make_dataset
    from edge_dfd.train.boxes import cached_boxes

    cv2.setNumThreads(1)  # one thread per pipeline worker: the pool size is the parallelism
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="edge-dfd-trainpipe-") as tmp:
        data, recs = _records(args.data, Path(tmp))
        t = time.perf_counter()
        boxes = cached_boxes(Path(tmp) / "run", "bench", recs)
        rows["face boxes (once per image, cached)"] = {"images_per_s": len(recs) / (time.perf_counter() - t),
                                                       "threads": 1}
        skips = SkipLog()
        sets = deploy.TrainSets(["bench"], [recs], [boxes], skips)
        state = deploy.EpochState()
        n = args.batches + 2

        n_pipe = 4 * args.batches  # pipeline rows are cheap: more batches, a steadier median

        def deploy_ds(steps=n + 4, bs=args.batch):
            return deploy.train_dataset(sets, state, seed=0, size=args.size, steps=steps, global_batch=bs,
                                        batch_size=bs, skips=skips)

        from edge_dfd.images.preprocess import decode_image
        from edge_dfd.train.augment import augment

        def deploy_view(k):
            path, _, box, rng = sets.draw(0, 0, k)
            return augment(decode_image(path), rng, box, args.size)

        def reference(k):
            return reference_view(recs[k % len(recs)].path, np.random.default_rng(k), args.size)

        # The cheap rows run in ROUNDS interleaved rounds, each row keeping its best round (timeit's rule: on a
        # shared machine the least-disturbed measurement is the machine's own speed); every round is kept.
        measure = {f"pipeline alone, deploy ({k} thread{'s' if k > 1 else ''})":
                   (lambda k=k: _rate(_threads(deploy_ds(n_pipe + 4), k), n_pipe)[0], k) for k in sorted({1, cores})}
        measure[DEPLOY_LOOP] = (lambda: _loop_rate(deploy_view, 25 * args.batch), 1)
        measure[REFERENCE_LOOP] = (lambda: _loop_rate(reference, 25 * args.batch), 1)
        rounds = {name: [] for name in measure}
        for _ in range(ROUNDS):
            for name, (fn, _k) in measure.items():
                rounds[name].append(fn())
        for name, (_fn, k) in measure.items():
            best = max(rounds[name])
            rows[name] = {"images_per_s": best, "threads": k, "per_thread": best / k,
                          "rounds": [round(r, 1) for r in rounds[name]]}
        cfg = TrainConfig(data=str(data), out="unused", img_size=args.size, batch_size=args.batch, jpeg_aug=True,
                          blur_aug=True)
        rate, _ = _rate(_threads(make_dataset(recs * 4, cfg, SkipLog(), training=True), 1), n_pipe)
        rows["pipeline alone, study (Keras preprocessing layers, 1 thread)"] = {
            "images_per_s": rate, "threads": 1, "per_thread": rate}

        x = np.stack([next(iter(deploy_ds()))[0].numpy()[i % args.batch] for i in range(args.batch)])
        y = np.tile([0.0, 1.0], args.batch // 2 + 1)[:args.batch].astype(np.float32)
        model = deploy.compile_model(deploy.build_model("efficientnet_lite0", args.size, "imagenet"), 1e-4, 100, 5)
        model.train_on_batch(x, y)  # traces
        times = []
        for _ in range(args.batches):
            t = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - t)
        step = args.batch / statistics.median(times)
        rows["train step alone, deploy efficientnet_lite0 (batch in memory)"] = {"images_per_s": step,
                                                                               "threads": cores}

        class Clock(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.t = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter() - self.t)

        times = []
        t0 = time.perf_counter()
        model.fit(deploy_ds(), epochs=1, steps_per_epoch=args.batches + 1, verbose=0, callbacks=[Clock()])
        wall = time.perf_counter() - t0
        both = args.batch / statistics.median(times[1:])
        rows["both: fit on the deploy pipeline"] = {"images_per_s": both, "threads": cores,
                                                    "ratio_to_step_alone": both / step,
                                                    "wall_images_per_s_incl_first": args.batch * len(times) / wall}

        from edge_dfd.modelling.models import build_model

        study = build_model("mobilenet_v2", args.size, "none")
        study.compile(optimizer="adam", loss="binary_crossentropy")
        study.train_on_batch(x, y)
        times = []
        for _ in range(max(2, args.batches // 2)):
            t = time.perf_counter()
            study.train_on_batch(x, y)
            times.append(time.perf_counter() - t)
        rows["train step alone, study --arch mobilenet_v2 (5 views per image)"] = {
            "images_per_s": args.batch / statistics.median(times), "threads": cores}

    per_thread = rows[f"pipeline alone, deploy ({1} thread)"]["per_thread"]
    summary = {
        "pipeline_per_core_images_per_s": per_thread,
        "goal_pipeline_per_core": 500,
        "both_over_step": rows["both: fit on the deploy pipeline"]["ratio_to_step_alone"],
        "goal_both_over_step": 0.9,
        "gpu_figure": GPU_FIGURE,
        "cores_to_feed_gpu": GPU_FIGURE["images_per_s"] / per_thread,
        "deploy_over_reference_plain_loop": rows[DEPLOY_LOOP]["images_per_s"] / rows[REFERENCE_LOOP]["images_per_s"],
    }
    load = {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in os.getloadavg()]}
    out = {"load_average_1_5_15min": load, "data": str(data), "n_images": len(recs), "size": args.size, "batch": args.batch,
           "batches": args.batches, "rows": rows, "summary": summary, "machine": machine_facts(),
           "note": "one process, rows measured one after another on a machine shared with other jobs (2 cores)"}
    lines = [f"| {name} | {r['images_per_s']:.1f} | "
             f"{'-' if r.get('per_thread') is None else format(r['per_thread'], '.1f')} |" for name, r in rows.items()]
    md = "\n".join([
        "# Training input pipeline vs train step (`python -m benchmarks.train_pipeline`)", "",
        f"{len(recs)} images from {data}, {args.size} px, batch {args.batch}, {args.batches} measured batches per "
        f"row (median); one process on {out['machine'].get('cpu', '?')} ({cores} cores, shared with other jobs; load "
        f"average {load['before'][0]:.1f} before, {load['after'][0]:.1f} after). The pipeline and plain-loop rows: "
        f"the best of {ROUNDS} interleaved rounds (every round in the JSON).",
        "", "| row | images/s | images/s per thread |", "|---|---:|---:|", *lines, "",
        f"- pipeline per core: **{per_thread:.0f} images/s** (goal >= 500)",
        f"- deploy view / the issue's reference pipeline, plain loops on one thread: "
        f"**{summary['deploy_over_reference_plain_loop']:.2f}**",
        f"- fit on the pipeline / step alone: **{summary['both_over_step']:.2f}** (goal >= 0.90)",
        f"- to feed one GPU at {GPU_FIGURE['images_per_s']:.0f} images/s ({GPU_FIGURE['source']}): "
        f"**{summary['cores_to_feed_gpu']:.1f} cores** of this machine's kind", ""])
    print(md)
    stem = "train_pipeline" + (f"_{args.label}" if args.label else "")
    write_results({RESULTS / f"{stem}.json": out, RESULTS / f"{stem}.md": md})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
