"""The ONE writer of ``edge-dfd bench`` results: the plain-text table (stdout), bench.json / .csv / .md and the
latency-vs-accuracy Pareto plot."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from edge_dfd.bench.result import BATCH, NOT_MEASURED, BenchResult, fmt_cell, row_fields
from edge_dfd.fsutil import atomic_write_json, atomic_write_text, ensure_writable_dir
from edge_dfd.perturb import PERTURBATIONS

__all__ = ["TABLE_COLS", "format_csv", "format_markdown", "format_table", "plot_pareto", "table_rows", "write_results"]

TABLE_COLS = [("format", "format", "{}"), ("status", "status", "{}"), ("size_mb", "MB", "{:.2f}"),
              ("accuracy", "acc", "{:.4f}"), ("auc", "AUC", "{:.4f}"), ("latency_ms_p50", "p50 ms", "{:.2f}"),
              ("latency_ms_p90", "p90 ms", "{:.2f}"), ("latency_ms_p99", "p99 ms", "{:.2f}"),
              ("preprocess_ms", "prep ms", "{:.2f}"), ("images_per_s", "img/s", "{:.1f}"),
              ("load_ms", "load ms", "{:.0f}"), ("first_inference_ms", "1st ms", "{:.1f}"),
              ("peak_rss_mb", "RSS MB", "{:.0f}"), ("agreement", "agree", "{:.3f}"),
              ("max_abs_diff", "max|dp|", "{:.4f}")]


def table_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    multi = len({r.model for r in result.rows}) > 1
    measured = any(r.accuracy is not None for r in result.rows)
    cols = ([("model", "model", "{}")] if multi else []) + TABLE_COLS
    if measured:  # the accuracy's 95 % interval, right after it
        i = next(k for k, c in enumerate(cols) if c[0] == "accuracy") + 1
        cols = cols[:i] + [("accuracy_ci95", "acc 95% CI", "{:.3f}")] + cols[i:]
    body = []
    for r in result.rows:
        d = r.to_dict()
        line = []
        for key, _, spec in cols:
            if key == "accuracy" and not measured and r.status == "ok":
                line.append(NOT_MEASURED)
            elif key == "accuracy_ci95":
                lo, hi = d.get("accuracy_ci95_low"), d.get("accuracy_ci95_high")
                line.append("-" if lo is None else f"{fmt_cell(lo, spec)}-{fmt_cell(hi, spec)}")
            else:
                line.append(fmt_cell(d.get(key), spec))
        body.append(line)
    return [h for _, h, _ in cols], body


def format_table(result: BenchResult) -> str:
    """Plain-text table (stdout)."""
    head, body = table_rows(result)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    lines += _robustness_lines(result)
    lines += [f"note: {n}" for n in result.notes]
    m = result.machine
    lines.append(f"machine: {m['cpu']}, {m['usable_cores']} cores, flags {' '.join(m['cpu_flags']) or '-'}, "
                 f"threads {m['threads']}, {m['os']}, Python {m['python']}")
    return "\n".join(lines) + "\n"


def _robustness_lines(result: BenchResult) -> list[str]:
    rows = [r for r in result.rows if r.robustness]
    if not rows:
        return []
    out = ["", "robustness (accuracy / AUC): " + ", ".join(PERTURBATIONS)]
    for r in rows:
        cells = [f"{fmt_cell(r.robustness[p]['accuracy'], '{:.3f}')}/{fmt_cell(r.robustness[p]['auc'], '{:.3f}')}"
                 for p in PERTURBATIONS]
        out.append(f"  {r.model}:{r.format}  " + "  ".join(cells))
    return out


def format_markdown(result: BenchResult) -> str:
    head, body = table_rows(result)
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(c.replace("|", "/") for c in b) + " |" for b in body]
    rob = [r for r in result.rows if r.robustness]
    if rob:
        md += ["", "Robustness (accuracy / AUC):", "",
               "| model | format | " + " | ".join(PERTURBATIONS) + " |", "|---|---|" + "---|" * len(PERTURBATIONS)]
        for r in rob:
            md.append(f"| {r.model} | {r.format} | " + " | ".join(
                f"{fmt_cell(r.robustness[p]['accuracy'], '{:.3f}')} / {fmt_cell(r.robustness[p]['auc'], '{:.3f}')}"
                for p in PERTURBATIONS) + " |")
    m = result.machine
    md += ["", f"Machine: {m['cpu']} ({m['arch']}), {m['usable_cores']} usable cores, flags: "
           f"{', '.join(m['cpu_flags']) or '-'}; threads {m['threads']}; {m['os']}; Python {m['python']}; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    s = result.settings
    md.append(f"Settings: data {s['data'] or 'none'} ({s['split'] or '-'}), warm-up {s['warmup']}, "
              f"runs {s['runs']}, batch-1 latency; end-to-end batch {BATCH}.")
    md += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(md) + "\n"


def format_csv(result: BenchResult) -> str:
    buf = io.StringIO()
    names = list(result.rows[0].flat()) if result.rows else row_fields()
    w = csv.DictWriter(buf, fieldnames=names)
    w.writeheader()
    for r in result.rows:
        w.writerow(r.flat())
    return buf.getvalue()


def write_results(result: BenchResult, out_dir, stem: str = "bench", plot=None) -> list[Path]:
    """bench.json, bench.csv, bench.md (+ the Pareto plot) in ``out_dir``, all atomic."""
    out = ensure_writable_dir(out_dir)
    paths = [atomic_write_json(out / f"{stem}.json", result.to_dict()),
             atomic_write_text(out / f"{stem}.csv", format_csv(result)),
             atomic_write_text(out / f"{stem}.md", format_markdown(result))]
    plot_path = Path(plot) if plot else out / "pareto.png"
    p = plot_pareto(result, plot_path)
    if p is not None:
        paths.append(p)
    return paths


def plot_pareto(result: BenchResult, path) -> Path | None:
    """Latency p50 (x) vs accuracy (y; agreement with Keras when accuracy is not measured); marker area = size."""
    from edge_dfd.report import pyplot, save_figure

    rows = [r for r in result.rows if r.latency_ms_p50 is not None]
    ykey = "accuracy" if any(r.accuracy is not None for r in rows) else "agreement"
    rows = [r for r in rows if getattr(r, ykey) is not None]
    if not rows:  # one note, like the missing-matplotlib one
        print(f"note: {path} not written: no format has both a latency and an accuracy (give --data) or an "
              "agreement with its .keras source to plot", file=sys.stderr)
        return None
    plt = pyplot(path)
    if plt is None:  # no matplotlib: one note on stderr, the tables are written anyway
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.array([r.latency_ms_p50 for r in rows])
    ys = np.array([getattr(r, ykey) for r in rows])
    mb = np.array([r.size_mb or 0.0 for r in rows])
    ax.scatter(xs, ys, s=40 + 400 * mb / max(mb.max(), 1e-9), alpha=0.6, edgecolors="k")
    multi = len({r.model for r in rows}) > 1
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(f"{r.model}:{r.format}" if multi else r.format, (x, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    order = np.lexsort((-ys, xs))  # Pareto front: no other point is both faster and more accurate
    front, best = [], -np.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    ax.plot(xs[front], ys[front], "--", color="tab:red", lw=1, label="Pareto front")
    ax.set_xlabel("latency p50, batch 1 (ms)")
    ax.set_ylabel(ykey if ykey == "accuracy" else "agreement with Keras (probe inputs)")
    ax.set_title(f"edge-dfd bench: latency vs {ykey} (marker area = file size)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)
