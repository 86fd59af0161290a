"""``edge-dfd bench``: size, accuracy, latency, throughput and memory of every format, side by side.

Modules: ``result`` (defaults, BenchRow, BenchResult, the floor checks), ``job`` (the typed boundaries:
``BenchRequest`` = one ``run_bench`` call, ``BenchJob`` -> ``Measurement`` = one measuring process, and their
strict JSON wire format), ``worker`` (measure one model file, the latency loop), ``targets`` (model arguments, folders and bundled names -> files; the conversion cache),
``plan`` (``run_bench``), ``accuracy`` (intervals, paired differences, Pareto front), ``report`` (tables,
json / csv / md, Pareto plot), ``escalation`` (``--escalate``: the cascade curve, an extra pass after the per-format one). Every public name is importable from ``edge_dfd.bench`` (loaded on first use, so that the CLI
can read the defaults in ``edge_dfd.bench.result`` without importing numpy).

Each model file is measured in a FRESH subprocess (``worker.measure_isolated``: a ``BenchJob`` in, a
``Measurement`` out, as files; the process runs ``python -c worker.WORKER_CODE JOB RESULT``), so that the
peak RSS of one format is not inflated by another (or by TensorFlow, which only the keras row loads).
``peak_rss_mb`` is that process's high-water mark (Python + numpy + OpenCV + the runtime + the model);
``baseline_rss_mb`` is the same process before it loaded the model.

Timings (``time.perf_counter``):
  load_ms             building the backend (file read, interpreter / session creation)
  first_inference_ms  the first predict() on one image after loading
  latency_ms_p50/90/99  batch-1 predict() (model only: quantise, invoke, dequantise), after ``warmup`` runs
  preprocess_ms       decode + centre-crop + resize of one image (edge_dfd.images.preprocess), sequential
  images_per_s        end to end over the split: threaded decode overlapped with batched inference
  (the accuracy pass, after the latency loop: accuracy never runs while latency is timed)
Accuracy comes from ``edge_dfd.bench.evaluate.score_records``, the function ``edge-dfd evaluate`` uses, on ``--data``
or the bundled evaluation sample (``edge_dfd.runtime.sample.eval_sample``); the worker returns P(fake) per image and the
parent computes the metrics, their 95 % intervals and the paired differences (``accuracy``).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "result": ("BATCH", "DEFAULT_MODEL_PROBES", "DEFAULT_MODEL_RUNS", "DEFAULT_OUT", "DEFAULT_RUNS", "DEFAULT_THREADS",
               "DEFAULT_WARMUP", "NOT_MEASURED", "PREPROCESS_SAMPLE", "PROBE_N", "BenchResult", "BenchRow",
               "check_floor", "check_measured", "fmt_cell"),
    "job": ("BenchJob", "BenchRequest", "Measurement"),
    "worker": ("PERTURBATIONS", "latency_ms", "measure", "measure_isolated"),
    "plan": ("default_probe_inputs", "run_bench"),
    "targets": ("have_tensorflow",),
    "report": ("TABLE_COLS", "format_csv", "format_markdown", "format_table", "plot_pareto", "table_rows",
               "write_results"),
}
_MODULE_OF = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    mod = _MODULE_OF.get(name)
    if mod is None:
        raise AttributeError(f"module 'edge_dfd.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edge_dfd.bench.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
