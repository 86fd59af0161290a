"""Reports and plots written in one place: report.json, report.txt, confusion_matrix.png, curves.png.

All files are written atomically. matplotlib (the ``plots`` extra) runs with the non-interactive Agg backend;
without it the plots are skipped with one note on stderr each and everything else is still written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edge_dfd.core.fsutil import atomic_path, atomic_write_json, atomic_write_text, ensure_writable_dir
from edge_dfd.core.metrics import CLASS_NAMES, binary_report, report_text


def pyplot(what=None):
    """matplotlib.pyplot, or None (after a one-line note naming ``what`` on stderr) when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        if what is not None:
            print(f"note: {what} not written: plots need matplotlib (pip install 'edge-dfd[plots]')", file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> Path:
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


def plot_confusion_matrix(cm, path, title: str = "Confusion matrix") -> Path | None:
    plt = pyplot(path)
    if plt is None:
        return None
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks([0, 1], labels=[f"pred {c}" for c in CLASS_NAMES])
    ax.set_yticks([0, 1], labels=[f"true {c}" for c in CLASS_NAMES])
    vmax = cm.max() if cm.size else 0
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black", fontsize=13)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_curves(history: dict, path, title: str = "Training curves") -> Path | None:
    """Accuracy and loss, train vs validation (the study's Figures 13/16/19); None without matplotlib."""
    plt = pyplot(path)
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = np.asarray(history.get("epoch", range(1, len(history.get("loss", [])) + 1)))
    for ax, key in zip(axes, ("accuracy", "loss")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            vals = history.get(prefix + key)
            if vals is not None and len(vals):
                ax.plot(epochs[: len(vals)], vals, style, label=("validation " if prefix else "train ") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def write_report(out_dir, y_fake, p_fake, threshold: float, title: str = "", extra: dict | None = None) -> dict:
    """Compute the report and write report.json, report.txt and confusion_matrix.png into out_dir.

    The returned dict (not the file) also lists the names written under ``files`` (no PNG without matplotlib)."""
    out = ensure_writable_dir(out_dir)
    rep = binary_report(y_fake, p_fake, threshold)
    if extra:
        rep.update(extra)
    atomic_write_json(out / "report.json", rep)
    atomic_write_text(out / "report.txt", report_text(rep, title))
    png = plot_confusion_matrix(rep["confusion_matrix"], out / "confusion_matrix.png", title or "Confusion matrix")
    rep["files"] = ["report.json", "report.txt"] + ([png.name] if png is not None else [])
    return rep
