"""Reproducible recipe for the bundled default detector (issue 6): every approach tried, scored on test.

Stages (each cached under runs/cache/, git-ignored; seeds fixed; --budget-min caps each stage's wall time)::

    python benchmarks/quality.py features   # pooled multi-tap features of every crop, both backbones (LiteRT fp32)
    python benchmarks/quality.py heads      # logistic heads on cached features: approaches table, select on valid
    python benchmarks/quality.py ship       # build the chosen Keras model, threshold on valid, export, score
                                            #   every format on test, write edge_dfd/assets/default + results

Training data: the train splits of BOTH shared sets (faces140k-sample: StyleGAN vs FFHQ, 256 px;
ffhq-tpdne-128: StyleGAN2 vs FFHQ, 128 px, upsampled to the model's 256 px input by edge_dfd.preprocess).
Selection uses only the valid splits; test splits are scored once per approach for the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_dfd.backbones import BACKBONES, CROPS, TAP_CHANNELS, TAPS  # noqa: E402

SHARED = Path(os.environ.get("EDGE_DFD_SHARED_DATA", REPO.parent / "shared" / "data"))
SETS = {"140k": SHARED / "faces140k-sample", "tpdne": SHARED / "ffhq-tpdne-128"}
SPLITS = ("train", "valid", "test")
CACHE = REPO / "runs" / "cache"
RESULTS = REPO / "benchmarks" / "results"
INPUT_SIZE, VIEW_SIZE = 256, 224
ALL_CROPS = tuple(CROPS)
SEED = 0


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def records(set_name: str, split: str):
    from edge_dfd.data import load_split

    return load_split(SETS[set_name], split)


def labels(set_name: str, split: str) -> np.ndarray:
    return np.array([r.is_fake for r in records(set_name, split)], np.int32)


def load_images(set_name: str, split: str) -> np.ndarray:
    from edge_dfd.preprocess import load_image

    return np.stack([load_image(r.path, INPUT_SIZE) for r in records(set_name, split)])


# ------------------------------------------------------------------ stage 1: features


def tflite_interpreter(keras_model, threads: int = 2):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    it = Interpreter(model_content=conv.convert(), num_threads=threads)
    it.allocate_tensors()
    return it


def run_tflite(it, images: np.ndarray, budget_end: float) -> np.ndarray:
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for i, im in enumerate(images):
        if time.time() > budget_end:
            raise SystemExit(f"time budget exhausted after {i} images; rerun (cached splits are kept)")
        it.set_tensor(inp["index"], im[None].astype(np.float32))
        it.invoke()
        res.append(it.get_tensor(out["index"])[0].copy())
    return np.stack(res)


def feat_path(arch, set_name, split) -> Path:
    return CACHE / f"feat_{arch}_{set_name}_{split}.npy"


def stage_features(args) -> None:
    from edge_dfd.backbones import multicrop_features

    end = time.time() + 60 * args.budget_min
    CACHE.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        it = None
        for s in SETS:
            for split in SPLITS:
                p = feat_path(arch, s, split)
                if p.is_file():
                    continue
                if it is None:
                    it = tflite_interpreter(multicrop_features(arch, INPUT_SIZE, VIEW_SIZE, ALL_CROPS))
                t0 = time.time()
                imgs = load_images(s, split)
                f = run_tflite(it, imgs, end)
                np.save(p, f.astype(np.float32))
                log(f"{arch} {s}/{split}: {f.shape} in {time.time() - t0:.0f}s "
                    f"({(time.time() - t0) / len(imgs) * 1000:.0f} ms/image)")



# ------------------------------------------------------------------ stage 2: logistic heads on cached features

C_GRID = (0.003, 0.01, 0.03, 0.1)


def load_feats(arch: str) -> dict:
    """{(set, split): (N, n_crops, D) float32} from the cache (SystemExit naming the missing stage)."""
    out = {}
    for s in SETS:
        for split in SPLITS:
            p = feat_path(arch, s, split)
            if not p.is_file():
                raise SystemExit(f"{p} missing: run `python benchmarks/quality.py features` first")
            out[(s, split)] = np.load(p, mmap_mode="r")
    return out


def tap_slice(arch: str, taps) -> np.ndarray:
    """Column indices of ``taps`` inside the concatenated pooled-tap feature vector."""
    edges = np.cumsum((0,) + TAP_CHANNELS[arch])
    idx = [np.arange(edges[TAPS[arch].index(t)], edges[TAPS[arch].index(t) + 1]) for t in taps]
    return np.concatenate(idx)


def select(feats: dict, arch_taps: dict, crops) -> dict:
    """{(set, split): (N, len(crops), D')} restricted to crops and taps, archs concatenated on D."""
    ci = [ALL_CROPS.index(c) for c in crops]
    out = {}
    for key in next(iter(feats.values())):
        parts = [np.asarray(feats[a][key])[:, ci][:, :, tap_slice(a, t)] for a, t in arch_taps.items()]
        out[key] = np.concatenate(parts, axis=2)
    return out


def fit_head(X: dict, y: dict, C: float, balance_sets: bool, per_crop: bool = True):
    """Standardised logistic regression on train crops (both sets), folded to (kernel, bias) on raw features."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for s in SETS:
        f = X[(s, "train")]
        n, k, d = f.shape
        if per_crop:
            xs.append(f.reshape(n * k, d))
            ys.append(np.repeat(y[(s, "train")], k))
        else:
            xs.append(f.mean(axis=1))
            ys.append(y[(s, "train")])
        ws.append(np.full(len(ys[-1]), 1.0 / len(ys[-1]) if balance_sets else 1.0))
    Xt, yt, wt = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    wt = wt / wt.mean()
    mu, sd = Xt.mean(axis=0), Xt.std(axis=0) + 1e-6
    clf = LogisticRegression(C=C, max_iter=300, random_state=SEED)
    clf.fit((Xt - mu) / sd, yt, sample_weight=wt)
    kernel = clf.coef_[0] / sd
    bias = clf.intercept_[0] - float((clf.coef_[0] * mu / sd).sum())
    return kernel.astype(np.float64), float(bias)


def predict_head(f: np.ndarray, kernel, bias) -> np.ndarray:
    """Mean logit over crops (= the in-graph Average of a shared Dense) -> P(fake)."""
    z = (np.asarray(f, np.float64) @ kernel + bias).mean(axis=1)
    return 1.0 / (1.0 + np.exp(-z))


def score(y, p, threshold) -> dict:
    from edge_dfd.metrics import binary_report

    r = binary_report(y, p, threshold)
    return {k: r[k] for k in ("n", "accuracy", "auc", "ap", "eer", "balanced_accuracy")}


def valid_objective(y, P) -> float:
    """Selection score on VALID only: mean over the two sets of (AUC + accuracy at the valid threshold)."""
    from edge_dfd.metrics import choose_threshold
    from sklearn.metrics import roc_auc_score

    yv = np.concatenate([y[(s, "valid")] for s in SETS])
    pv = np.concatenate([P[(s, "valid")] for s in SETS])
    t = choose_threshold(yv, pv)
    return float(np.mean([roc_auc_score(y[(s, "valid")], P[(s, "valid")])
                          + ((P[(s, "valid")] >= t) == y[(s, "valid")]).mean() for s in SETS])) / 2


def run_approach(name, feats, y, arch_taps, crops, per_crop=True, balance_grid=(False, True)):
    """Fit heads over the C grid (and set balancing), choose on valid, score every split once."""
    from edge_dfd.metrics import choose_threshold

    X = select(feats, arch_taps, crops)
    best = None
    for bal in balance_grid:
        for C in C_GRID:
            k, b = fit_head(X, y, C, bal, per_crop)
            P = {key: predict_head(X[key], k, b) for key in X}
            obj = valid_objective(y, P)
            if best is None or obj > best[0]:
                best = (obj, C, bal, k, b, P)
    obj, C, bal, k, b, P = best
    yv = np.concatenate([y[(s, "valid")] for s in SETS])
    t = choose_threshold(yv, np.concatenate([P[(s, "valid")] for s in SETS]))
    row = {"approach": name, "archs": {a: list(t_) for a, t_ in arch_taps.items()}, "crops": list(crops),
           "per_crop_training": per_crop, "C": C, "balance_sets": bal, "threshold": t, "valid_objective": obj}
    for s in SETS:
        row[f"valid_{s}"] = score(y[(s, "valid")], P[(s, "valid")], t)
        row[f"test_{s}"] = score(y[(s, "test")], P[(s, "test")], t)
    log(f"{name}: C={C} balance={bal} valid_obj={obj:.4f} "
        + " ".join(f"{s}: acc {row[f'test_{s}']['accuracy']:.3f} auc {row[f'test_{s}']['auc']:.3f}" for s in SETS))
    return row, (k, b)


def approaches(archs):
    """The approaches compared (name, {arch: taps}, crops, per_crop)."""
    quads = ("q_tl", "q_tr", "q_bl", "q_br")
    out = []
    for a in archs:
        out += [
            (f"{a} whole face, head features", {a: ("head_relu",)}, ("whole",), True),
            (f"{a} whole+4 quadrants, head features", {a: ("head_relu",)}, ("whole", *quads), True),
            (f"{a} whole+4 quadrants, multi-depth taps", {a: TAPS[a]}, ("whole", *quads), True),
            (f"{a} 6 views (+centre), multi-depth taps", {a: TAPS[a]}, ALL_CROPS, True),
            (f"{a} 4 quadrants, multi-depth taps", {a: TAPS[a]}, quads, True),
        ]
    if len(archs) > 1:
        out.append(("both backbones, whole+4 quadrants, multi-depth taps", {a: TAPS[a] for a in archs},
                    ("whole", *quads), True))
    return out


def stage_heads(args) -> None:
    feats = {a: load_feats(a) for a in args.archs}
    y = {(s, split): labels(s, split) for s in SETS for split in SPLITS}
    rows, heads = [], {}
    end = time.time() + 60 * args.budget_min
    for name, arch_taps, crops, per_crop in approaches(args.archs):
        if time.time() > end:
            log(f"time budget exhausted before '{name}'")
            break
        row, head = run_approach(name, feats, y, arch_taps, crops, per_crop)
        rows.append(row)
        heads[name] = {"kernel": head[0].tolist(), "bias": head[1]}
    best = max(rows, key=lambda r: r["valid_objective"])
    log(f"selected on valid: {best['approach']}")
    from edge_dfd.fsutil import atomic_write_json

    atomic_write_json(CACHE / "heads.json", {"rows": rows, "heads": heads, "selected": best["approach"]})


# ------------------------------------------------------------------ stage 3: ship the selected model

SHIP_FORMATS = ("tflite-fp32", "tflite-fp16", "tflite-int8", "tflite-int8-io", "onnx", "onnx-int8")
STAGING = REPO / "runs" / "quality_ship"


def latency_ms(backend, image: np.ndarray, runs: int = 30) -> float:
    """Median per-face latency (batch 1) after 3 warm-up runs."""
    for _ in range(3):
        backend.predict(image[None])
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        backend.predict(image[None])
        ts.append((time.perf_counter() - t0) * 1000)
    return float(np.median(ts))


def calib_mix_dir() -> Path:
    """A temporary 140k-layout folder (outside the repository) whose valid split is BOTH sets' valid
    images, so int8 calibration and export verification see both resolutions. Copies, not links:
    edge_dfd.data refuses paths that leave the dataset folder."""
    import csv
    import shutil
    import tempfile

    root = Path(tempfile.gettempdir()) / "edge_dfd_calib_mix"
    if (root / "valid.csv").is_file():
        return root
    base, rows = root / "real_vs_fake" / "real-vs-fake", []
    for tag in SETS:
        for r in records(tag, "valid"):
            new = Path("valid") / ("fake" if r.is_fake else "real") / f"{tag}_{r.path.name}"
            (base / new).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(r.path, base / new)
            rows.append({"": len(rows), "original_path": "", "id": f"{tag}_{r.path.stem}", "label": r.label,
                         "label_str": "real" if r.label else "fake", "path": new.as_posix()})
    with open(root / "valid.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["", "original_path", "id", "label", "label_str", "path"])
        w.writeheader()
        w.writerows(rows)
    return root


def build_selected(name: str | None):
    """(row, keras model) of the approach ``name`` (default: the one selected on valid by `heads`)."""
    from edge_dfd.backbones import multicrop_model

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


def stage_ship(args) -> None:
    import shutil

    from edge_dfd.convert import convert_model
    from edge_dfd.fsutil import atomic_write_json, atomic_write_text, sha256_file
    from edge_dfd.machine import machine_facts
    from edge_dfd.meta import ModelMeta, write_meta
    from edge_dfd.runtime import load_model

    row, model = build_selected(args.approach)
    log(f"shipping: {row['approach']} threshold={row['threshold']:.4f}")
    STAGING.mkdir(parents=True, exist_ok=True)
    keras_path = STAGING / "detector.keras"
    model.save(keras_path)
    arch = "+".join(row["archs"])
    meta = ModelMeta(arch=f"{arch}_multicrop", input_size=INPUT_SIZE, threshold=row["threshold"],
                     threshold_source="balanced accuracy on the valid splits of faces140k-sample + ffhq-tpdne-128",
                     training={"data": [str(SETS[s].relative_to(REPO.parent)) for s in SETS],
                               "splits": {"fit": "train (both sets)", "select+threshold": "valid (both sets)"},
                               "recipe": f"benchmarks/quality.py: {row['approach']}; logistic head C={row['C']} "
                                         f"balance_sets={row['balance_sets']} on frozen ImageNet features",
                               "crops": row["crops"], "taps": row["archs"], "view_size": VIEW_SIZE})
    write_meta(keras_path, meta)
    # parity: the Keras graph vs the cached LiteRT features + numpy head on 16 valid images per set
    parity = {}
    for s in SETS:
        x = load_images(s, "valid")[:16].astype(np.float32)
        cached = np.concatenate([np.load(feat_path(a, s, "valid"), mmap_mode="r")[:16][:, [ALL_CROPS.index(c) for c in row["crops"]]][:, :, tap_slice(a, t)]
                                 for a, t in row["archs"].items()], axis=2)
        head = json.loads((CACHE / "heads.json").read_text())["heads"][row["approach"]]
        parity[s] = float(np.abs(np.asarray(model(x)).ravel() - predict_head(cached, np.array(head["kernel"]), head["bias"])).max())
    log(f"Keras vs cached-feature head, max |dp| on 16 valid images per set: {parity}")
    if max(parity.values()) > 1e-3:
        raise SystemExit(f"the Keras model disagrees with the fitted head ({parity}); not shipping")
    log("converting ...")
    results = convert_model(keras_path, list(SHIP_FORMATS), out_dir=STAGING, calib_data=calib_mix_dir(),
                            calib_size=args.calib_size, verify_size=args.verify_size, progress=log)
    conv = [r.to_dict() for r in results]
    for r in conv:
        log(f"  {r['format']}: ok={r['ok']} max|dp|={r.get('max_abs_diff')} agreement={r.get('agreement')} "
            f"{(r.get('bytes') or 0) / 1e6:.1f} MB {r.get('error') or ''}")
    tests = {s: (load_images(s, "test"), labels(s, "test")) for s in SETS}
    scores = {}
    for fmt in ("keras", *SHIP_FORMATS):
        from edge_dfd.formats import FORMATS

        path = STAGING / FORMATS[fmt].filename("detector")
        if not path.is_file() or (fmt == "keras" and not args.keras_eval):
            continue
        be = load_model(path, threads=2)
        entry = {"bytes": path.stat().st_size, "latency_ms": latency_ms(be, tests["140k"][0][0])}
        for s, (x, y) in tests.items():
            p = np.concatenate([be.predict(x[i:i + 32]) for i in range(0, len(x), 32)])
            entry[s] = score(y, p, row["threshold"])
        scores[fmt] = entry
        log(f"  {fmt}: " + " ".join(f"{s} acc {entry[s]['accuracy']:.3f} auc {entry[s]['auc']:.3f}" for s in SETS)
            + f" latency {entry['latency_ms']:.1f} ms")
    dest = REPO / "edge_dfd" / "assets" / "default"
    dest.mkdir(parents=True, exist_ok=True)
    for f in STAGING.glob("detector*"):
        if f.suffix in (".keras", ".tflite", ".onnx"):
            shutil.copy2(f, dest / f.name)
    H = json.loads((CACHE / "heads.json").read_text())
    out = {"command": "python benchmarks/quality.py features && python benchmarks/quality.py heads && "
                      "python benchmarks/quality.py ship && python benchmarks/quality.py card",
           "machine": machine_facts(threads=2), "platform": platform.platform(),
           "selected": row["approach"], "approaches": H["rows"], "shipped": scores, "conversion": conv,
           "sha256": {f.name: sha256_file(f) for f in sorted(dest.glob("detector*"))}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "quality.json", out)
    atomic_write_text(RESULTS / "quality.md", results_markdown(out))
    log(f"wrote {dest} and {RESULTS / 'quality.md'}")


def _ci(acc: float, n: int) -> str:
    """± 95 % normal-approximation half-width of an accuracy over n images, in points."""
    return f"±{196 * (acc * (1 - acc) / n) ** 0.5:.1f}"


def results_markdown(out: dict) -> str:
    lines = ["# Detection quality (issue 6)", "",
             f"Command: `{out['command']}`  ",
             f"Machine: {out['machine'].get('cpu', out['machine'])}; {out['platform']}", "",
             "All rows: frozen ImageNet features (ported, bundled) + one logistic head shared by the views, "
             "trained on the train splits of BOTH sets, C / set balancing / threshold chosen on the valid splits. "
             "Test = 150 images (140k sample, 95 % CI ≈ ±4–7 pts) and 510 images (ffhq-tpdne-128, ≈ ±2 pts).", "",
             "| approach | 140k acc | 140k AUC | 140k AP | 140k EER | tpdne acc | tpdne AUC | tpdne AP | tpdne EER | valid obj |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["approaches"]:
        a, b = r["test_140k"], r["test_tpdne"]
        mark = " **(selected)**" if r["approach"] == out["selected"] else ""
        lines.append(f"| {r['approach']}{mark} | {a['accuracy']:.3f} {_ci(a['accuracy'], a['n'])} | {a['auc']:.3f} | "
                     f"{a['ap']:.3f} | {a['eer']:.3f} | {b['accuracy']:.3f} {_ci(b['accuracy'], b['n'])} | "
                     f"{b['auc']:.3f} | {b['ap']:.3f} | {b['eer']:.3f} | {r['valid_objective']:.4f} |")
    lines += ["", "## Shipped model, every format (test splits, threshold from valid)", "",
              "| format | MB | latency ms/face (batch 1, 2 threads) | 140k acc | 140k AUC | 140k EER | tpdne acc | tpdne AUC | tpdne EER |",
              "|---|---|---|---|---|---|---|---|---|"]
    for fmt, e in out["shipped"].items():
        a, b = e["140k"], e["tpdne"]
        lines.append(f"| {fmt} | {e['bytes'] / 1e6:.1f} | {e['latency_ms']:.1f} | {a['accuracy']:.3f} | {a['auc']:.3f} | "
                     f"{a['eer']:.3f} | {b['accuracy']:.3f} | {b['auc']:.3f} | {b['eer']:.3f} |")
    return "\n".join(lines) + "\n"


PI4_XNNPACK_MS = {"fp32": 46.0, "int8": 17.0}  # MobileNetV2 1.0 224, RPi 4 ARM64, 4 threads (XNNPACK README, 2022)


def pi4_factor(ours: dict) -> dict:
    """Expected slow-down on a Raspberry Pi 4 = published Pi-4 MobileNetV2 ms / our MobileNetV2 ms."""
    return {k: PI4_XNNPACK_MS[k] / v for k, v in ours.items() if v}


def backbone_latency(threads: int = 2) -> dict:
    """LiteRT ms of ONE MobileNetV2 224 view (fp32 and int8) on this machine, to scale the Pi-4 numbers."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from edge_dfd.backbones import build_backbone

    keras_model = build_backbone("mobilenet_v2", 224, "imagenet", ("head_relu",))
    rng = np.random.default_rng(SEED)
    rep = [rng.integers(0, 256, (1, 224, 224, 3)).astype(np.float32) for _ in range(8)]
    out = {}
    for kind in ("fp32", "int8"):
        conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        if kind == "int8":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([r] for r in rep)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        it = Interpreter(model_content=conv.convert(), num_threads=threads)
        it.allocate_tensors()
        i = it.get_input_details()[0]
        for _ in range(3):
            it.set_tensor(i["index"], rep[0])
            it.invoke()
        ts = []
        for _ in range(30):
            t0 = time.perf_counter()
            it.set_tensor(i["index"], rep[0])
            it.invoke()
            ts.append((time.perf_counter() - t0) * 1000)
        out[kind] = float(np.median(ts))
    return out


def stage_card(args) -> None:
    """Add the Pi-4 estimate to results/quality.json and (re)write quality.md and the MODEL_CARD."""
    from edge_dfd.fsutil import atomic_write_json, atomic_write_text

    out = json.loads((RESULTS / "quality.json").read_text())
    if "backbone_ms" not in out:
        out["backbone_ms"] = backbone_latency()
    out["pi4_factor"] = pi4_factor(out["backbone_ms"])
    out["command"] = ("python benchmarks/quality.py features && python benchmarks/quality.py heads && "
                      "python benchmarks/quality.py ship && python benchmarks/quality.py card")
    atomic_write_json(RESULTS / "quality.json", out)
    atomic_write_text(RESULTS / "quality.md", results_markdown(out))
    atomic_write_text(REPO / "edge_dfd" / "assets" / "default" / "MODEL_CARD.md", model_card(out))
    log("wrote quality.md and MODEL_CARD.md")


def model_card(out: dict) -> str:
    sel = next(r for r in out["approaches"] if r["approach"] == out["selected"])
    sh = out["shipped"]
    f32 = sh.get("tflite-fp32", {})
    i8 = sh.get("tflite-int8", {})
    fac = out.get("pi4_factor", {})

    def cell(e, s):
        a = e[s]
        return (f"{a['accuracy']:.3f} ({_ci(a['accuracy'], a['n'])}) / {a['auc']:.3f} / {a['ap']:.3f} / "
                f"{a['eer']:.3f}")

    reached = bool(i8) and i8["140k"]["accuracy"] >= 0.90 and i8["140k"]["auc"] >= 0.95 and \
        i8["tpdne"]["accuracy"] >= 0.97
    goal = "Goal reached (int8)." if reached else "Goal not reached."
    rows = "\n".join(f"| {fmt} | {e['bytes'] / 1e6:.1f} | {e['latency_ms']:.1f} | {cell(e, '140k')} | "
                     f"{cell(e, 'tpdne')} |" for fmt, e in sh.items())
    n_views = len(sel["crops"])
    pi = (f"Raspberry Pi 4 estimate (64-bit OS, 4 threads, XNNPACK): this model runs {n_views} MobileNetV2 passes "
          f"per face; the published XNNPACK MobileNetV2 time on a Pi 4 is {PI4_XNNPACK_MS['int8']:.0f} ms int8 and "
          f"{PI4_XNNPACK_MS['fp32']:.0f} ms fp32 (github.com/google/XNNPACK README, Raspberry Pi table, Feb 2022), "
          f"so expect ≈ {n_views * PI4_XNNPACK_MS['int8']:.0f} ms per face int8 (≈ {1000 / (n_views * PI4_XNNPACK_MS['int8']):.0f} faces/s) "
          f"and ≈ {n_views * PI4_XNNPACK_MS['fp32']:.0f} ms fp32.")
    if fac:
        pi += (f" One MobileNetV2 view measured here (shared, loaded CPU): fp32 {out['backbone_ms']['fp32']:.1f} ms, "
               f"int8 {out['backbone_ms']['int8']:.1f} ms, i.e. Pi-4/this-machine factors ≈ {fac['fp32']:.1f}× (fp32) "
               f"and {fac['int8']:.1f}× (int8); these local timings were taken while other jobs loaded both cores "
               f"and are upper bounds.")
    if i8 and f32:
        pi += (f"\n\n**int8 caveat:** full-integer int8 loses accuracy on this model (140k test "
               f"{i8['140k']['accuracy']:.3f} vs fp32 {f32['140k']['accuracy']:.3f}; tpdne {i8['tpdne']['accuracy']:.3f} "
               f"vs {f32['tpdne']['accuracy']:.3f}) — `edge-dfd convert` verification flags it (agreement with Keras "
               f"< 0.9). Use `--format tflite-fp32` / `onnx` for the scores above; int8 is kept for speed experiments.")
    return f"""# edge-dfd bundled default detector — model card

**Output:** P(fake) for one face crop, RGB, 256×256 raw pixels (0..255) in; the threshold
{sel['threshold']:.4f} (chosen on the valid splits) is stored in every file's metadata.

## Architecture
Multi-crop MobileNetV2 (torchvision ImageNet weights, ported to Keras and bundled — `tools/port_weights.py`).
Inside the graph, with built-in Keras layers only: the 256-px face is cut into 5 views — the whole face and its four
128-px quadrants — each resized to 224 px, normalised with the ImageNet mean/std and passed through ONE shared
MobileNetV2. Every view is global-average-pooled at five depths (blocks 5, 12, 15, 16 and the 1280-channel head:
1,888 features), one shared logistic unit scores each view, and the five logits are averaged before the sigmoid.
About 2.2 M parameters; 5 backbone passes per face.

## Training data and provenance
Train splits of both shared sets together (4,779 images), selection and threshold on their valid splits (660),
scores below on their test splits (660), none of which were used for any choice:
- **faces140k-sample** — 999 images of the Kaggle "140k Real and Fake Faces" (xhlulu, 2020), 256 px: real = FFHQ
  (NVIDIA, CC BY-NC-SA 4.0; photos under their Flickr licences), fake = StyleGAN ("1 Million Fake Faces").
  Recovered from the public repository zoya2244/AI-Lab-Final-Project-FALL25 (commit 6ba4ed6).
- **ffhq-tpdne-128** — 5,100 images, 128 px JPEG q75 (both classes re-encoded identically): real = FFHQ,
  fake = thispersondoesnotexist.com (StyleGAN2). Recovered from bhunakit/HeadshotClassification (commit d9c8a26).
Licence: the model is trained on FFHQ (CC BY-NC-SA 4.0) — research and evaluation use under non-commercial terms;
see NOTICE. No image or crop of one is shipped.

## Method
Frozen ImageNet features (no fine-tuning of the backbone: on this 2-core shared CPU a full MobileNetV2 pass over
the 5 views costs ~35–200 ms per image, so fine-tuning did not fit the time budget — see Limits), a logistic head on
standardised features (L2, C={sel['C']} chosen on valid; each set weighted equally:
{sel['balance_sets']}), folded into the Keras Dense layer. Reproduce with `benchmarks/quality.py`
(`features`, `heads`, `ship`, `card`); every approach tried is in `benchmarks/results/quality.md`.

## Measured test scores (threshold from valid)
Cells: accuracy (95 % CI) / ROC AUC / average precision / EER. faces140k-sample test = 150 images, ffhq-tpdne-128
test = 510 images. Latency: median ms per face, batch 1, 2 threads, on {out['machine'].get('cpu')} shared with
other jobs (so an upper bound).

| format | MB | ms/face | faces140k-sample test | ffhq-tpdne-128 test |
|---|---|---|---|---|
{rows}

{pi}

## Limits — read before use
- **{goal}** The target was ≥ 0.90 accuracy / ≥ 0.95 AUC on unseen 140k images and ≥ 0.97 accuracy on
  ffhq-tpdne-like images; this model reaches the numbers above. It was trained on 4,779 images; the study's
  97.9 % came from 100k. **Train on the full Kaggle 140k dataset** (`edge-dfd train`) for real use.
- Trained only on StyleGAN (140k) and StyleGAN2 (thispersondoesnotexist) fakes against FFHQ reals, all aligned
  FFHQ-style crops. Not trained on StyleGAN3, diffusion models (Stable Diffusion, Midjourney, DALL·E), face swaps
  (DeepFaceLab, FaceSwap), face reenactment, or re-captured / heavily compressed video frames: expect much lower
  accuracy on those.
- 128-px inputs are upsampled to 256; other face detectors' crops (margins, alignment) differ from FFHQ alignment.
- Error bars on the 140k sample are wide (150 test images): ±6–7 points at these accuracies.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["features", "heads", "ship", "card"])
    ap.add_argument("--archs", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    ap.add_argument("--budget-min", type=float, default=20.0, help="wall-time budget of this stage (minutes)")
    ap.add_argument("--approach", default=None, help="ship this approach instead of the one selected on valid")
    ap.add_argument("--calib-size", type=int, default=200)
    ap.add_argument("--verify-size", type=int, default=100)
    ap.add_argument("--keras-eval", action="store_true", help="also score the .keras model (slow on CPU)")
    args = ap.parse_args(argv)
    np.random.seed(SEED)
    {"features": stage_features, "heads": stage_heads, "ship": stage_ship, "card": stage_card}[args.stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
