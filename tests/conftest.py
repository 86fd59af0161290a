import os
import sys
from pathlib import Path

import pytest

# tests/ (its helper modules) and the repository root (edge_dfd, benchmarks: tests may import both)
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One pytest-xdist worker per core, each starting TensorFlow processes: one TensorFlow compute thread per
    # process (the TensorFlow processes a test starts inherit it), so that two workers do not run four spinning
    # compute threads on two cores.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

from synth import make_140k  # noqa: E402

from benchmarks.common import FACES140K, TPDNE128  # noqa: E402  (the one resolver of the shared data sets)

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one pytest-xdist worker per core for the suite or a folder, but at most
    one per named test file, and none (the tests run in this process) when the arguments name a single file or
    single tests: a one-test run does not pay for starting workers. PYTEST_XDIST_AUTO_NUM_WORKERS still wins."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    files = set()
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if not path.is_file():
            return None  # a folder (the default: tests/): xdist's own count, one per core
        files.add(path.resolve())
    return 0 if len(files) <= 1 else min(len(files), os.cpu_count() or 1)


# The files that take longest for their number of tests (measured alone on 2 cores: training runs, multi-process
# runs, conversions, a real browser), longest first. pytest-xdist hands whole files to its workers in the order
# pytest_collection_modifyitems leaves them (--no-loadscope-reorder in pyproject's addopts): long files first, so
# that the two workers end together on short ones instead of one of them starting a long file last.
LONG_FILES = ("test_docs_commands.py", "test_distribute_deploy.py", "test_distribute.py", "test_train_deploy.py",
              "test_bench.py", "test_backbones.py", "test_convert_archs.py", "test_bench_sample.py", "test_train.py",
              "test_live_service.py", "test_live_web_attack.py", "test_live_web_browser.py")


@pytest.hookimpl(trylast=True)  # after -m / -k deselected what does not run
def pytest_collection_modifyitems(config, items):
    """Files in the order the workers should take them: LONG_FILES, then the files with the most selected slow
    tests, then the most tests (pytest-xdist's own order). A file's tests keep their order (a stable sort)."""
    from collections import Counter

    rank = {name: i for i, name in enumerate(LONG_FILES)}
    n_items = Counter(item.path for item in items)
    n_slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -n_slow[item.path], -n_items[item.path]))


def _have(path: Path) -> bool:
    return (path / "train.csv").is_file() or (path / "test.csv").is_file()


needs_faces140k = pytest.mark.skipif(
    not _have(FACES140K), reason=f"needs the shared 140k sample at {FACES140K} (not part of a fresh clone)"
)
needs_tpdne = pytest.mark.skipif(
    not _have(TPDNE128), reason=f"needs the shared ffhq-tpdne-128 set at {TPDNE128} (not part of a fresh clone)"
)


@pytest.fixture(scope="session", autouse=True)
def _session_cache_root(tmp_path_factory):
    """Expensive inputs (tests/session_cache.py) live in this run's temporary folder, one copy for all xdist workers."""
    import session_cache

    base = tmp_path_factory.getbasetemp()
    session_cache.ROOT = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "session-cache"


@pytest.fixture(scope="session")
def tiny140k(tmp_path_factory):
    """A generated 140k-layout dataset (16/8/8 images per class, 64 px JPEG). Read-only: copy to modify."""
    return make_140k(tmp_path_factory.mktemp("tiny140k"))


@pytest.fixture
def cli_run():
    """Run the CLI in-process; returns (exit_code, stdout, stderr)."""
    from edge_dfd.cli import main

    def run(*args):
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return run
