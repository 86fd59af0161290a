"""The settings of ``edge-dfd evaluate`` and ``edge-dfd bench`` (``edge_dfd.core.options``): each field's default,
help and choices; the CLI builds its options from them and ``evaluate`` / ``run_bench`` share the defaults
(tests/test_options_owner.py compares them). ``--escalate``'s: ``edge_dfd.runtime.options.EscalateSettings``."""

from __future__ import annotations

from dataclasses import dataclass

from edge_dfd.bench.result import DEFAULT_MODEL_RUNS, DEFAULT_OUT, DEFAULT_RUNS, DEFAULT_THREADS, DEFAULT_WARMUP
from edge_dfd.core.formats import FORMATS
from edge_dfd.core.options import listing, setting
from edge_dfd.images.data import SPLITS
from edge_dfd.images.perturb import PERTURBATIONS
from edge_dfd.runtime.options import PROVIDER_HELP

SAMPLE_CI = "the accuracy's 95% interval says how far it can be from the whole split's."


@dataclass
class EvaluateOptions:
    """``edge-dfd evaluate MODEL`` (``edge_dfd.bench.evaluate.evaluate``)."""

    data: str | None = setting(None, kind="dir",
                               help="Dataset folder (140k CSV layout or DIR/<split>/{real,fake}/) [default: the "
                                    "bundled evaluation sample, 660 labelled test images of two sets; --split does "
                                    "not apply to it].")
    format: str | None = setting(None, choices=FORMATS,
                                 help="Format of a bundled MODEL ('default', 'ten-pass') to evaluate [default: "
                                      "tflite-fp32, or the only one it ships].")
    split: str = setting("test", choices=SPLITS)
    out: str | None = setting(None, kind="dir",
                              help="Folder for report.json, report.txt, confusion_matrix.png [default: "
                                   "eval/<model>_<split>].")
    threads: int | None = setting(None, range=(1, None), kind="int", help="Inference threads (default: all cores).")
    batch_size: int = setting(32, range=(1, None))
    provider: str | None = setting(None, help=PROVIDER_HELP)
    sample: int | None = setting(None, range=(1, None), kind="int", metavar="N",
                                 help="Evaluate a class-stratified sample of N images of the split (reproducible with "
                                      "--seed); " + SAMPLE_CI)
    seed: int = setting(0, help="Seed of the --sample draw.")


@dataclass
class BenchOptions:
    """``edge-dfd bench [MODEL]...`` (``edge_dfd.bench.plan.run_bench``)."""

    data: str | None = setting(None, kind="dir",
                               help="Labelled images (140k layout or DIR/<split>/{real,fake}/) to measure accuracy, "
                                    "AUC, ... on, instead of the bundled evaluation sample (660 images).")
    split: str = setting("test", choices=SPLITS)
    sample: int | None = setting(None, range=(1, None), kind="int", metavar="N",
                                 help="Measure accuracy on a class-stratified sample of N images of --data "
                                      "(reproducible with --seed; the same images for every format; the bundled "
                                      "sample without --data), e.g. 2000 to compare formats in minutes. "
                                      + SAMPLE_CI[0].upper() + SAMPLE_CI[1:])
    seed: int = setting(0, help="Seed of the --sample draw.")
    formats: str = setting("all", opts=("--formats", "--format"),
                           help="Formats to measure, 'all' or a comma list: those a .keras MODEL is converted to, or "
                                "the files of a bundled model ('default', 'ten-pass') or a convert output FOLDER to "
                                "measure.")
    threads: int = setting(DEFAULT_THREADS, range=(1, None))
    warmup: int = setting(DEFAULT_WARMUP, range=(0, None))
    runs: int | None = setting(None, range=(1, None), kind="int",
                               help=f"Timed batch-1 runs per format [default: {DEFAULT_RUNS}; {DEFAULT_MODEL_RUNS} for "
                                    "the bundled model when no MODEL is given].")
    floor: float | None = setting(None, range=(0, 1), kind="float",
                                  help="Exit with code 3 if any format's accuracy is below this (a CI gate).")
    robustness: bool = setting(False, flag=True,
                               help="Also accuracy/AUC under each perturbation of edge_dfd.images.perturb: "
                                    + listing(PERTURBATIONS) + ".")
    provider: str | None = setting(None, help=PROVIDER_HELP)
    out: str = setting(DEFAULT_OUT, kind="dir", help="Folder for bench.json/.csv/.md, pareto.png and the conversion "
                                                    "cache.")
    plot: str | None = setting(None, kind="file", help="Pareto plot file [default: OUT/pareto.png].")
