"""What benchmarks/ and tools/ share: repository paths, the shared data sets, machine facts, the latency loop.

Every script there runs as a module from the repository root (``python -m benchmarks.quality``,
``python -m tools.port_weights``), so ``edge_dfd``, ``benchmarks`` and ``tools`` import normally: no
``sys.path`` edits, and nothing imports from tests/ (tests may import from here).

- ``REPO``, ``RESULTS`` (benchmarks/results), ``RUNS`` (runs/, git-ignored work folders).
- ``SHARED``: the shared data sets, ``$EDGE_DFD_SHARED_DATA`` or ../shared/data beside the repository (never
  copied into it); ``FACES140K``, ``TPDNE128`` and ``SETS`` (short name -> folder) name the two sets.
- ``machine_facts`` / ``versions`` (``edge_dfd.machine``) and ``latency_ms`` (``edge_dfd.bench``'s batch-1
  loop), so every result file describes its machine and times a model the same way.
- ``valid_objective``: the teacher recipe's selection score on the valid splits of both sets (benchmarks.quality
  and tools.finetune_torch choose with it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge_dfd import tfquiet

tfquiet.install()  # TensorFlow's start-up log off for every benchmark (EDGE_DFD_DEBUG=1 brings it back)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
RUNS = REPO / "runs"
SHARED = Path(os.environ.get("EDGE_DFD_SHARED_DATA", REPO.parent / "shared" / "data"))
FACES140K = SHARED / "faces140k-sample"
TPDNE128 = SHARED / "ffhq-tpdne-128"
SETS = {"140k": FACES140K, "tpdne": TPDNE128}


def have_split(root: Path, split: str = "test") -> bool:
    """Whether the data set at ``root`` has ``split``.csv (the shared sets are absent from a fresh clone)."""
    return (Path(root) / f"{split}.csv").is_file()


def machine_facts(threads: int | None = None) -> dict:
    from edge_dfd.machine import machine_facts as facts

    return facts(threads)


def versions() -> dict:
    from edge_dfd.machine import versions as package_versions

    return package_versions()


def latency_ms(backend, inputs: np.ndarray, warmup: int, runs: int, bar=None) -> np.ndarray:
    """Batch-1 ``backend.predict`` times in ms: the bench harness's loop (``edge_dfd.bench.latency_ms``)."""
    from edge_dfd.bench import latency_ms as loop

    return loop(backend, inputs, warmup, runs, bar)


def valid_objective(y, P) -> float:
    """Selection score on VALID only: mean over the two sets of (AUC + accuracy at the valid threshold).
    ``y`` and ``P`` map (set name, "valid") to labels and P(fake)."""
    from sklearn.metrics import roc_auc_score

    from edge_dfd.metrics import choose_threshold

    yv = np.concatenate([y[(s, "valid")] for s in SETS])
    pv = np.concatenate([P[(s, "valid")] for s in SETS])
    t = choose_threshold(yv, pv)
    return float(np.mean([roc_auc_score(y[(s, "valid")], P[(s, "valid")])
                          + ((P[(s, "valid")] >= t) == y[(s, "valid")]).mean() for s in SETS])) / 2
