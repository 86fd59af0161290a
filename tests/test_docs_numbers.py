"""A number a doc quotes from a results file is that file's number (issue 29). Each check names the doc, the
results file and the command that regenerates it; rerunning the command and not the doc fails here.

Checked: docs/cascade.md's curve and docs/convert.md's int8 recipe table (their results files),
docs/distributed.md's speed table (benchmarks/results/distribute.json), the Pi guide's per-face Pi 4 estimates and install size (detector_v2.json, install_size.json), the model card's Pi 4 column (detector_v2.json).
"""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _json(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _text(rel: str) -> str:
    return " ".join((REPO / rel).read_text(encoding="utf-8").split())  # prose wraps: single spaces


def _quoted(doc: str, pattern: str) -> list[str]:
    m = re.search(pattern, _text(doc))
    assert m, f"{doc}: no text matching {pattern!r} (the sentence changed: update it here, with its source)"
    return list(m.groups())


def test_distributed_speed_table():
    """docs/distributed.md <- benchmarks/results/distribute.json (python -m benchmarks.distribute --per-class 384
    --epochs 3)."""
    rows = {(r["mode"], r["workers"]): r["images_per_s"] for r in _json("distribute.json")["results"]}
    base = rows[("none", 1)]
    for label, key in (("`--distribute none`", ("none", 1)), ("`multi-worker`, 1 worker", ("multi-worker", 1)),
                       ("`multi-worker`, 2 workers on the same 2 cores", ("multi-worker", 2))):
        ips, ratio = _quoted("docs/distributed.md", re.escape(f"| {label} | ") + r"(\d+) \| ([\d.]+)× \|")
        assert abs(int(ips) - rows[key]) <= 0.5, f"docs/distributed.md: {label} images/s {ips} != {rows[key]}"
        assert abs(float(ratio) - rows[key] / base) <= 0.005, f"docs/distributed.md: {label} ratio {ratio}"


def _pi4(who: str, fmt: str, kind: str) -> int:
    d = _json("detector_v2.json")
    return round(d["scores"][who][fmt]["latency_ms"] * d["pi4_factor"][kind])


def test_pi_guide_numbers():
    """examples/raspberry_pi.md <- detector_v2.json (written at release; docs/release.md) and install_size.json
    (python -m benchmarks.install_size)."""
    doc = "examples/raspberry_pi.md"
    arch = _quoted(doc, r"The default model runs one ([\w-]+) pass per face")[0]
    assert arch == "EfficientNet-Lite0" and "EfficientNet-Lite0" in (REPO / "edge_dfd/assets/default/MODEL_CARD.md").read_text()
    int8, fp32 = _quoted(doc, r"about (\d+) ms per face int8 \((\d+) ms fp32\) on a Pi 4")
    assert (int(int8), int(fp32)) == (_pi4("student", "tflite-int8", "int8"), _pi4("student", "tflite-fp32", "fp32"))
    (teacher,) = _quoted(doc, r"`--model ten-pass` \(the previous default, ten passes, about (\d+) ms per face int8")
    assert int(teacher) == _pi4("teacher", "tflite-int8", "int8")
    size = _json("install_size.json")
    venv, wheel = _quoted(doc, r"(\d+) MiB in a fresh venv on x86-64, .*? a (\d+) MB wheel")
    assert int(venv) == round(size["venv_mib"]) and int(wheel) == round(size["wheel"]["mb"])
    wheel_formats = {a["file"] for a in size["wheel"]["assets"] if a["file"].startswith("default/detector")}
    (listed,) = _quoted(doc, r"the bundled default model comes as (.*?) \(plus")
    names = re.findall(r"`([\w-]+)`", listed)
    from edge_dfd.formats import FORMATS

    assert sorted(f"default/{FORMATS[n].filename('detector')}" for n in names) == sorted(wheel_formats)


@pytest.mark.parametrize("row,who,fmt,kind", [
    ("v2 single pass, tflite-fp32 (`--model default`)", "student", "tflite-fp32", "fp32"),
    ("v2 single pass, tflite-int8", "student", "tflite-int8", "int8"),
    ("teacher (ten passes), tflite-int8", "teacher", "tflite-int8", "int8"),
])
def test_model_card_pi4_column(row, who, fmt, kind):
    """edge_dfd/assets/default/MODEL_CARD.md <- detector_v2.json (python -m tools.model_card)."""
    (pi4,) = _quoted("edge_dfd/assets/default/MODEL_CARD.md", re.escape(f"| {row} | ") + r"[\d.]+ \| [\d.]+ \| (\d+) \|")
    assert int(pi4) == _pi4(who, fmt, kind)


def test_cascade_curve_table_is_the_results_table():
    """docs/cascade.md's curve table <- benchmarks/results/cascade.md (python -m benchmarks.cascade): row for row."""
    doc = [ln for ln in (REPO / "docs/cascade.md").read_text(encoding="utf-8").splitlines() if ln.startswith("| ")]
    res = set((RESULTS / "cascade.md").read_text(encoding="utf-8").splitlines())
    assert len(doc) >= 6, "docs/cascade.md: the curve table is gone (update this test with its source)"
    missing = [ln for ln in doc if ln not in res]
    assert not missing, "docs/cascade.md rows not in benchmarks/results/cascade.md:\n" + "\n".join(missing)


# docs/convert.md's recipe rows -> the variant of benchmarks/results/onnx_int8_variants.json they quote
RECIPE_ROWS = {"**`onnx-int8`**": "current", "per-tensor weights": "per_tensor", "QOperator instead": "qoperator",
               "Entropy calibration": "entropy", "Percentile calibration": "percentile", "head in float": "excl_head",
               "first convolution in float": "excl_stem", "both in float": "excl_both",
               "**`onnx-int8-arm`**": "full8", "`tflite-int8`, same calibration": "tflite_int8"}


def test_convert_recipe_table_quotes_the_variants_results():
    """docs/convert.md's int8 recipe table <- benchmarks/results/onnx_int8_variants.json
    (python -m benchmarks.onnx_int8_variants): accuracy, agreement and both loss bounds of every row."""
    res = (RESULTS / "onnx_int8_variants.md").read_text(encoding="utf-8").splitlines()
    by_name = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[1:-1]] for ln in res if ln.startswith("| ")}
    rows = [ln for ln in (REPO / "docs/convert.md").read_text(encoding="utf-8").splitlines()
            if ln.strip().startswith("| ") and any(k in ln for k in RECIPE_ROWS)]
    assert len(rows) == len(RECIPE_ROWS), f"docs/convert.md: {len(rows)} recipe rows, expected {len(RECIPE_ROWS)}"
    for ln in rows:
        key = next(k for k in RECIPE_ROWS if k in ln)
        v = by_name[RECIPE_ROWS[key]]  # variant, what, acc (fp32), AUC, agreement, acc loss, AUC loss, ...
        cells = [c.strip() for c in ln.strip().split("|")[1:-1]]
        acc, agree = cells[1].split(" / ")[0], cells[2]
        acc_loss, auc_loss = (float(c.split(" / ")[0].split()[0]) for c in cells[3:5])
        assert acc == v[2].split()[0] and agree == v[4], f"docs/convert.md {key}: {acc}/{agree} vs {v[2]}/{v[4]}"
        assert abs(acc_loss - 100 * float(v[5])) < 0.051 and abs(auc_loss - 100 * float(v[6])) < 0.051, \
            f"docs/convert.md {key}: loss bounds {acc_loss}/{auc_loss} vs {v[5]}/{v[6]}"
