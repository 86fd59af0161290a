"""A number a doc quotes from a results file is that file's number (issue 29). Each check names the doc, the
results file and the command that regenerates it; rerunning the command and not the doc fails here.

Generic check (`test_marked_regions`): a doc marks each block that quotes measurements with an HTML comment on the
line before it (invisible when rendered):

    <!-- numbers: benchmarks/results/X.json [more files] (python -m benchmarks.X ...) not: 224 32 -->

- **Region**: the lines after the marker up to the next blank line, heading, marker or list item indented no
  deeper than the region's first line: one paragraph, one table, one list item (the marker may be indented so
  that it stays inside the list). A block without a marker is not checked: mark every block that
  quotes results.
- **Files**: every path before the parenthesis, relative to the repository root (`.json`: every numeric value, at
  any depth, and every number inside its strings; `.md` or other text: every number in it). The parenthesis names
  the command that regenerates them; the doc's number changes only by rerunning it.
- **Quoted numbers**: every number in the region's prose and tables (`1,675` is 1675; `3-6` is 3 and 6), except
  inline code (`--epochs 3`), link targets, dates (2026-12-07), versions (1.2.3), scientific notation (1e-4) and
  numbers glued to a word (fp32, int8, x86-64, EfficientNet-Lite0, 2x is NOT glued: `x`/`×` is a unit).
  Numbers that are settings, counts or derived, not measurements, are listed after `not:` (space separated, as
  the doc writes them); measurements of a dated run that no results file holds (history sections: times read off a
  console) are listed after `unfiled:`, so that they are visibly untied. A listed number that the region does not
  contain fails (the lists stay true).
- **Table rows**: when a marker names a results `.md` file and a doc table row's label (first cell, or its first
  words: "keras (reference)" is row "keras"; or the start of it: "cnn" is rows "cnn_256.keras", "cnn.onnx") is a
  row label there, that row's numbers must come from the results rows with that
  label, not from anywhere in the file.
- **Match**: a quoted number shown with d decimals matches a value v of the files when v × k rounds to it at d
  decimals (|v·k − q| ≤ ½·10^-d), k = 1 or, when the unit written right after the number allows it
  (CONVERSIONS): `%` / `points` a fraction × 100, `ms` seconds × 1000, `s` ms ÷ 1000, `min` / `h` seconds ÷ 60 /
  3600, `GB` / `KB` MB / bytes ÷ 1000, `GiB` MiB ÷ 1024, `MB` / `MiB` bytes. A number without a unit (a table
  cell: the unit is in its header) is the file's value as it stands. Signs are ignored ("+2.7 %" matches 0.027).
- **Limit**: outside row-checked tables a quoted number may equal another value of the same file by accident; on
  2026-12-07, changing the last digit of each checked number was caught for 195 of 317 (62 %). Keep regions small
  and name only the files the block quotes.

Hand-written checks below cover tables whose rows map to named results rows (a stricter tie than "the number is
somewhere in the file"): docs/cascade.md's curve and docs/convert.md's int8 recipe table, docs/distributed.md's
speed table, the Pi guide's per-face Pi 4 estimates and install size, the model card's Pi 4 column.
"""

import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# docs that quote measurements; each must carry at least one marker
MARKED_DOCS = ["docs/train.md", "docs/convert.md", "docs/runtime.md", "docs/live.md", "docs/cascade.md", "docs/release.md",
               "examples/raspberry_pi.md"]  # docs/hardening.md quotes limits and settings, no measurement

# unit written after a quoted number -> the factors from a results file's value to it (besides 1)
CONVERSIONS = {"%": (100.0,), "point": (100.0,), "points": (100.0,), "ms": (1000.0,), "s": (0.001,),
               "min": (1 / 60,), "h": (1 / 3600,), "GB": (0.001,), "KB": (0.001,), "GiB": (1 / 1024,),
               "MB": (1e-6,), "MiB": (1 / 2**20,)}

MARKER = re.compile(r"<!--\s*numbers:\s*(?P<files>[^(]*?)\s*\((?P<cmd>[^)]*(?:\([^)]*\)[^)]*)*)\)"
                    r"(?:\s*not:\s*(?P<skip>.*?))?(?:\s*unfiled:\s*(?P<unfiled>.*?))?\s*-->")
LIST_ITEM = re.compile(r"(\s*)(?:[-*+]|\d+\.) ")
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
UNIT = re.compile(r"\s?(%|points?|ms|s|min|h|GB|KB|GiB|MB|MiB)(?!\w)")
_NOT_QUOTES = [
    re.compile(r"`[^`]*`"),  # inline code: commands, options, names
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<!--.*?-->"),  # comments
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),  # dates
    re.compile(r"\b\d+\.\d+\.\d+\b"),  # versions
    re.compile(r"\b\d+(?:\.\d+)?e[-+]?\d+\b"),  # 1e-4
    re.compile(r"[A-Za-z_][\w]*(?:-\w+)*\d[\w.-]*|\d+[A-Za-z_](?<![x×])\w*"),  # fp32, x86-64, Lite0, 3D, 2nd
]


def quoted(text: str) -> list[tuple[str, str]]:
    """(number as written, unit after it or "") for every number a doc region quotes (the module docstring says
    what is left out)."""
    for pat in _NOT_QUOTES:
        text = pat.sub(" ", text)
    out = []
    for m in NUMBER.finditer(text):
        u = UNIT.match(text, m.end())
        out.append((m[0], u[1] if u else ""))
    return out


def quoted_numbers(text: str) -> list[str]:
    return [q for q, _ in quoted(text)]


def _values(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [abs(float(obj))]
    if isinstance(obj, str):
        return [float(n.replace(",", "")) for n in NUMBER.findall(obj)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)] + [v for k in obj for v in _values(k)]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return []


def file_values(path: Path) -> list[float]:
    text = path.read_text(encoding="utf-8")
    return _values(json.loads(text)) if path.suffix == ".json" else _values(text)


def matches(number: str, values: list[float], unit: str = "") -> bool:
    q = float(number.replace(",", ""))
    d = len(number.split(".")[1]) if "." in number else 0
    tol = 0.5 * 10 ** -d * (1 + 1e-9) + 1e-12
    return any(abs(v * k - q) <= tol for v in values for k in (1.0, *CONVERSIONS.get(unit, ())))


def _label(row: str) -> str:
    return row.strip().strip("|").split("|")[0].strip().strip("*`").strip()


def table_rows(path: Path) -> dict[str, list[float]]:
    """A results .md file's table rows: label (first cell) -> the numbers of every row with that label."""
    rows: dict[str, list[float]] = {}
    if path.suffix == ".md":
        for ln in path.read_text(encoding="utf-8").splitlines():
            if ln.lstrip().startswith("|") and not set(ln) <= set("|-: "):
                rows.setdefault(_label(ln), []).extend(_values(ln))
    return rows


def _row_values(line: str, rows: dict[str, list[float]]) -> list[float] | None:
    """The values a doc table row must come from: those of the results rows with its label (a doc label may add
    words after it: 'keras (reference)' is row 'keras'), or None when no results row has it."""
    if not line.lstrip().startswith("|"):
        return None
    label = _label(line)
    hits = [v for k, vals in rows.items()
            if k and (label == k or label.startswith(k + " ") or k.startswith((label + "_", label + "."))) for v in vals]
    return hits or None


def regions(text: str) -> list[tuple[int, re.Match, str]]:
    """(line number, marker, region text) for every marker of a doc."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARKER.search(line)
        if not m:
            if "numbers:" in line and "<!--" in line:
                out.append((i + 1, None, line))  # malformed: reported by check_region
            continue
        body = []
        indent = len(lines[i + 1]) - len(lines[i + 1].lstrip()) if i + 1 < len(lines) else 0
        for ln in lines[i + 1:]:
            if not ln.strip() or ln.lstrip().startswith("#") or MARKER.search(ln):
                break
            nxt = LIST_ITEM.match(ln)
            if body and nxt and len(nxt[1]) <= indent:
                break  # the next item of the list the region is in (or starts)
            body.append(ln)
        out.append((i + 1, m, "\n".join(body)))
    return out


def check_region(doc: str, line: int, marker: re.Match | None, body: str) -> list[str]:
    """Every problem of one marked region, as lines naming the doc, its line and the number."""
    where = f"{doc}:{line}"
    if marker is None:
        return [f"{where}: a numbers marker that does not parse (expected '<!-- numbers: FILE... (COMMAND) "
                f"[not: N ...] -->')"]
    files = marker["files"].split()
    if not files or not marker["cmd"].strip():
        return [f"{where}: the marker names no results file or no command"]
    missing = [f for f in files if not (REPO / f).is_file()]
    if missing:
        return [f"{where}: results file {', '.join(missing)} not in the repository"]
    values = [v for f in files for v in file_values(REPO / f)]
    numbers = quoted(body)
    skip = (marker["skip"] or "").split() + (marker["unfiled"] or "").split()
    problems = [f"{where}: 'not:/unfiled: {s}' is not a number the region quotes"
                for s in skip if s not in {q for q, _ in numbers}]
    checked = [(q, u) for q, u in numbers if q not in skip]
    if not checked:
        problems.append(f"{where}: the marked region quotes no measurement (move the marker or drop it)")
    rows = {k: v for f in files for k, v in table_rows(REPO / f).items()}
    for ln in body.splitlines():
        row = _row_values(ln, rows)
        for q, unit in quoted(ln):
            if q in skip or matches(q, values if row is None else row, unit):
                continue
            where_in = f"row '{_label(ln)}' of {' '.join(files)}" if row is not None else " ".join(files)
            problems.append(f"{where}: {q} is not in {where_in} (rerun: {marker['cmd'].strip()}; "
                            f"fix the doc from the file, or list it after 'not:' if it is not a measurement)")
    return problems


def check_doc(doc: str, text: str) -> list[str]:
    return [p for line, m, body in regions(text) for p in check_region(doc, line, m, body)]


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
    from edge_dfd.core.formats import FORMATS

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


@pytest.mark.parametrize("doc", MARKED_DOCS)
def test_marked_regions(doc):
    text = (REPO / doc).read_text(encoding="utf-8")
    assert regions(text), f"{doc}: no '<!-- numbers: ... -->' marker (it quotes measurements: mark them)"
    problems = check_doc(doc, text)
    assert not problems, "\n".join(problems)


def test_marker_check_can_fail(tmp_path, monkeypatch):
    """A wrong, a stale-precision and an unlisted number fail; the right ones, conversions and 'not:' pass."""
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"rows": [{"ms": 12.345, "acc": 0.9121, "s": 0.0123}], "peak_mb": 3804.27}))
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    good = ("<!-- numbers: r.json (python -m benchmarks.r) not: 32 -->\n"
            "| fp32 | 12.3 ms | batch 32 | 91.2 % | 3.80 GB | 12 ms | `--epochs 7` | 2026-12-07 |\n\nafter 99\n"
            "  <!-- numbers: r.json (cmd) -->\n- item 12.3 ms\n  wrapped 0.91\n- next item 77\n")
    assert check_doc("d.md", good) == []
    assert check_doc("d.md", good.replace("not: 32", "not: 32 unfiled: 91.2").replace("91.2 %", "91.2 %, 41 min")) \
        == ["d.md:1: 41 is not in r.json (rerun: python -m benchmarks.r; fix the doc from the file, or list it after "
            "'not:' if it is not a measurement)"]
    assert quoted_numbers(good.splitlines()[1]) == ["12.3", "32", "91.2", "3.80", "12"]
    wrong = good.replace("12.3 ms", "12.4 ms", 1)
    assert check_doc("d.md", wrong) == ["d.md:1: 12.4 is not in r.json (rerun: python -m benchmarks.r; fix the doc "
                                        "from the file, or list it after 'not:' if it is not a measurement)"]
    assert any("32 is not in" in p for p in check_doc("d.md", good.replace(" not: 32", "")))
    assert any("'not:/unfiled: 64'" in p for p in check_doc("d.md", good.replace("not: 32", "not: 32 64")))
    assert any("91.3 is not" in p for p in check_doc("d.md", good.replace("91.2", "91.3")))
    assert any("d.md:5: 0.92 is not" in p for p in check_doc("d.md", good.replace("wrapped 0.91", "wrapped 0.92")))
    assert any("does not parse" in p for p in check_doc("d.md", "<!-- numbers: r.json -->\n1.0"))
    assert any("not in the repository" in p for p in check_doc("d.md", "<!-- numbers: x.json (cmd) -->\n1.0"))


def test_table_rows_are_checked_against_their_own_row(tmp_path, monkeypatch):
    """A doc table row whose label is a results row takes its numbers from that row only: another row's value fails."""
    (tmp_path / "r.md").write_text("| format | p50 ms |\n|---|---|\n| tflite-int8 | 3.92 |\n| onnx | 13.82 |\n"
                                   "| cnn_256.keras | 8.27 |\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    doc = "<!-- numbers: r.md (cmd) -->\n| format | p50 ms |\n|---|---|\n| **`tflite-int8`** | 3.9 |\n| onnx (x86) | 13.8 |\n" \
          "| cnn | 8.3 |\n"
    assert check_doc("d.md", doc) == []
    swapped = doc.replace("| 3.9 |", "| 13.8 |")
    assert check_doc("d.md", swapped) == ["d.md:1: 13.8 is not in row 'tflite-int8' of r.md (rerun: cmd; fix the doc "
                                          "from the file, or list it after 'not:' if it is not a measurement)"]
    assert len(check_doc("d.md", doc.replace("| 8.3 |", "| 3.9 |"))) == 1
