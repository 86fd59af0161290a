"""What benchmarks/ and tools/ share: repository paths, the shared data sets, machine facts, the latency loop.

Every script there runs as a module from the repository root (``python -m benchmarks.quality``,
``python -m tools.port_weights``), so ``edge_dfd``, ``benchmarks`` and ``tools`` import normally: no
``sys.path`` edits, and nothing imports from tests/ (tests may import from here).

- ``REPO``, ``RESULTS`` (benchmarks/results), ``RUNS`` (runs/, git-ignored work folders).
- ``SHARED``: the shared data sets, ``$EDGE_DFD_SHARED_DATA`` or ../shared/data beside the repository (never
  copied into it); ``FACES140K``, ``TPDNE128`` and ``SETS`` (short name -> folder) name the two sets. The one
  place that resolves them: tests/conftest.py imports them from here, the package never reads them
  (tests/test_entry_points.py).
- ``need`` / ``need_data`` / ``need_module``: the fresh-clone guard (one ``error:`` line naming what is missing and
  how to give it, exit 1); ``write_results``: atomic result files, written only when the run is complete.
- ``machine_facts`` / ``versions`` (``edge_dfd.core.machine``) and ``latency_ms`` (``edge_dfd.bench``'s batch-1
  loop), so every result file describes its machine and times a model the same way.
- ``valid_objective``: the teacher recipe's selection score on the valid splits of both sets (benchmarks.quality
  and tools.finetune_torch choose with it).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np

from edge_dfd.core import tfquiet

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


def _prog() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", "") or ""
    return f"python -m {name}" if name.startswith(("benchmarks.", "tools.")) else "this benchmark"


def need(ok: bool, what: str, how: str) -> None:
    """The fresh-clone guard every benchmark shares: when ``ok`` is false, print ONE line on stderr -
    ``error: python -m benchmarks.X needs WHAT; HOW`` - and exit 1 (before anything is measured or written)."""
    if not ok:
        print(f"error: {_prog()} needs {what}; {how}", file=sys.stderr)
        raise SystemExit(1)


def need_data(*roots, flag: str | None = None, split: str = "test") -> None:
    """Stop unless every data set in ``roots`` has ``split``.csv (the shared sets are not in a fresh clone)."""
    missing = [str(r) for r in roots if r is None or not have_split(Path(r), split)]
    how = (f"give {flag} DIR (140k layout) or set" if flag else "set") + \
        " EDGE_DFD_SHARED_DATA to the folder holding faces140k-sample and ffhq-tpdne-128 (default ../shared/data)"
    need(not missing, f"labelled images with a {split} split ({', '.join(missing)} has none)", how)


def need_module(module: str, extra: str = "bench") -> None:
    """Stop unless ``module`` imports (scikit-learn, matplotlib, ...: the benchmarks' extra dependencies)."""
    try:
        importlib.import_module(module)
        ok = True
    except ImportError:
        ok = False
    need(ok, f"the Python package {module.split('.')[0]}", f"pip install -e '.[{extra}]'")


def write_results(files: dict, complete: bool = True) -> list[Path]:
    """Write result files (path -> str, or a dict written as JSON) atomically - only when ``complete``: a run
    that measured nothing, or stopped part-way, never replaces a committed table. Returns the paths written."""
    from edge_dfd.core.fsutil import atomic_write_json, atomic_write_text

    if not complete:
        print(f"note: {_prog()} wrote nothing (the results are incomplete; the committed files are kept)",
              file=sys.stderr)
        return []
    return [atomic_write_json(Path(p), v) if isinstance(v, dict) else atomic_write_text(Path(p), v)
            for p, v in files.items()]


def machine_facts(threads: int | None = None) -> dict:
    from edge_dfd.core.machine import machine_facts as facts

    return facts(threads)


def versions() -> dict:
    from edge_dfd.core.machine import versions as package_versions

    return package_versions()


def latency_ms(backend, inputs: np.ndarray, warmup: int, runs: int, bar=None) -> np.ndarray:
    """Batch-1 ``backend.predict`` times in ms: the bench harness's loop (``edge_dfd.bench.latency_ms``)."""
    from edge_dfd.bench import latency_ms as loop

    return loop(backend, inputs, warmup, runs, bar)


def valid_objective(y, P) -> float:
    """Selection score on VALID only: mean over the two sets of (AUC + accuracy at the valid threshold).
    ``y`` and ``P`` map (set name, "valid") to labels and P(fake)."""
    from edge_dfd.core.metrics import choose_threshold, roc_auc

    yv = np.concatenate([y[(s, "valid")] for s in SETS])
    pv = np.concatenate([P[(s, "valid")] for s in SETS])
    t = choose_threshold(yv, pv)
    return float(np.mean([roc_auc(y[(s, "valid")], P[(s, "valid")])
                          + ((P[(s, "valid")] >= t) == y[(s, "valid")]).mean() for s in SETS])) / 2
