"""ONNX Runtime int8 quantisation variants of the bundled default model, scored against its fp32 ONNX file.

    python -m benchmarks.onnx_int8_variants                 # every variant (about 5 min each on 2 cores)
    python -m benchmarks.onnx_int8_variants --variants base,dw_full
    python -m benchmarks.onnx_int8_variants --variants dw_full,full8 --float-qdq   # + the float QDQ path

For each variant: quantize_static (QDQ, per-channel, MinMax) on the same 200 calibration images `edge-dfd convert`
uses (both shared sets' valid splits), then batch-1 latency (median of 20, 2 threads) and, on the valid and
test splits of faces140k-sample and ffhq-tpdne-128: mean / max |dP| vs fp32, verdict flips at the Keras threshold,
accuracy and AUC. Writes benchmarks/results/onnx_int8_variants.{json,md} (machine facts included). Needs ../shared/data.
Why: ONNX Runtime's u8 x s8 kernels saturate on x86 CPUs without VNNI (VPMADDUBSW), which forces 7-bit weights
(`reduce_range`); this measures which layers can keep 8 bits and what that buys. The winner (`dw_full`) is what
edge_dfd.converters.onnx does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks import quality as Q
from benchmarks.common import latency_ms, machine_facts
from edge_dfd.convert import select_images
from edge_dfd.converters.onnx import depthwise_weights, range_overrides
from edge_dfd.runtime.onnx import QDQ_IN_FLOAT

SRC = Q.REPO / "edge_dfd" / "assets" / "default" / "detector.onnx"
KEYS = [f"{s}_{sp}" for s in Q.SETS for sp in ("valid", "test")]
VARIANTS = {  # name: (what, quantize_static overrides; "dw"/"stem" are resolved per graph below)
    "base": ("7-bit weights everywhere (reduce_range; the converter before 2026-11-26)", {}),
    "dw_full": ("depthwise weights full 8-bit, 7-bit elsewhere (onnx-int8)", {"dw": "full"}),
    "s8s8": ("int8 activations, full 8-bit weights", {"activation_type": "QInt8", "reduce_range": False}),
    "conv_only": ("only Conv nodes quantised, 7-bit", {"op_types_to_quantize": ["Conv"]}),
    "dw_float": ("depthwise convolutions left in float, 7-bit elsewhere", {"dw": "float"}),
    "stem_float": ("full 8-bit weights, stem convolutions left in float", {"stem": "float", "reduce_range": False}),
    "stem_rr": ("full 8-bit weights except the stem convolutions (7-bit)", {"stem": "rr", "reduce_range": False}),
    "excl_head": ("7-bit everywhere, pooled taps + standardise + head left in float", {"head": "float"}),
    "full8": ("full 8-bit weights everywhere (onnx-int8-arm)", {"reduce_range": False}),
}
OUT = Q.RESULTS / "onnx_int8_variants"


def stems(model) -> list:
    """Conv nodes with no Conv ancestor (the layers that see the normalised image)."""
    prod = {o: n for n in model.graph.node for o in n.output}
    memo: dict = {}

    def conv_above(t):
        if t not in memo:
            memo[t] = False
            n = prod.get(t)
            memo[t] = n is not None and (n.op_type == "Conv" or any(conv_above(i) for i in n.input))
        return memo[t]

    return [n for n in model.graph.node if n.op_type == "Conv" and not conv_above(n.input[0])]


def kwargs(pre: Path, cfg: dict) -> dict:
    import onnx
    from onnxruntime import quantization as q

    cfg, m = dict(cfg), onnx.load(str(pre))
    kw = dict(quant_format=q.QuantFormat.QDQ, per_channel=True, activation_type=q.QuantType.QUInt8,
              weight_type=q.QuantType.QInt8, calibrate_method=q.CalibrationMethod.MinMax, reduce_range=True,
              nodes_to_exclude=[], extra_options={})
    dw, stem, head = cfg.pop("dw", None), cfg.pop("stem", None), cfg.pop("head", None)
    if "activation_type" in cfg:
        cfg["activation_type"] = getattr(q.QuantType, cfg["activation_type"])
    kw.update(cfg)
    inits = {i.name: i for i in m.graph.initializer}
    if dw == "full":
        kw["extra_options"]["TensorQuantOverrides"] = range_overrides(depthwise_weights(m), False)
    elif dw == "float":
        names = set(depthwise_weights(m))
        kw["nodes_to_exclude"] += [n.name for n in m.graph.node if n.op_type == "Conv" and n.input[1] in names]
    if stem == "float":
        kw["nodes_to_exclude"] += [n.name for n in stems(m)]
    elif stem == "rr":
        kw["extra_options"]["TensorQuantOverrides"] = range_overrides(
            {n.input[1]: int(inits[n.input[1]].dims[0]) for n in stems(m)}, True)
    if head == "float":
        kw["nodes_to_exclude"] += [n.name for n in m.graph.node
                                   if any(k in n.name for k in ("std_", "gap_", "logit", "p_fake", "feat"))]
    return kw


def session(path, qdq_in_float: bool = False):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    if qdq_in_float:  # what edge_dfd.runtime.onnx does for onnx-int8-arm on x86 without VNNI
        o.add_session_config_entry(*QDQ_IN_FLOAT)
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def run(s, x):
    n = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {n: x[i:i + 32].astype(np.float32)})[0].ravel() for i in range(0, len(x), 32)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--float-qdq", action="store_true",
                    help="also score each variant with QDQ fusion off (Quantize/DequantizeLinear + float kernels: the "
                         "arithmetic of int8 kernels that cannot saturate, i.e. ARM64 / VNNI) and record how far it is "
                         "from this CPU's int8 kernels")
    args = ap.parse_args(argv)
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from sklearn.metrics import roc_auc_score

    from edge_dfd.fsutil import atomic_write_json, atomic_write_text
    from edge_dfd.meta import read_meta

    names = [v for v in args.variants.split(",") if v]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        raise SystemExit(f"unknown variant(s) {bad}; known: {', '.join(VARIANTS)}")
    thr = read_meta(SRC).threshold
    work = Path(tempfile.mkdtemp(prefix="onnx-int8-variants-"))
    calib, _ = select_images(Q.calib_mix_dir(), Q.INPUT_SIZE, 200, 100)
    data = {f"{s}_{sp}": (Q.load_images(s, sp), Q.labels(s, sp)) for s in Q.SETS for sp in ("valid", "test")}
    pre = work / "pre.onnx"
    quant_pre_process(str(SRC), str(pre), skip_symbolic_shape=True)
    ref = {k: run(session(pre), x) for k, (x, _) in data.items()}
    prev = json.loads((OUT.with_suffix(".json")).read_text()) if OUT.with_suffix(".json").is_file() else {}
    rows = {r["name"]: r for r in prev.get("rows", [])}
    for name in names:
        what, cfg = VARIANTS[name]
        out = work / f"{name}.onnx"
        in_name = session(pre).get_inputs()[0].name

        class Reader(q.CalibrationDataReader):
            def __init__(self):
                self.it = iter(calib.x[i:i + 1].astype(np.float32) for i in range(len(calib.x)))

            def get_next(self, in_name=in_name):
                x = next(self.it, None)
                return None if x is None else {in_name: x}

        t0 = time.time()
        q.quantize_static(str(pre), str(out), Reader(), **kwargs(pre, cfg))
        row = {"name": name, "what": what, "quantize_s": round(time.time() - t0),
               "mb": round(out.stat().st_size / 1e6, 1), "time": time.strftime("%Y-%m-%d %H:%M")}
        p_int8 = {}
        for mode in ((False, True) if args.float_qdq else (False,)):
            s, x1 = session(out, mode), data["140k_test"][0][:1].astype(np.float32)
            ts = latency_ms(SimpleNamespace(predict=lambda x, s=s, n=in_name: s.run(None, {n: x})), x1, warmup=3, runs=20)
            r = row.setdefault("float_qdq", {}) if mode else row
            r["ms"] = round(float(np.median(ts)), 1)
            for k, (x, y) in data.items():
                p = run(s, x)
                r[k] = {"mean_dp": round(float(np.abs(p - ref[k]).mean()), 4),
                        "max_dp": round(float(np.abs(p - ref[k]).max()), 3),
                        "flips": int(((p >= thr) != (ref[k] >= thr)).sum()),
                        "acc": round(float(((p >= thr) == (y == 1)).mean()), 3),
                        "acc_fp32": round(float(((ref[k] >= thr) == (y == 1)).mean()), 3),
                        "auc": round(float(roc_auc_score(y, p)), 4)}
                if mode:  # how far this CPU's int8 kernels are from the non-saturating arithmetic
                    r[k]["mean_dp_vs_int8_kernels"] = round(float(np.abs(p - p_int8[k]).mean()), 4)
                else:
                    p_int8[k] = p
        rows[name] = row
        print(json.dumps(row), flush=True)
    doc = {"command": "python -m benchmarks.onnx_int8_variants", "machine": machine_facts(threads=2),
           "threshold": thr, "rows": [rows[n] for n in VARIANTS if n in rows]}
    atomic_write_json(OUT.with_suffix(".json"), doc)
    atomic_write_text(OUT.with_suffix(".md"), markdown(doc))
    print(markdown(doc))
    return 0


def markdown(doc: dict) -> str:
    lines = ["# ONNX Runtime int8 variants of the bundled default model", "",
             f"Command: `{doc['command']}`; machine: {doc['machine'].get('cpu')}, "
             f"flags {' '.join(doc['machine'].get('cpu_flags', []))} (no VNNI), onnxruntime {doc['machine'].get('versions', {}).get('onnxruntime')}; accuracy at the Keras threshold {doc['threshold']:.4f}.",
             "", "Mean |dP| / verdict flips vs the fp32 ONNX file on the valid splits (150 + 510 images); test "
             "accuracy (fp32: 0.900 / 0.941); batch-1 latency, median of 20, 2 threads.", "",
             "| variant | what | ms | 140k valid mean dP / flips | tpdne valid mean dP / flips | 140k test acc / AUC | tpdne test acc / AUC |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        a, b, c, d = (r[k] for k in ("140k_valid", "tpdne_valid", "140k_test", "tpdne_test"))
        lines.append(f"| {r['name']} | {r['what']} | {r['ms']} | {a['mean_dp']:.3f} / {a['flips']} | "
                     f"{b['mean_dp']:.3f} / {b['flips']} | {c['acc']:.3f} / {c['auc']:.3f} | {d['acc']:.3f} / {d['auc']:.3f} |")
        f = r.get("float_qdq")
        if f:
            a, b, c, d = (f[k] for k in ("140k_valid", "tpdne_valid", "140k_test", "tpdne_test"))
            lines.append(f"| {r['name']}, QDQ in float | the same file, QDQ fusion off = non-saturating int8 arithmetic "
                         f"(ARM64 / VNNI); mean dP from this CPU's int8 kernels {a['mean_dp_vs_int8_kernels']:.3f} / "
                         f"{b['mean_dp_vs_int8_kernels']:.3f} | {f['ms']} | {a['mean_dp']:.3f} / {a['flips']} | "
                         f"{b['mean_dp']:.3f} / {b['flips']} | {c['acc']:.3f} / {c['auc']:.3f} | {d['acc']:.3f} / {d['auc']:.3f} |")
    lines += ["", "Not in the table: U8U8 (uint8 weights, no reduce_range) is accurate by construction but ran "
              "1.6 s per face here (no fast kernel); Percentile calibration ran out of memory (24 GB) on this graph."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
