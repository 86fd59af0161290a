"""``edge-dfd bench --escalate MODEL``: the cascade's speed / accuracy curve as an extra pass after the
per-format pass. The first model is one file of the bench's first MODEL (``pick_first``), the second the
``--escalate`` model; ``edge_dfd.bench.curve.cascade_curve`` then MEASURES, on the same labelled images as the
accuracy pass, the first model alone, the second alone and the cascade at each fraction (one face per call,
interleaved face by face), in this process.

The escalation model is loaded and run once (``check_second``) before any work, and the pair's calibration table
is found (or computed from ``--calib-data``) before the per-format pass (``prepare``): bad input is one line, exit 1,
before anything is measured."""

from __future__ import annotations

from edge_dfd.core.errors import EdgeDFDError, ModelError

__all__ = ["FIRST_FORMAT", "check_second", "curve_fractions", "curve_lines", "measure_curve", "pick_first",
           "prepare"]

DEFAULT_FRACTION = 0.2  # = edge_dfd.cli.escalate.DEFAULT_FRACTION (0.2 is on the curve anyway)
FIRST_FORMAT = "tflite-int8"  # the first model's format when the first MODEL has several (else its first file)


def curve_fractions(fraction: float | None) -> tuple[float, ...]:
    """``CURVE_FRACTIONS`` plus ``--escalate-fraction`` when given, ascending."""
    from edge_dfd.runtime.cascade import CURVE_FRACTIONS

    fr = set(CURVE_FRACTIONS) | ({float(fraction)} if fraction is not None else set())
    return tuple(sorted(fr))


def check_second(escalate: str, threads: int | None):
    """Load the escalation model and run it once on a grey face (``load_second``): one ModelError line when it
    is not a detector or cannot run in this install."""
    from edge_dfd.runtime.cascade import load_second

    return load_second(escalate, threads)


def pick_first(groups):
    """The first model of the cascade: the first MODEL's (group's) ``FIRST_FORMAT`` file when it has one, else its
    first measurable non-Keras file, else its first measurable one."""
    group = groups[0] if groups else []
    ok = [t for t in group if t.status is None and t.path is not None]
    for pick in ([t for t in ok if t.fmt == FIRST_FORMAT], [t for t in ok if t.fmt != "keras"], ok):
        if pick:
            return pick[0]
    name = group[0].group if group else "the first MODEL"
    raise ModelError(f"--escalate: {name} has no file that can be measured as the cascade's first model "
                     f"({'; '.join(f'{t.fmt}: {t.status}' for t in group) or 'no files'})")


def prepare(target, escalate: str, fraction: float, calib_data, threads: int, provider: str | None, log):
    """The Cascade of ``target``'s file -> ``escalate`` (its calibration table found, or computed from
    ``calib_data`` and cached): ModelError when the pair has none."""
    from edge_dfd.runtime import load_model
    from edge_dfd.runtime.cascade import load_cascade

    onnx = target.path.suffix.lower() == ".onnx"
    first = load_model(str(target.path), threads=threads, provider=provider if onnx else None)
    return load_cascade(first, escalate, fraction, calib_data=calib_data, threads=threads, log=log)


def measure_curve(cascade, target, escalate: str, records, sets, fractions, log) -> dict:
    """The measured curve (``cascade_curve``) as bench.json's ``cascade`` block; an error while measuring it
    becomes ``{"error": ...}`` (the per-format rows are kept and written)."""
    from edge_dfd.bench.curve import cascade_curve

    try:
        res = cascade_curve(cascade, records, fractions=fractions, batch_size=1, log=log, groups=sets)
    except EdgeDFDError as exc:
        return {"error": str(exc), "model": target.group, "format": target.fmt, "escalate": escalate}
    return {"model": target.group, "format": target.fmt, "escalate": escalate, "escalate_fraction": cascade.fraction,
            "band": None if cascade.band == float("inf") else round(cascade.band, 6), "fractions": list(fractions),
            **res}


def title(block: dict) -> str:
    """The curve table's title: the pair, the rule, how it was measured."""
    f, s = block["first"], block["second"]
    first = f["file"] if block["model"] == f["file"] else f"{block['model']} {f['format']} ({f['file']})"
    second = (s["file"] if str(block["escalate"]).endswith(s["file"])
              else f"{block['escalate']} {s['format']} ({s['file']})")
    return (f"cascade curve {first} -> {second}, rule {block['rule']}: measured on {block['images']} labelled "
            "images, one face per call, the points interleaved face by face; ms/face = mean wall time of a call (resize included); "
            "vs first = paired difference on the same images")


def curve_lines(block: dict | None) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of the plain-text curve table, None without a measured curve."""
    if not block or "points" not in block:
        return None
    # accuracy to 4 places, as stored (0.9045 printed to 3 would read 0.904 beside the per-format table's 0.905)
    head = ["point", "escalated", "acc [95% CI]", "vs first [95% CI]", "bal.acc", "AUC [95% CI]", "ms/face",
            "x second", "gap recovered"]
    body = []
    for p in block["points"]:
        ci, aci, v = p["accuracy_ci95"], p["auc_ci95"], p["vs_first"]
        auc = "n/a" if p["auc"] is None else f"{p['auc']:.3f} [{aci[0]:.3f}-{aci[1]:.3f}]"
        body.append([p["name"], "-" if p["escalated_share"] is None else f"{p['escalated_share']:.3f}",
                     f"{p['accuracy']:.4f} [{ci[0]:.3f}-{ci[1]:.3f}]",
                     f"{v['diff'] + 0.0:+.3f} [{v['ci95'][0] + 0.0:+.3f}, {v['ci95'][1] + 0.0:+.3f}]",
                     f"{p['balanced_accuracy']:.3f}", auc, f"{p['ms_per_face']:.2f}",
                     "-" if p["time_vs_second"] is None else f"{p['time_vs_second']:.3f}",
                     "-" if p["gap_recovered"] is None else f"{p['gap_recovered']:.2f}"])
    return head, body
