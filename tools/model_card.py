"""Write a detector's MODEL_CARD.md from the JSON its release commands wrote - one source for every number.

    python -m tools.model_card --model RUN/model.keras --convert convert.json --bench BENCH/bench.json \\
        --evaluate 140k=eval/140k/report.json --evaluate tpdne=eval/tpdne/report.json --out MODEL_CARD.md

Inputs (all optional except --model; a section whose input is missing is left out, a field a file lacks is "-"):
- ``--model``: the trained ``.keras`` file; its edge-dfd metadata (``edge-dfd train`` writes it) gives the
  architecture, input size, threshold and its source, and the training facts (recipe, data, epochs, valid/test);
- ``--convert``: ``edge-dfd convert ... --json > convert.json`` (per format: verification status, agreement, accuracy
  of Keras and of the export on the verification images);
- ``--bench``: ``edge-dfd bench FOLDER --out BENCH`` (BENCH/bench.json: per format size, latency p50/p90,
  throughput, accuracy with its 95 % interval, AUC when labelled data was measured);
- ``--evaluate NAME=report.json`` (repeatable): ``edge-dfd evaluate MODEL --data D --out DIR`` per test set.
Nothing is typed into the card: re-running the commands and this script rewrites it. Why it stays: it is the
last step of the release (docs/release.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _f(v, spec: str = "{:.4f}") -> str:
    """A card cell: ``spec`` applied to ``v``, "-" for None (bench's own table cell rule)."""
    from edge_dfd.bench.result import fmt_cell

    return fmt_cell(v, spec)


def _load(path) -> object:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {p}: cannot read JSON ({exc})") from None


def model_section(meta) -> list[str]:
    from edge_dfd.core.meta import crop_spec

    t = meta.training or {}
    crop = crop_spec(meta)
    lines = ["## Model", "",
             f"- architecture: `{meta.arch}`, input {meta.input_size}x{meta.input_size} RGB 0..255, "
             f"output {meta.output}",
             f"- face crop: `{crop.mode}`, margin {crop.margin:g} ("
             + ("from the metadata" if crop.source == "metadata" else f"not in the metadata; {crop.source}")
             + "; what `live` / `scan --align auto` cut)",
             f"- threshold: {_f(meta.threshold)} ({meta.threshold_source})"]
    if t:
        data = t.get("data")
        data = ", ".join(f"`{d}`" for d in data) if isinstance(data, list) else f"`{data}`"
        lines.append(f"- training: recipe `{t.get('recipe', '-')}`, init `{t.get('init', '-')}`, data {data}, "
                     f"{t.get('epochs_run', '-')} epoch(s) run, best epoch {t.get('best_epoch', '-')}, "
                     f"batch {t.get('batch_size', '-')}, steps per epoch {t.get('steps_per_epoch') or 'one pass'}")
        for split in ("valid", "test"):
            r = t.get(split)
            if r:
                lines.append(f"- {split} at training time: n {r.get('n', '-')}, accuracy {_f(r.get('accuracy'))}, "
                             f"balanced accuracy {_f(r.get('balanced_accuracy'))}, AUC {_f(r.get('auc'))}")
    return lines + [""]


def evaluate_section(reports: dict) -> list[str]:
    lines = ["## Accuracy on held-out test sets (`edge-dfd evaluate`)", "",
             "| set | n | accuracy | balanced accuracy | ROC AUC | EER | threshold |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in reports.items():
        lines.append(f"| {name} | {r.get('n', '-')} | {_f(r.get('accuracy'))} | {_f(r.get('balanced_accuracy'))} | "
                     f"{_f(r.get('auc'))} | {_f(r.get('eer'))} | {_f(r.get('threshold'))} |")
    return lines + [""]


def convert_section(rows: list) -> list[str]:
    lines = ["## Exported formats (`edge-dfd convert`, each verified against the Keras model)", "",
             "| format | file | MB | status | agreement | accuracy Keras | accuracy export | images |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        status = r.get("status") or ("ok" if r.get("ok") else (r.get("error") or "failed"))
        mb = None if r.get("bytes") is None else r["bytes"] / 1e6
        lines.append(f"| {r.get('format', '-')} | {Path(r.get('path') or '-').name} | {_f(mb, '{:.2f}')} | "
                     f"{status} | {_f(r.get('agreement'))} | {_f(r.get('accuracy_keras'))} | "
                     f"{_f(r.get('accuracy_export'))} | {r.get('verify_n', '-')} |")
    return lines + [""]


def bench_section(bench: dict) -> list[str]:
    m = bench.get("machine", {})
    s = bench.get("settings", {})
    lines = ["## Speed and accuracy per format (`edge-dfd bench`)", "",
             f"Measured on {m.get('cpu', '?')} ({m.get('usable_cores', '?')} cores, {s.get('threads', '?')} "
             f"threads), batch 1.", "",
             "| format | MB | p50 ms | p90 ms | images/s | accuracy (95 % CI) | ROC AUC | n | status |",
             "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in bench.get("rows", []):
        acc = _f(r.get("accuracy"))
        if r.get("accuracy_ci95_low") is not None:
            acc += f" ({_f(r['accuracy_ci95_low'], '{:.3f}')}-{_f(r.get('accuracy_ci95_high'), '{:.3f}')})"
        lines.append(f"| {r.get('format', '-')} | {_f(r.get('size_mb'), '{:.2f}')} | "
                     f"{_f(r.get('latency_ms_p50'), '{:.2f}')} | {_f(r.get('latency_ms_p90'), '{:.2f}')} | "
                     f"{_f(r.get('images_per_s'), '{:.1f}')} | {acc} | {_f(r.get('auc'))} | {r.get('n') or '-'} | "
                     f"{r.get('status', '-')} |")
    return lines + [""]


def model_card(meta, convert: list | None = None, bench: dict | None = None, evaluate: dict | None = None,
               sources: list[str] | None = None) -> str:
    lines = ["# Model card", "",
             "Generated by `python -m tools.model_card` from the JSON listed at the end; do not edit by hand.", ""]
    lines += model_section(meta)
    if evaluate:
        lines += evaluate_section(evaluate)
    if bench:
        lines += bench_section(bench)
    if convert:
        lines += convert_section(convert)
    lines += ["## Intended use and limits", "",
              "Output is P(fake) for one face crop; a verdict is `P(fake) >= threshold`. Accuracy holds for faces "
              "like the training data (StyleGAN-style generated faces and real portraits); other generators, heavy "
              "edits or non-face images are out of scope. Use it as one signal, not as proof.", ""]
    if sources:
        lines += ["## Sources", ""] + [f"- `{s}`" for s in sources] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="the trained .keras (its metadata)")
    ap.add_argument("--convert", type=Path, help="edge-dfd convert --json output")
    ap.add_argument("--bench", type=Path, help="edge-dfd bench's bench.json")
    ap.add_argument("--evaluate", action="append", default=[], metavar="NAME=REPORT.json")
    ap.add_argument("--out", type=Path, default=None, help="MODEL_CARD.md to write (default: stdout)")
    args = ap.parse_args(argv)
    from edge_dfd.core.fsutil import atomic_write_text
    from edge_dfd.core.meta import read_meta

    if not args.model.is_file():
        raise SystemExit(f"error: {args.model}: model file not found")
    meta = read_meta(args.model)
    if meta is None:
        raise SystemExit(f"error: {args.model}: carries no edge-dfd metadata (train it with edge-dfd train)")
    evaluate = {}
    for item in args.evaluate:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"error: --evaluate {item!r}: expected NAME=REPORT.json")
        evaluate[name] = _load(path)
    sources = [str(p) for p in (args.model, args.convert, args.bench) if p] + [e.partition("=")[2]
                                                                               for e in args.evaluate]
    text = model_card(meta, _load(args.convert) if args.convert else None,
                      _load(args.bench) if args.bench else None, evaluate, sources)
    if args.out:
        atomic_write_text(args.out, text)
        print(args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
