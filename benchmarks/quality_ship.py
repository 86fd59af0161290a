"""Stage 3 of ``python -m benchmarks.quality`` (``ship``): build the selected Keras model (frozen features + head,
or a ``tools/finetune_torch.py`` variant), threshold on valid, export every format, score each on test and write
the teacher into runs/teacher/ and results/quality.{json,md}."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.common import REPO, RESULTS, SETS
from benchmarks.quality_card import COMMAND_FINETUNED, COMMAND_FROZEN, results_markdown
from benchmarks.quality_features import (
    ALL_CROPS,
    CACHE,
    INPUT_SIZE,
    TEACHER_DIR,
    VIEW_SIZE,
    feat_path,
    labels,
    load_images,
    log,
)
from benchmarks.quality_heads import load_feats, predict_head, score, select, tap_slice

SHIP_FORMATS = ("tflite-fp32", "tflite-fp16", "tflite-int8", "tflite-int8-io", "onnx", "onnx-int8", "onnx-int8-arm")
STAGING = REPO / "runs" / "quality_ship"


def latency_ms(backend, image: np.ndarray, runs: int = 30) -> float:
    """Median per-face latency (batch 1) after 3 warm-up runs (the bench harness's loop)."""
    return float(np.median(common.latency_ms(backend, image[None], warmup=3, runs=runs)))


def calib_mix_dir() -> Path:
    """Both sets' valid images in one 140k-layout folder (tools.release_helpers.calib_mix_dir)."""
    from tools.release_helpers import calib_mix_dir as mix

    return mix([str(SETS[s]) for s in SETS])


def build_selected(name: str | None):
    """(row, keras model) of the approach ``name`` (default: the one selected on valid by `heads`)."""
    from edge_dfd.modelling.backbones import multicrop_model

    H = json.loads((CACHE / "heads.json").read_text())
    name = name or H["selected"]
    row = next((r for r in H["rows"] if r["approach"] == name), None)
    if row is None:
        raise SystemExit(f"unknown approach {name!r}; known: {[r['approach'] for r in H['rows']]}")
    head = H["heads"][name]
    arch_taps = {a: tuple(t) for a, t in row["archs"].items()}
    # int8-friendly form of the same linear head: standardise each tap in the graph (train statistics),
    # then Dense(coef) with coef = kernel * sd and intercept = bias + kernel . mu (mathematically identical)
    feats = {a: load_feats(a) for a in arch_taps}
    X = select(feats, arch_taps, tuple(row["crops"]))
    Xt = np.concatenate([X[(s, "train")].reshape(-1, X[(s, "train")].shape[-1]) for s in SETS]).astype(np.float64)
    mu, sd = Xt.mean(axis=0), Xt.std(axis=0) + 1e-6
    kernel = np.array(head["kernel"])
    coef, intercept = kernel * sd, head["bias"] + float(kernel @ mu)
    model = multicrop_model(arch_taps, INPUT_SIZE, VIEW_SIZE, tuple(row["crops"]), head=(coef, intercept),
                            standardize=(mu, sd), name="edge_dfd_detector")
    return row, model


def build_finetuned(run_dir: Path, variant: str):
    """(row, keras model) from a ``tools/finetune_torch.py`` result: the torch state dicts ported layer by
    layer (``tools/port_weights.keras_weights``), the fixed standardisation and the fine-tuned head."""
    from edge_dfd.modelling.backbones import multicrop_model
    from tools.port_weights import keras_weights

    run_dir, name = Path(run_dir), variant
    report = json.loads((run_dir / "finetune.json").read_text())
    variant = report["variants"][name]
    head = np.load(run_dir / f"{name}__head.npz")
    arch_taps = {a: tuple(variant["taps"][a]) for a in variant["archs"]}
    model = multicrop_model(arch_taps, INPUT_SIZE, VIEW_SIZE, tuple(variant["crops"]), weights=None,
                            head=(head["kernel"], float(head["bias"][0])),
                            standardize=(head["mean"], head["std"]), name="edge_dfd_detector")
    for a in arch_taps:
        z = np.load(run_dir / f"{name}__{a}.npz")
        sd = {k: z[k] for k in z.files}
        backbone = model.get_layer(a)
        for layer, arrays in keras_weights(a, sd).items():
            backbone.get_layer(layer).set_weights(arrays)
    final = variant["final"]
    row = {"approach": f"{name} whole+4 quadrants, multi-depth taps, fine-tuned end to end (best epoch "
                       f"{variant['best_epoch']})",
           "archs": {a: list(t) for a, t in arch_taps.items()}, "crops": variant["crops"],
           "threshold": final["threshold"], "C": report["args"].get("head_c"), "balance_sets": True,
           "finetune": {"report": str(run_dir / "finetune.json"), "variant": name,
                        "args": report["args"], "device": report["device"], "best_epoch": variant["best_epoch"]},
           "test_140k": final["140k/test"], "test_tpdne": final["tpdne/test"], "valid_obj": final["objective"]}
    return row, model, {k: np.asarray(v) for k, v in variant["probs"].items()}


FINETUNE_DIR = REPO / "runs" / "finetune"
SET_N = {"140k": 150, "tpdne": 510}


def finetune_rows(run_dir: Path) -> list[dict]:
    """Table rows (schema of heads.json) for every variant of a tools/finetune_torch.py run: its frozen
    starting point (epoch 0: ImageNet features, logistic head C=0.01, both sets weighted equally) and the
    fine-tuned model (epoch chosen on valid)."""
    report = json.loads((Path(run_dir) / "finetune.json").read_text())
    rows = []
    for name, v in report["variants"].items():
        for label, res in (("frozen features (torch, epoch 0)", v["history"][0]),
                           (f"fine-tuned end to end (best epoch {v['best_epoch']})", v["final"])):
            row = {"approach": f"{name} whole+4 quadrants, multi-depth taps, {label}", "archs": v["taps"],
                   "crops": v["crops"], "threshold": res["threshold"], "valid_objective": res["objective"],
                   "C": float(report["args"]["head_c"]), "balance_sets": True}
            for st in SETS:
                for split in ("valid", "test"):
                    row[f"{split}_{st}"] = {"n": SET_N[st], **res[f"{st}/{split}"]}
            rows.append(row)
    return rows


def frozen_reference(row):
    """P(fake) of the cached LiteRT features + the fitted numpy head, for (set, first valid images)."""
    head = json.loads((CACHE / "heads.json").read_text())["heads"][row["approach"]]
    crops = [ALL_CROPS.index(c) for c in row["crops"]]

    def reference(s, x):
        cached = np.concatenate([np.load(feat_path(a, s, "valid"), mmap_mode="r")[:len(x)][:, crops][:, :, tap_slice(a, t)]
                                 for a, t in row["archs"].items()], axis=2)
        return predict_head(cached, np.array(head["kernel"]), head["bias"])

    return reference


def finetuned_reference(args, stored: dict):
    """(reference, tolerance): the fine-tuned torch model run on this CPU (exact, 1e-4), or - without torch -
    the run's stored probabilities (GPU fp32, possibly TF32: 1e-2)."""
    try:
        import torch

        from tools.finetune_torch import load_variant
    except ImportError:
        return (lambda s, x: stored[f"{s}/valid"][:len(x)]), 1e-2
    ref_model = load_variant(torch, args.finetuned_dir, args.finetuned)

    def reference(s, x):
        with torch.no_grad():
            return torch.sigmoid(ref_model(torch.from_numpy(x).permute(0, 3, 1, 2).float())).numpy()

    return reference, 1e-4


def load_test_sets() -> dict:
    return {s: (load_images(s, "test"), labels(s, "test")) for s in SETS}


def score_export(path: Path, fmt: str, tests: dict, threshold: float) -> dict:
    """Size, batch-1 latency and test scores of one exported file (logged)."""
    from edge_dfd.runtime import load_model

    be = load_model(path, threads=2)
    # each file at its own threshold: int8 files carry one re-matched by `convert` (see edge_dfd.export.convert)
    threshold = be.threshold if be.threshold is not None else threshold
    entry = {"bytes": path.stat().st_size, "latency_ms": latency_ms(be, tests["140k"][0][0]), "threshold": threshold}
    for s, (x, y) in tests.items():
        p = np.concatenate([be.predict(x[i:i + 32]) for i in range(0, len(x), 32)])
        entry[s] = score(y, p, threshold)
    log(f"  {fmt}: " + " ".join(f"{s} acc {entry[s]['accuracy']:.3f} auc {entry[s]['auc']:.3f}" for s in SETS)
        + f" latency {entry['latency_ms']:.1f} ms")
    return entry


def stage_ship(args) -> None:
    import shutil

    from edge_dfd.core.formats import FORMATS
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text, sha256_file
    from edge_dfd.core.machine import machine_facts
    from edge_dfd.core.meta import ModelMeta, write_meta
    from edge_dfd.export.convert import convert_model

    if args.only:
        return reship(args)
    if args.finetuned:
        row, model, ref = build_finetuned(args.finetuned_dir, args.finetuned)
        recipe = (f"tools/finetune_torch.py ({row['finetune']['device']}): {row['approach']}; "
                  f"args {row['finetune']['args']}")
    else:
        row, model = build_selected(args.approach)
        recipe = (f"benchmarks/quality.py: {row['approach']}; logistic head C={row['C']} "
                  f"balance_sets={row['balance_sets']} on frozen ImageNet features")
    log(f"shipping: {row['approach']} threshold={row['threshold']:.4f}")
    STAGING.mkdir(parents=True, exist_ok=True)
    keras_path = STAGING / "detector.keras"
    model.save(keras_path)
    arch = "+".join(row["archs"])
    meta = ModelMeta(arch=f"{arch}_multicrop", input_size=INPUT_SIZE, threshold=row["threshold"],
                     threshold_source="balanced accuracy on the valid splits of faces140k-sample + ffhq-tpdne-128",
                     training={"data": [str(SETS[s].relative_to(REPO.parent)) for s in SETS],
                               "splits": {"fit": "train (both sets)", "select+threshold": "valid (both sets)"},
                               "recipe": recipe,
                               "crops": row["crops"], "taps": row["archs"], "view_size": VIEW_SIZE})
    write_meta(keras_path, meta)
    # parity: the Keras graph vs its reference on 16 valid images per set
    reference, tol = (finetuned_reference(args, ref) if args.finetuned else (frozen_reference(row), 1e-3))
    parity = {}
    for s in SETS:
        x = load_images(s, "valid")[:16]
        parity[s] = float(np.abs(np.asarray(model(x.astype(np.float32))).ravel() - reference(s, x)).max())
    log(f"Keras vs reference, max |dp| on 16 valid images per set: {parity}")
    if max(parity.values()) > tol:
        raise SystemExit(f"the Keras model disagrees with the fitted head ({parity}); not shipping")
    log("converting ...")
    results = convert_model(keras_path, list(SHIP_FORMATS), out_dir=STAGING, calib_data=calib_mix_dir(),
                            calib_size=args.calib_size, verify_size=args.verify_size, progress=log)
    conv = [r.to_dict() for r in results]
    for r in conv:
        log(f"  {r['format']}: ok={r['ok']} max|dp|={r.get('max_abs_diff')} agreement={r.get('agreement')} "
            f"{(r.get('bytes') or 0) / 1e6:.1f} MB {r.get('error') or ''}")
    tests = load_test_sets()
    scores = {}
    for fmt in ("keras", *SHIP_FORMATS):
        path = STAGING / FORMATS[fmt].filename("detector")
        if not path.is_file() or (fmt == "keras" and not args.keras_eval):
            continue
        scores[fmt] = score_export(path, fmt, tests, row["threshold"])
    dest = TEACHER_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for f in STAGING.glob("detector*"):
        if f.suffix in (".keras", ".tflite", ".onnx"):
            shutil.copy2(f, dest / f.name)
    H = json.loads((CACHE / "heads.json").read_text())
    out = {"command": COMMAND_FINETUNED if args.finetuned else COMMAND_FROZEN,
           "machine": machine_facts(threads=2), "platform": platform.platform(),
           "selected": row["approach"], "approaches": H["rows"] + (finetune_rows(args.finetuned_dir)
                                                        if (args.finetuned_dir / "finetune.json").is_file() else []),
           "shipped": scores, "conversion": conv, "parity_vs_reference": parity,
           "sha256": {f.name: sha256_file(f) for f in sorted(dest.glob("detector*"))}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "quality.json", out)
    atomic_write_text(RESULTS / "quality.md", results_markdown(out))
    log(f"wrote {dest} and {RESULTS / 'quality.md'}")


def reship(args) -> None:
    """``ship --only FORMATS``: re-convert and re-score some formats of the model already staged by
    ``ship`` (same detector.keras, so every file keeps the same source sha256), then update the bundle
    and results/quality.json in place."""
    import shutil

    from edge_dfd.core.formats import FORMATS
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text, sha256_file
    from edge_dfd.export.convert import convert_model

    out = json.loads((RESULTS / "quality.json").read_text())
    row = next(r for r in out["approaches"] if r["approach"] == out["selected"])
    keras_path = STAGING / "detector.keras"
    formats = [f for f in args.only.split(",") if f]
    results = convert_model(keras_path, formats, out_dir=STAGING, calib_data=calib_mix_dir(),
                            calib_size=args.calib_size, verify_size=args.verify_size, progress=log)
    conv = {r["format"]: r for r in out["conversion"]}
    tests = load_test_sets()
    dest = TEACHER_DIR
    for r in results:
        d = r.to_dict()
        conv[d["format"]] = d
        log(f"  {d['format']}: ok={d['ok']} max|dp|={d.get('max_abs_diff')} mean|dp|={d.get('mean_abs_diff')} "
            f"agreement={d.get('agreement')} {d.get('error') or ''}")
        path = STAGING / FORMATS[d["format"]].filename("detector")
        out["shipped"][d["format"]] = score_export(path, d["format"], tests, row["threshold"])
        shutil.copy2(path, dest / path.name)
    out["conversion"] = [conv[f] for f in SHIP_FORMATS if f in conv]
    out["sha256"] = {f.name: sha256_file(f) for f in sorted(dest.glob("detector*"))}
    out.setdefault("reshipped", []).append({"formats": formats, "time": time.strftime("%Y-%m-%d %H:%M")})
    atomic_write_json(RESULTS / "quality.json", out)
    atomic_write_text(RESULTS / "quality.md", results_markdown(out))
    log(f"updated {dest} and {RESULTS / 'quality.json'}")
