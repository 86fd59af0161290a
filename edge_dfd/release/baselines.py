"""Single-view baselines beside the teacher and the shipped student: what one view of the old model gives.

``python -m edge_dfd.release baselines`` cuts two models out of the ten-pass teacher, without training:

- ``teacher whole view, MobileNetV2`` / ``EfficientNet-Lite0`` - one backbone pass: that fine-tuned backbone
  on the whole face with its part of the teacher's logistic head (a student's starting point,
  ``student.build_student``; the shipped default starts from EfficientNet-Lite0);
- ``teacher whole view, both backbones`` - two passes: the whole-face view's logit of the teacher (its
  MobileNetV2 and EfficientNet-Lite0 features through its head), without the four quadrant views;
- for contrast, the teacher's four quadrant views alone (8 passes; each quadrant is 128 px of the face
  enlarged x1.75): where its clean accuracy comes from.

Each gets a threshold chosen on the valid splits (clean and perturbed, as the student's), is exported to
tflite-fp32 with ``edge_dfd.convert`` and scored exactly like the shipped files (``ship.score_file``: test
splits clean and under every perturbation, batch-1 ms). The table puts them beside the teacher and the
student rows of ``detector_v2.json`` -> ``benchmarks/results/detector_v2_baselines.{json,md}``.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge_dfd.release.student import log

BASELINES = {
    "mnv2_whole": "teacher whole view, MobileNetV2 (1 pass)",
    "enl0_whole": "teacher whole view, EfficientNet-Lite0 (1 pass)",
    "both_whole": "teacher whole view, MobileNetV2 + EfficientNet-Lite0 (2 passes)",
    "both_quads": "teacher without its whole view: 4 quadrants x 2 backbones (8 passes)",
}


def teacher_views_model(teacher_path: Path, views: slice = slice(0, 1)):
    """The mean of the teacher's per-view logits ``views`` -> sigmoid, same 256-px input. The default, the
    first view, is its whole-face view (``backbones.DEFAULT_CROPS`` order) through both backbones."""
    import keras

    from edge_dfd.kerasio import load_keras

    t = load_keras(Path(teacher_path))
    logits = t.get_layer("mean_logit").input[views]  # one logit per view
    z = logits[0] if len(logits) == 1 else keras.layers.Average(name="views_logit")(logits)
    p = keras.layers.Activation("sigmoid", name="p_fake")(z)
    return keras.Model(t.inputs, p, name="edge_dfd_teacher_views")


def build_baselines(teacher_path: Path) -> dict:
    from edge_dfd.release.student import INPUT_SIZE, build_student, teacher_parts

    return {"mnv2_whole": build_student(teacher_parts(teacher_path, "mobilenet_v2"), INPUT_SIZE, "mobilenet_v2"),
            "enl0_whole": build_student(teacher_parts(teacher_path, "efficientnet_lite0"), INPUT_SIZE,
                                        "efficientnet_lite0"),
            "both_whole": teacher_views_model(teacher_path),
            "both_quads": teacher_views_model(teacher_path, slice(1, None))}


def valid_threshold(model, groups: dict) -> float:
    """Threshold of max balanced accuracy on the valid groups (``student.valid_groups``: every valid split,
    clean and perturbed), as the student's."""
    from edge_dfd.release.student import predict, score_groups

    return score_groups({g: (y, predict(model, imgs)) for g, (imgs, y) in groups.items()})["threshold"]


def run_baselines(teacher_path: Path, data: list[str], work: Path, results: Path) -> dict:
    """Build, threshold, export and score every baseline; write the JSON and the table."""
    import json

    from edge_dfd.convert import convert_model
    from edge_dfd.data import load_split
    from edge_dfd.errors import ConversionError
    from edge_dfd.fsutil import atomic_path, atomic_write_json, atomic_write_text
    from edge_dfd.kerasio import model_input_size
    from edge_dfd.meta import ModelMeta, write_meta
    from edge_dfd.release.ship import calib_mix_dir, score_file, test_conditions
    from edge_dfd.release.student import valid_groups

    src = results / "detector_v2.json"
    shipped = json.loads(src.read_text()) if src.is_file() else None
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    conditions = test_conditions(data)
    groups = valid_groups({Path(d).name: load_split(d, "valid") for d in data})  # read once, for every baseline
    scores = {}
    for key, model in build_baselines(teacher_path).items():
        thr = valid_threshold(model, groups)
        path = work / f"{key}.keras"
        with atomic_path(path, suffix=".keras") as tmp:
            model.save(tmp)
        write_meta(path, ModelMeta(arch=key, input_size=model_input_size(model), threshold=thr,
                                   threshold_source="balanced accuracy on the valid splits, clean and perturbed"))
        res = convert_model(path, ["tflite-fp32"], out_dir=work, calib_data=calib_mix_dir(data), calib_size=50,
                            verify_size=50, progress=log)
        if not res[0].ok:
            raise ConversionError(f"{key}: tflite-fp32 export failed: {res[0].error}")
        scores[key] = score_file(work / f"{key}_fp32.tflite", conditions, robust=True) | {"name": BASELINES[key]}
    out = {"command": "python -m edge_dfd.release baselines", "time": time.strftime("%Y-%m-%d %H:%M"),
           "seconds": time.perf_counter() - t0, "baselines": scores,
           "shipped": shipped and {"time": shipped["time"], "pi4_factor": shipped["pi4_factor"],
                                   "teacher": shipped["scores"]["teacher"],
                                   "student": {f: shipped["scores"]["student"][f]
                                               for f in ("tflite-fp32", "tflite-int8")}}}
    atomic_write_json(results / "detector_v2_baselines.json", out)
    atomic_write_text(results / "detector_v2_baselines.md", baselines_markdown(out))
    log(f"wrote {results / 'detector_v2_baselines.md'}")
    return out


def baselines_markdown(out: dict) -> str:
    from edge_dfd.release.ship import TEST_SETS

    sh = out.get("shipped") or {}
    factor = sh.get("pi4_factor", {}).get("fp32")
    rows = [(f"teacher (5 views x 2 backbones = 10 passes), {f}", e) for f, e in sh.get("teacher", {}).items()]
    rows += [(f"**v2 student (shipped default, 1 pass)**, {f}", e) for f, e in sh.get("student", {}).items()]
    rows += [(f"{e['name']}, tflite-fp32", e) for e in out["baselines"].values()]
    head = " | ".join(f"{s} acc / AUC | {s} worst perturbed" for s in TEST_SETS)
    lines = [f"# Detector v2: the teacher, the student and single-view baselines — {out['time']}", "",
             f"Command: `{out['command']}` (baselines; the teacher and student rows come from "
             f"`detector_v2.json`, measured {sh.get('time', '-')} by `python -m edge_dfd.release ship`). "
             "Test splits, accuracy at each file's threshold (chosen on valid) / ROC AUC; worst = lowest accuracy "
             "over the 13 `bench --robustness` perturbations, with the points it loses against clean. "
             "ms = batch-1 median on this machine (2 threads), measured in each run.", "",
             f"| model | ms here | Pi 4 est. ms | {head} |", "|---|---|---|" + "---|---|" * len(TEST_SETS)]
    for name, e in rows:
        kind = "int8" if "int8" in name else "fp32"
        f = sh.get("pi4_factor", {}).get(kind, factor)
        pi = f"{e['latency_ms'] * f:.0f}" if f else "-"
        cells = []
        for s in TEST_SETS:
            c, w = e[s]["clean"], e["worst"][s]
            cells += [f"{c['accuracy']:.3f} / {c['auc']:.3f}",
                      f"{w['accuracy']:.3f} {w['condition']} (-{100 * (c['accuracy'] - w['accuracy']):.1f})"]
        lines.append(f"| {name} | {e['latency_ms']:.1f} | {pi} | " + " | ".join(cells) + " |")
    lines += ["", "The Pi 4 estimate is the model card's arithmetic (ms here x published Pi 4 MobileNetV2 ms / "
              "bare MobileNetV2 ms here, from the ship run).", ""]
    return "\n".join(lines)

