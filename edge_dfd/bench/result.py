"""What ``edge-dfd bench`` measures: its defaults, one row per (model, format) and the whole result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from edge_dfd.core.errors import EdgeDFDError, QualityGateError

__all__ = ["BATCH", "DEFAULT_MODEL_PROBES", "DEFAULT_MODEL_RUNS", "DEFAULT_OUT", "DEFAULT_RUNS", "DEFAULT_THREADS",
           "DEFAULT_WARMUP", "NOT_MEASURED", "PREPROCESS_SAMPLE", "PROBE_N", "BenchResult", "BenchRow", "check_floor",
           "check_measured", "fmt_cell", "row_fields"]

DEFAULT_THREADS, DEFAULT_WARMUP, DEFAULT_RUNS = 2, 10, 100  # `edge-dfd bench` --threads / --warmup / --runs
DEFAULT_OUT = "bench-results"  # --out: the written results and the conversion cache
PROBE_N = 64
DEFAULT_MODEL_RUNS, DEFAULT_MODEL_PROBES = 50, 32  # `edge-dfd bench` with no model: the bundled detector
PREPROCESS_SAMPLE = 200
BATCH = 32
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class BenchRow:
    """One format of one model. ``None`` = not measured. Definitions: the ``edge_dfd.bench`` docstring."""

    model: str
    format: str
    status: str  # "ok" | "failed: reason" | "below floor" | "skipped: reason"
    path: str = ""
    bytes: int | None = None
    size_mb: float | None = None
    runtime: str | None = None
    provider: str | None = None
    threads: int | None = None
    threshold: float | None = None
    n: int | None = None
    accuracy: float | None = None
    accuracy_ci95_low: float | None = None  # 95 % Wilson interval of the accuracy over the n images
    accuracy_ci95_high: float | None = None
    balanced_accuracy: float | None = None
    balanced_accuracy_ci95_low: float | None = None  # MOVER interval from the two recalls' Wilson intervals
    balanced_accuracy_ci95_high: float | None = None
    auc: float | None = None
    auc_ci95_low: float | None = None  # DeLong's interval
    auc_ci95_high: float | None = None
    auc_note: str | None = None  # why the AUC is n/a (one class only)
    ap: float | None = None
    eer: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    latency_ms_p99: float | None = None
    latency_ms_mean: float | None = None
    preprocess_ms: float | None = None
    images_per_s: float | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    peak_rss_mb: float | None = None
    baseline_rss_mb: float | None = None
    agreement: float | None = None  # fraction of identical verdicts vs the Keras model on probe inputs
    max_abs_diff: float | None = None  # max |dP(fake)| vs the Keras model on probe inputs
    skipped_images: int | None = None
    # paired differences against the group's reference file (its source .keras, else its fp32 file), on the
    # same images: this format MINUS the reference (negative = this format loses). acc: Newcombe's hybrid score
    # interval (verdicts.paired_accuracy_diff); AUC: DeLong (verdicts.paired_auc_diff)
    reference: str | None = None
    acc_diff: float | None = None
    acc_diff_ci95_low: float | None = None
    acc_diff_ci95_high: float | None = None
    auc_diff: float | None = None
    auc_diff_ci95_low: float | None = None
    auc_diff_ci95_high: float | None = None
    pareto: bool | None = None  # on the latency p50 vs accuracy Pareto front (point estimates) of its model
    by_set: dict | None = field(default=None)  # set -> {"n", "accuracy", "auc"} (the bundled sample's two sets)
    release: dict | None = field(default=None)  # release-time figures of a bundled file (zoo.release_figures)
    robustness: dict | None = field(default=None)  # perturbation -> {"accuracy", "auc"}

    def to_dict(self) -> dict:
        return asdict(self)

    def flat(self) -> dict:
        """to_dict with robustness spread into ``rob_<name>_acc`` / ``rob_<name>_auc`` columns (CSV)."""
        from edge_dfd.images.perturb import PERTURBATIONS

        d = self.to_dict()
        for name, r in (d.pop("by_set") or {}).items():
            d[f"{name}_acc"], d[f"{name}_auc"], d[f"{name}_n"] = r.get("accuracy"), r.get("auc"), r.get("n")
        rel = d.pop("release") or {}
        for name, r in rel.items():
            if isinstance(r, dict):
                d[f"release_{name}_acc"], d[f"release_{name}_auc"] = r.get("accuracy"), r.get("auc")
        rob = d.pop("robustness") or {}
        for name in PERTURBATIONS:
            r = rob.get(name) or {}
            d[f"rob_{name}_acc"] = r.get("accuracy")
            d[f"rob_{name}_auc"] = r.get("auc")
        return d


@dataclass
class BenchResult:
    machine: dict
    rows: list[BenchRow]
    notes: list[str]
    settings: dict
    cascade: dict | None = None  # --escalate: the measured cascade curve (edge_dfd.bench.escalation)

    def to_dict(self) -> dict:
        d = {"machine": self.machine, "settings": self.settings,
             "rows": [r.to_dict() for r in self.rows], "notes": self.notes}
        if self.cascade is not None:
            d["cascade"] = self.cascade
        return d



def row_fields() -> list[str]:
    """The BenchRow field names (the CSV header when there are no rows)."""
    return [f.name for f in fields(BenchRow)]


def fmt_cell(v, spec="{:.4f}") -> str:
    """A table cell: ``spec`` applied to ``v``, "-" for None, ``str(v)`` when ``spec`` does not apply."""
    if v is None:
        return "-"
    try:
        return spec.format(v)
    except (ValueError, TypeError):
        return str(v)


def check_floor(result: BenchResult, floor: float | None) -> None:
    """QualityGateError (exit 3) naming every format whose accuracy is below ``floor``."""
    if floor is None:
        return
    bad = [r for r in result.rows if r.status == "below floor"]
    if bad:
        listed = ", ".join(f"{r.model}:{r.format}={fmt_cell(r.accuracy)}" for r in bad)
        raise QualityGateError(f"accuracy below the floor {floor}: {listed}")


def check_measured(result: BenchResult) -> None:
    """EdgeDFDError (exit 1) when no row could be measured at all (every model failed or was skipped)."""
    if result.rows and not any(r.status in ("ok", "below floor") for r in result.rows):
        raise EdgeDFDError("nothing was measured: " + " | ".join(f"{r.model} {r.format}: {r.status}"
                                                                  for r in result.rows))


