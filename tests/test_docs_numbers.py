"""A number a doc quotes from a results file is that file's number (issue 29). Each check names the doc, the
results file and the command that regenerates it; rerunning the command and not the doc fails here.

Checked: docs/distributed.md's speed table (benchmarks/results/distribute.json), the Pi guide's per-face Pi 4
estimates and install size (detector_v2.json, install_size.json), the model card's Pi 4 column (detector_v2.json).
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
    """examples/raspberry_pi.md <- detector_v2.json (python -m edge_dfd.release ship) and install_size.json
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
    """edge_dfd/assets/default/MODEL_CARD.md <- detector_v2.json (python -m edge_dfd.release card)."""
    (pi4,) = _quoted("edge_dfd/assets/default/MODEL_CARD.md", re.escape(f"| {row} | ") + r"[\d.]+ \| [\d.]+ \| (\d+) \|")
    assert int(pi4) == _pi4(who, fmt, kind)
