"""The ONE writer of ``edge-dfd bench`` results: the plain-text table (stdout), bench.json / .csv / .md and the
latency-vs-accuracy Pareto plot."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from edge_dfd.bench.result import BATCH, NOT_MEASURED, BenchResult, fmt_cell, row_fields
from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text, ensure_writable_dir
from edge_dfd.images.perturb import PERTURBATIONS

__all__ = ["ACC_COLS", "TABLE_COLS", "accuracy_rows", "format_csv", "format_markdown", "format_table", "plot_pareto", "release_rows", "table_rows", "write_results"]

TABLE_COLS = [("format", "format", "{}"), ("status", "status", "{}"), ("size_mb", "MB", "{:.2f}"),
              ("latency_ms_p50", "p50 ms", "{:.2f}"), ("latency_ms_p90", "p90 ms", "{:.2f}"),
              ("latency_ms_p99", "p99 ms", "{:.2f}"), ("preprocess_ms", "prep ms", "{:.2f}"),
              ("images_per_s", "img/s", "{:.1f}"), ("load_ms", "load ms", "{:.0f}"),
              ("first_inference_ms", "1st ms", "{:.1f}"), ("peak_rss_mb", "RSS MB", "{:.0f}"),
              ("agreement", "agree", "{:.3f}"), ("max_abs_diff", "max|dp|", "{:.4f}")]
# the accuracy table: (header, how to make the cell from a row dict)
ACC_COLS = ["format", "n", "acc [95% CI]", "bal.acc [95% CI]", "AUC [95% CI]", "vs", "d acc [95% CI]",
            "d AUC [95% CI]", "Pareto"]


def _ci(d: dict, key: str, spec: str = "{:.3f}") -> str:
    v, lo, hi = d.get(key), d.get(f"{key}_ci95_low"), d.get(f"{key}_ci95_high")
    if v is None:
        return "-"
    return f"{spec.format(v)} [{spec.format(lo)}-{spec.format(hi)}]" if lo is not None else spec.format(v)


def _diff(d: dict, key: str) -> str:
    v, lo, hi = d.get(key), d.get(f"{key}_ci95_low"), d.get(f"{key}_ci95_high")
    if v is None:
        return "-"
    z = lambda x: f"{round(x, 3) + 0.0:+.3f}"  # noqa: E731 - no "-0.000"
    return f"{z(v)} [{z(lo)}, {z(hi)}]" if lo is not None else z(v)


def _multi(result: BenchResult) -> bool:
    return len({r.model for r in result.rows}) > 1


def table_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """The speed table (one row per format): size, latency, throughput, load, memory, agreement with Keras."""
    cols = ([("model", "model", "{}")] if _multi(result) else []) + TABLE_COLS
    body = [[fmt_cell(r.to_dict().get(key), spec) for key, _, spec in cols] for r in result.rows]
    return [h for _, h, _ in cols], body


def accuracy_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """The accuracy table: accuracy, balanced accuracy and AUC with their 95 % intervals, the paired differences
    against the reference (this format minus it) and the Pareto flag; rows without accuracy are left out."""
    multi = _multi(result)
    head = (["model"] if multi else []) + ACC_COLS
    body = []
    for r in result.rows:
        if r.accuracy is None:
            continue
        d = r.to_dict()
        auc = _ci(d, "auc") if r.auc is not None else "n/a"
        ref = r.reference if r.reference and r.reference != r.format else "-"
        body.append(([r.model] if multi else []) + [
            r.format, str(r.n), _ci(d, "accuracy"), _ci(d, "balanced_accuracy"), auc, ref,
            _diff(d, "acc_diff") if ref != "-" else "(reference)" if r.reference else "-",
            _diff(d, "auc_diff") if ref != "-" else "-", {True: "yes", False: "", None: "-"}[r.pareto]])
    return head, body


def release_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Release-time figures of the bundled files beside the ones measured here, per set."""
    from edge_dfd.runtime.sample import EVAL_SAMPLE_RELEASE_SET

    rows = [r for r in result.rows if r.release]
    sets = list(dict.fromkeys(k for r in rows for k, v in r.release.items() if isinstance(v, dict)))
    here_of = {v: k for k, v in EVAL_SAMPLE_RELEASE_SET.items()}
    multi = _multi(result)
    head = (["model"] if multi else []) + ["format"]
    for st in sets:
        name = here_of.get(st, st)
        n = next((r.release[st].get("n") for r in rows if isinstance(r.release.get(st), dict)), None)
        head += [f"{name} acc (release / here{', n=' + str(n) if n else ''})", f"{name} AUC (release / here)"]
    body = []
    for r in rows:
        line = ([r.model] if multi else []) + [r.format]
        for st in sets:
            rel = r.release.get(st) or {}
            here = (r.by_set or {}).get(here_of.get(st, st)) or {}
            for k in ("accuracy", "auc"):
                line.append(f"{fmt_cell(rel.get(k), '{:.3f}')} / {fmt_cell(here.get(k), '{:.3f}')}")
        body.append(line)
    return head, body


def _plain(head: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return lines


def _titles(result: BenchResult) -> tuple[str, str, str]:
    s = result.settings
    where = f"{s['data']} [{s['split']}]" if s.get("data") else "the bundled evaluation sample"
    speed = (f"speed: batch-1 latency over {s['runs']} runs after {s['warmup']} warm-up, {s['threads']} threads "
             "(a pass of its own, before the accuracy pass)")
    acc = (f"accuracy on {s.get('n_images')} labelled images of {where}; 95% intervals; d = this format minus the "
           "reference 'vs' on the same images")
    rows = [r for r in result.rows if r.release]
    when = next((r.release.get("time") for r in rows if r.release.get("time")), None)
    rel = (f"release-time figures (measured when the bundled files were made{', ' + when if when else ''}, on "
           "each set's test split; from the bundle's manifest.json) / the same measured here")
    return speed, acc, rel


def format_table(result: BenchResult) -> str:
    """Plain-text tables (stdout): speed, accuracy, release-time figures."""
    t_speed, t_acc, t_rel = _titles(result)
    lines = [t_speed, *_plain(*table_rows(result))]
    head, body = accuracy_rows(result)
    if body:
        lines += ["", t_acc, *_plain(head, body)]
    else:
        lines += ["", f"accuracy: {NOT_MEASURED} (no format could be measured)"]
    head, body = release_rows(result)
    if body:
        lines += ["", t_rel, *_plain(head, body)]
    lines += _robustness_lines(result)
    cur = _curve(result)
    if cur:
        lines += ["", cur[0], *_plain(*cur[1:])]
    lines += [f"note: {n}" for n in result.notes]
    m = result.machine
    lines.append(f"machine: {m['cpu']}, {m['usable_cores']} cores, flags {' '.join(m['cpu_flags']) or '-'}, "
                 f"threads {m['threads']}, {m['os']}, Python {m['python']}")
    return "\n".join(lines) + "\n"


def _curve(result: BenchResult) -> tuple[str, list[str], list[list[str]]] | None:
    """(title, header, rows) of the --escalate cascade curve, None without one."""
    from edge_dfd.bench import escalation

    got = escalation.curve_lines(result.cascade)
    return None if got is None else (escalation.title(result.cascade), *got)


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


def _md(head: list[str], body: list[list[str]]) -> list[str]:
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return md + ["| " + " | ".join(c.replace("|", "/") for c in b) + " |" for b in body]


def format_markdown(result: BenchResult) -> str:
    t_speed, t_acc, t_rel = _titles(result)
    md = [f"**{t_speed[0].upper() + t_speed[1:]}**", "", *_md(*table_rows(result))]
    head, body = accuracy_rows(result)
    if body:
        md += ["", f"**{t_acc[0].upper() + t_acc[1:]}**", "", *_md(head, body)]
    head, body = release_rows(result)
    if body:
        md += ["", f"**{t_rel[0].upper() + t_rel[1:]}**", "", *_md(head, body)]
    rob = [r for r in result.rows if r.robustness]
    if rob:
        md += ["", "Robustness (accuracy / AUC):", "",
               "| model | format | " + " | ".join(PERTURBATIONS) + " |", "|---|---|" + "---|" * len(PERTURBATIONS)]
        for r in rob:
            md.append(f"| {r.model} | {r.format} | " + " | ".join(
                f"{fmt_cell(r.robustness[p]['accuracy'], '{:.3f}')} / {fmt_cell(r.robustness[p]['auc'], '{:.3f}')}"
                for p in PERTURBATIONS) + " |")
    cur = _curve(result)
    if cur:
        md += ["", f"**{cur[0][0].upper() + cur[0][1:]}**", "", *_md(*cur[1:])]
    m = result.machine
    md += ["", f"Machine: {m['cpu']} ({m['arch']}), {m['usable_cores']} usable cores, flags: "
           f"{', '.join(m['cpu_flags']) or '-'}; threads {m['threads']}; {m['os']}; Python {m['python']}; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    s = result.settings
    md.append(f"Settings: data {s['data'] or 'the bundled evaluation sample'} ({s['split'] or '-'}), "
              f"warm-up {s['warmup']}, runs {s['runs']}, batch-1 latency; end-to-end batch {BATCH}.")
    md += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(md) + "\n"


def format_csv(result: BenchResult) -> str:
    buf = io.StringIO()
    names = list(dict.fromkeys(k for r in result.rows for k in r.flat())) if result.rows else row_fields()
    w = csv.DictWriter(buf, fieldnames=names)
    w.writeheader()
    for r in result.rows:
        w.writerow(r.flat())
    return buf.getvalue()


def write_results(result: BenchResult, out_dir, stem: str = "bench", plot=None) -> list[Path]:
    """bench.json, bench.csv, bench.md (+ the Pareto plot, and with --escalate the cascade curve's plot
    ``cascade.png`` in the Pareto plot's folder) in ``out_dir``, all atomic."""
    out = ensure_writable_dir(out_dir)
    paths = [atomic_write_json(out / f"{stem}.json", result.to_dict()),
             atomic_write_text(out / f"{stem}.csv", format_csv(result)),
             atomic_write_text(out / f"{stem}.md", format_markdown(result))]
    plot_path = Path(plot) if plot else out / "pareto.png"
    p = plot_pareto(result, plot_path)
    if p is not None:
        paths.append(p)
    if result.cascade and "points" in result.cascade:  # --escalate: the curve's own plot beside the Pareto plot
        from edge_dfd.bench.curve import plot_curve

        c = plot_curve(result.cascade, plot_path.with_name("cascade.png"))
        if c is not None:
            paths.append(c)
    return paths


def plot_pareto(result: BenchResult, path) -> Path | None:
    """Latency p50 (x; p90 as the right whisker) vs accuracy (y, with its 95 % Wilson interval; agreement with
    Keras when accuracy is not measured); marker area = file size; each model's Pareto front dashed.
    Without matplotlib: one printed note, no file (``edge_dfd.core.report.pyplot``)."""
    from edge_dfd.core.report import pyplot, save_figure

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
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = np.array([r.latency_ms_p50 for r in rows])
    ys = np.array([getattr(r, ykey) for r in rows])
    mb = np.array([r.size_mb or 0.0 for r in rows])
    if ykey == "accuracy":
        lo = np.array([r.accuracy - (r.accuracy_ci95_low if r.accuracy_ci95_low is not None else r.accuracy)
                       for r in rows])
        hi = np.array([(r.accuracy_ci95_high if r.accuracy_ci95_high is not None else r.accuracy) - r.accuracy
                       for r in rows])
        xhi = np.array([max(0.0, (r.latency_ms_p90 or r.latency_ms_p50) - r.latency_ms_p50) for r in rows])
        ax.errorbar(xs, ys, yerr=[lo, hi], xerr=[np.zeros_like(xhi), xhi], fmt="none", ecolor="0.45",
                    elinewidth=1, capsize=3, label="acc 95% CI (Wilson); latency p50 to p90", zorder=1)
    ax.scatter(xs, ys, s=40 + 400 * mb / max(mb.max(), 1e-9), alpha=0.6, edgecolors="k", zorder=2)
    multi = len({r.model for r in rows}) > 1
    dx, dy = max(np.ptp(xs), 1e-9) * 0.03, max(np.ptp(ys), 1e-9) * 0.03
    for k, (r, x, y) in enumerate(zip(rows, xs, ys)):
        near = sum(1 for j in range(k) if abs(xs[j] - x) < dx and abs(ys[j] - y) < dy)  # stagger equal points
        ax.annotate(f"{r.model}:{r.format}" if multi else r.format, (x, y), textcoords="offset points",
                    xytext=(6, 4 - 10 * near), fontsize=8)
    labelled = False
    for model in dict.fromkeys(r.model for r in rows):  # Pareto front per model: nothing both faster and better
        idx = [i for i, r in enumerate(rows) if r.model == model]
        front = [i for i in idx if not any(xs[j] <= xs[i] and ys[j] >= ys[i] and (xs[j] < xs[i] or ys[j] > ys[i])
                                           for j in idx if j != i)]
        front.sort(key=lambda i: xs[i])
        ax.plot(xs[front], ys[front], "--", color="tab:red", lw=1, label=None if labelled else "Pareto front",
                zorder=3)
        labelled = True
    ax.set_xlabel("latency p50, batch 1 (ms)")
    ax.set_ylabel(ykey if ykey == "accuracy" else "agreement with Keras (probe inputs)")
    n = result.settings.get("n_images")
    where = "bundled sample" if not result.settings.get("data") else "--data"
    ax.set_title(f"edge-dfd bench: latency vs {ykey}" + (f" ({n} images, {where})" if ykey == "accuracy" else "")
                 + "\nmarker area = file size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
