"""Conversion benchmark: time, file size and parity of every export format for every architecture,
plus a calibration-size sweep (how many images int8 calibration needs).

    python -m benchmarks.convert                       # all archs at 256x256, sweep if a trained model exists
    python -m benchmarks.convert --archs cnn,mobilenet_v3_small --no-sweep

Per-arch models use ``weights="none"`` (no ImageNet download here), woken up by ``wake_up``
(BatchNorm statistics from one generated batch, random Dense head) so that the output is not a
constant: the numbers measure the converters, not detection quality. Integer formats are
calibrated on the shared 140k sample's valid split (``--calib-data``); without it only the float
formats run. The sweep converts a TRAINED model (default: the bundled default detector) with
25/50/100 calibration images from ``valid`` and scores each int8 file on the whole ``test`` split
against the Keras model (fixed held-out set, same for every size). ``--merge`` keeps the rows of
architectures not benchmarked in this call and the previous sweep when this call runs none - always: a call never
removes a committed table (``--merge`` is the default and kept for old commands). The results are written once,
when the call is complete; a sweep without labelled images stops first with one line (``--calib-data DIR``).

Writes benchmarks/results/convert.json and convert.md (with machine facts).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import FACES140K, REPO, RESULTS, have_split, machine_facts, need, write_results


def wake_up(model, x):
    """Give an untrained (weights none) model a non-constant output: BatchNorm statistics from one batch
    (momentum 0, one training-mode pass) and a random Dense head. Untrained Keras applications otherwise
    collapse their features to ~0 and output a constant, which would make parity checks trivial."""
    import keras

    bns = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    saved = [la.momentum for la in bns]
    for la in bns:
        la.momentum = 0.0
    model(x.astype("float32"), training=True)
    for la, mom in zip(bns, saved):
        la.momentum = mom
    head = [la for la in model.layers if isinstance(la, keras.layers.Dense)][-1]
    kernel, bias = head.get_weights()
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(0, 3.0 / np.sqrt(kernel.shape[0]), kernel.shape).astype("float32"), bias])


SWEEP_MODEL = REPO / "edge_dfd" / "assets" / "default" / "detector.keras"  # the bundled, trained detector


def bench_arch(arch: str, size: int, calib_data, calib_size: int, verify_size: int, work: Path,
               formats: str | None = None) -> list[dict]:
    import keras

    from edge_dfd.export.convert import convert_model
    from edge_dfd.export.imagesets import probe_inputs
    from edge_dfd.modelling.models import build_model

    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    model = build_model(arch, img_size=size, weights="none")
    wake_up(model, probe_inputs(16, size, seed=11))
    path = work / f"{arch}.keras"
    model.save(path)
    build_s = time.perf_counter() - t0
    formats = formats or ("all" if calib_data else "tflite-fp32,tflite-fp16,onnx")
    t0 = time.perf_counter()
    results = convert_model(path, formats, out_dir=work / arch, calib_data=calib_data, calib_size=calib_size,
                            verify_size=verify_size, progress=lambda m: print(f"  [{arch}] {m}", file=sys.stderr))
    total = time.perf_counter() - t0
    rows = []
    for r in results:
        d = r.to_dict()
        d.update(arch=arch, size=size, params=int(model.count_params()), keras_bytes=path.stat().st_size,
                 build_seconds=round(build_s, 1), call_seconds=round(total, 1))
        rows.append(d)
    return rows


def calibration_sweep(model_path: Path, data: Path, sizes, work: Path) -> list[dict]:
    from edge_dfd.core.meta import read_meta
    from edge_dfd.export.convert import compare, convert_model, keras_predict
    from edge_dfd.images.data import load_split
    from edge_dfd.images.preprocess import load_image
    from edge_dfd.modelling.kerasio import load_keras, model_input_size
    from edge_dfd.runtime import load_model

    model = load_keras(model_path)
    size = model_input_size(model)
    threshold = read_meta(model_path).threshold
    test = load_split(data, "test")
    x = np.stack([load_image(r.path, size) for r in test])
    y = np.array([r.is_fake for r in test])
    p_ref = keras_predict(model, x)
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        results = convert_model(model_path, "tflite-int8,onnx-int8", out_dir=work / f"calib{n}",
                                calib_data=data, calib_size=n, verify_size=20)
        secs = time.perf_counter() - t0
        for r in results:
            nums = compare(p_ref, load_model(r.path).predict(x), threshold, y)
            rows.append({"calib_size": n, "format": r.format, "test_n": nums["n"],
                         "max_abs_diff": nums["max_abs_diff"], "mean_abs_diff": nums["mean_abs_diff"],
                         "agreement": nums["agreement"], "accuracy_keras": nums["accuracy_keras"],
                         "accuracy_export": nums["accuracy_export"], "verified_ok": r.ok, "seconds": round(secs, 1)})
    return rows


def _f(v, spec):
    return "-" if v is None else format(v, spec)


def markdown(doc: dict) -> str:
    m = doc["machine"]
    out = ["# Conversion benchmark", "",
           f"Machine: {m['cpu']} ({m['usable_cores']} usable cores, {m['memory_gb']} GiB), {m['os']}, "
           f"Python {m['python']}; "
           f"tensorflow {m['versions'].get('tensorflow-cpu') or m['versions'].get('tensorflow')}, "
           f"tf2onnx {m['versions'].get('tf2onnx')}, onnxruntime {m['versions'].get('onnxruntime')}, "
           f"ai-edge-litert {m['versions'].get('ai-edge-litert')}.", "",
           f"Command: `{doc['command']}`", "", doc["notes"], "",
           *([f"Rows of archs not run in the last call are kept from an earlier call: {doc['earlier_notes']}", ""]
             if doc.get("earlier_notes") else []),
           "## Per architecture", "",
           "| arch | size | params | format | file MB | convert s | max abs dP | mean abs dP | agreement | ok |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["archs"]:
        out.append(f"| {r['arch']} | {r['size']} | {r['params']:,} | {r['format']} | {r['bytes'] / 1e6:.2f} | "
                   f"{r['seconds']:.1f} | {_f(r['max_abs_diff'], '.2e')} | {_f(r['mean_abs_diff'], '.2e')} | "
                   f"{_f(r['agreement'], '.3f')} | {'yes' if r['ok'] else 'NO: ' + (r['error'] or '')[:80]} |")
    if doc.get("sweep"):
        out += ["", f"## Calibration-size sweep ({doc['sweep_model']})", "",
                "Each int8 file is scored on the whole test split against the Keras model "
                "(tflite-int8-io uses the same calibrator as tflite-int8 and gives the same numbers).", "",
                "| calib images | format | test n | max abs dP | mean abs dP | agreement | acc Keras | acc export |",
                "|---|---|---|---|---|---|---|---|"]
        for r in doc["sweep"]:
            out.append(f"| {r['calib_size']} | {r['format']} | {r['test_n']} | {r['max_abs_diff']:.3f} | "
                       f"{r['mean_abs_diff']:.4f} | {r['agreement']:.3f} | {_f(r['accuracy_keras'], '.3f')} | "
                       f"{_f(r['accuracy_export'], '.3f')} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    from edge_dfd.modelling.models import ARCHS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--calib-data", default=str(FACES140K) if have_split(FACES140K, "valid") else None,
                    help="labelled images (140k layout) for int8 calibration and the sweep [default: the shared "
                         "140k sample when present]")
    ap.add_argument("--calib-size", type=int, default=50)
    ap.add_argument("--verify-size", type=int, default=50)
    ap.add_argument("--sweep-model", default=str(SWEEP_MODEL))
    ap.add_argument("--sweep-sizes", default="25,50,100")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--merge", action="store_true", help="(the default) keep earlier rows of archs not run now")
    ap.add_argument("--formats", default=None, help="formats to convert (default: all, or the float ones "
                                                     "without --calib-data)")
    ap.add_argument("--note", default=None, help="a sentence added to the results' notes")
    ap.add_argument("--keep", default=None, help="write the exports here (kept) instead of a temporary folder")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    doc = {
        "command": "python -m benchmarks.convert " + " ".join(argv if argv is not None else sys.argv[1:]),
        "notes": (f"Per-arch models: weights none, BatchNorm statistics from 16 generated images + random "
                  f"Dense head (output not constant), {args.size}x{args.size}; "
                  f"int8 calibrated on {args.calib_size} and verified on {args.verify_size} images of "
                  f"{args.calib_data}:valid. 'convert s' includes verification; the one SavedModel export "
                  "per call is charged to the first format. Timings on a shared 2-core machine."),
        "machine": machine_facts(),
        "archs": [],
        "sweep": [],
    }
    out = Path(args.out)
    run_archs = [a for a in args.archs.split(",") if a]
    sweep_model = Path(args.sweep_model)
    if not args.no_sweep:  # check before anything runs: a sweep needs the trained model and labelled images
        need(sweep_model.is_file(), f"the trained model to sweep ({sweep_model} is missing)",
             "give --sweep-model FILE.keras or pass --no-sweep")
        need(bool(args.calib_data) and have_split(Path(args.calib_data), "valid")
             and have_split(Path(args.calib_data), "test"),
             f"labelled images with valid and test splits for the calibration sweep ({args.calib_data or 'none given'})",
             "give --calib-data DIR (140k layout; the shared 140k sample is used when EDGE_DFD_SHARED_DATA or "
             "../shared/data holds it) or pass --no-sweep")
    if not run_archs and args.no_sweep:
        need(False, "something to run (--archs is empty and --no-sweep is given)", "name --archs or drop --no-sweep")
    if (out / "convert.json").is_file():  # keep the other archs' rows and the sweep this call does not redo
        previous = json.loads((out / "convert.json").read_text())
        doc["archs"] = [r for r in previous.get("archs", []) if r["arch"] not in run_archs]
        doc["command"] = previous["command"] + " ; " + doc["command"]
        if args.no_sweep:
            doc["sweep"], doc["sweep_model"] = previous.get("sweep", []), previous.get("sweep_model")
        doc["earlier_notes"] = previous.get("notes")
    if args.note:
        doc["notes"] += " " + args.note
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)  # --keep: exports outlive this call
        work.mkdir(parents=True, exist_ok=True)
        for arch in run_archs:
            print(f"== {arch}", file=sys.stderr)
            doc["archs"] += bench_arch(arch, args.size, args.calib_data, args.calib_size, args.verify_size, work,
                                       args.formats)
        if not args.no_sweep:
            print(f"== calibration sweep on {sweep_model}", file=sys.stderr)
            doc["sweep_model"] = str(sweep_model.relative_to(REPO) if sweep_model.is_relative_to(REPO) else sweep_model)
            sizes = [int(s) for s in args.sweep_sizes.split(",")]
            doc["sweep"] = calibration_sweep(sweep_model, Path(args.calib_data), sizes, Path(tmp))
    _write(out, doc)
    print(markdown(doc))
    return 0


def _write(out: Path, doc: dict) -> None:
    write_results({out / "convert.json": doc, out / "convert.md": markdown(doc)}, complete=bool(doc["archs"]))


if __name__ == "__main__":
    sys.exit(main())
