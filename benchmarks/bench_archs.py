"""Every architecture at 256x256 through `edge-dfd bench`: size, latency, throughput and memory per format.

    python -m benchmarks.bench_archs                              # all archs, all formats
    python -m benchmarks.bench_archs --archs cnn,mobilenet_v2 --formats keras,tflite-fp32,tflite-int8,onnx

Models use ``weights="none"`` (no ImageNet download here) with a random Dense head so the output is not a
constant 0.5: accuracy is therefore chance level - these rows measure SPEED, SIZE and MEMORY of each
architecture x format, not detection quality. Integer formats are calibrated on the shared 140k sample
(valid split) and throughput is measured over its test split; without it only float formats run.

Writes benchmarks/results/bench_archs.{json,md,csv} (machine facts included) through the bench writer, once, when
every arch of the call is measured; rows of archs not run in this call are kept from the previous results (a call
with --archs A never shrinks the committed table to A).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FACES140K, RESULTS, RUNS, have_split, need


def build(arch: str, size: int, work: Path) -> Path:
    """``arch`` with random weights and a random (non-constant) head, saved as .keras with metadata."""
    path = work / f"{arch}_{size}.keras"
    if path.is_file():
        return path
    import keras

    from edge_dfd.core.meta import ModelMeta, write_meta
    from edge_dfd.modelling.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(arch, img_size=size, weights="none")
    head = [la for la in model.layers if isinstance(la, keras.layers.Dense)][-1]
    kernel, bias = head.get_weights()
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(0, 3.0 / np.sqrt(kernel.shape[0]), kernel.shape).astype("float32"), bias])
    model.save(path)
    write_meta(path, ModelMeta(format="keras", arch=arch, input_size=size, threshold=0.5,
                               threshold_source="default 0.5 (untrained head: speed benchmark)"))
    return path


def exported_files(root, arch: str, formats: str) -> list[Path]:
    """The files of ``root/<arch>/`` whose format (from the file name) is among ``formats``, in table order."""
    from edge_dfd.core.formats import FORMATS, parse_formats

    wanted = [f.name for f in parse_formats(formats, allow_keras=True)]
    d = Path(root) / arch
    return [d / FORMATS[n].filename(arch) for n in wanted if (d / FORMATS[n].filename(arch)).is_file()]


def arch_of(model: str) -> str:
    """The architecture a row's model name belongs to (cnn_256.keras, xception_int8.tflite -> cnn, xception)."""
    from edge_dfd.modelling.models import ARCHS

    stem = model.split(".")[0]
    return next((a for a in sorted(ARCHS, key=len, reverse=True) if stem == a or stem.startswith(a + "_")), stem)


def earlier_rows(path: Path, run: list[str]) -> list:
    """The previous results' rows of the architectures this call does not measure (as BenchRow)."""
    import dataclasses
    import json

    from edge_dfd.bench import BenchRow

    if not path.is_file():
        return []
    names = {f.name for f in dataclasses.fields(BenchRow)}
    return [BenchRow(**{k: v for k, v in r.items() if k in names}) for r in json.loads(path.read_text())["rows"]
            if arch_of(r["model"]) not in run]


def main(argv=None) -> int:
    from edge_dfd.bench import BenchRequest, BenchResult, format_table, run_bench, write_results
    from edge_dfd.modelling.models import ARCHS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--formats", default="all")
    ap.add_argument("--data", default=str(FACES140K) if have_split(FACES140K) else None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--calib-size", type=int, default=64)
    ap.add_argument("--verify-size", type=int, default=32)
    ap.add_argument("--work", default=str(RUNS / "bench_archs"), help="models + conversion cache")
    ap.add_argument("--exports", default=None,
                    help="folder with <arch>/<arch><tag>.tflite|.onnx files already exported (e.g. kept from "
                         "python -m benchmarks.convert): measure those instead of converting again")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    formats = args.formats if args.data else "keras,tflite-fp32,tflite-fp16,onnx"
    rows, machine, notes, settings = [], None, [], None
    for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
        t0 = time.perf_counter()
        print(f"== {arch}", file=sys.stderr)
        exported = exported_files(args.exports, arch, formats) if args.exports else []
        if exported:
            res = run_bench(BenchRequest(models=tuple(exported), data=args.data, split="test", threads=args.threads,
                                         warmup=args.warmup, runs=args.runs, out_dir=work))
        else:
            src = build(arch, args.size, work)
            res = run_bench(BenchRequest(models=(src,), data=args.data, split="test", formats=formats,
                                         threads=args.threads, warmup=args.warmup, runs=args.runs, out_dir=work,
                                         convert_kwargs={"calib_size": args.calib_size,
                                                         "verify_size": args.verify_size}))
        rows += res.rows
        machine, notes, settings = res.machine, res.notes, res.settings
        print(format_table(res), file=sys.stderr)
        print(f"   {arch}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    need(bool(rows), "at least one architecture to measure (--archs is empty)", "name --archs A,B")
    run = [a.strip() for a in args.archs.split(",") if a.strip()]
    kept = earlier_rows(Path(args.out) / "bench_archs.json", run)
    if kept:
        notes = notes + [f"rows of {', '.join(sorted({arch_of(r.model) for r in kept}))} kept from an earlier call"]
    result = BenchResult(machine, kept + rows, notes + [
        "untrained heads (weights none): accuracy is chance level; these rows measure speed, size, memory"],
        {**settings, "archs": args.archs, "size": args.size})
    # written once, when every arch is measured: a stopped run never leaves a partial table
    write_results(result, args.out, stem="bench_archs", plot=Path(args.out) / "bench_archs_pareto.png")
    print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
