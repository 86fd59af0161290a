"""benchmarks/finetune_check.py without training: its options, the fresh-clone line, the child-process measure, and
the verdict and table from fake scores (the real run: `python -m benchmarks.finetune_check`, ~5 min)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import finetune_check as fc

REPO = Path(__file__).resolve().parents[1]


def test_options_and_the_train_command(tmp_path):
    a = fc.parse_args([])
    assert (a.epochs, a.steps, a.batch_size, a.lr, a.patience, a.label) == (1, 20, 32, None, None, "")
    cmd = fc.train_command(a, tmp_path / "run", python="py")
    assert cmd[:8] == ["py", "-m", "edge_dfd", "train", "--recipe", "deploy", "--init", "default"]
    assert cmd[cmd.index("--epochs") + 1] == "1" and cmd[cmd.index("--steps-per-epoch") + 1] == "20"
    assert [cmd[i + 1] for i, x in enumerate(cmd) if x == "--data"] == [str(fc.FACES140K), str(fc.TPDNE128)]
    assert "--lr" not in cmd and "--patience" not in cmd  # train's own defaults (1e-5 from a trained detector)
    b = fc.parse_args(["--epochs", "3", "--steps", "60", "--lr", "1e-4", "--patience", "0", "--label", "3x60"])
    cmd = fc.train_command(b, tmp_path / "run", python="py")
    assert cmd[cmd.index("--lr") + 1] == "0.0001" and cmd[cmd.index("--patience") + 1] == "0"
    assert fc.result_stem(b.label) == "finetune_check_3x60" and fc.result_stem("") == "finetune_check"


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--epochs", "0"], ["--lr", "0"], ["--label", "../x"]])
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        fc.parse_args(argv)
    assert e.value.code == 2 and argv[0] in capsys.readouterr().err


def test_fresh_clone_stops_with_one_line():
    env = {**os.environ, "EDGE_DFD_SHARED_DATA": str(REPO / "no-shared-data-here"), "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "benchmarks.finetune_check"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith("error: python -m benchmarks.finetune_check needs labelled images with a train split")
    assert "no-shared-data-here" in lines[0] and "EDGE_DFD_SHARED_DATA" in lines[0] and not res.stdout


def test_child_measure_and_failure_line(tmp_path):
    ok = fc.run_child([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                      tmp_path / "ok.log")
    assert ok["seconds"] > 0 and ok["peak_rss_mb"] >= 200  # the child's own peak, not this process's
    with pytest.raises(SystemExit) as e:
        fc.run_child([sys.executable, "-c", "import sys; print('first'); print('boom: bad data'); sys.exit(4)"],
                     tmp_path / "bad.log")
    assert str(e.value.code).startswith("error: ") and str(e.value.code).endswith("exited 4: boom: bad data")


def _scores(y, p, threshold=0.5):
    ok = (p >= threshold) == y.astype(bool)
    n = len(y)
    return {"model": "m", "threshold": threshold, "n": n, "accuracy": float(ok.mean()), "auc": 0.95,
            "by_set": {"tpdne128": {"n": n - 10, "accuracy": 0.9, "auc": 0.9},
                       "faces140k": {"n": 10, "accuracy": 0.8, "auc": 0.8}}, "y": y, "p": p}


def _pair(lost: int, gained: int, n: int = 600):
    """Default right on 540 of n; the fine-tune loses ``lost`` of them and gains ``gained`` of the 60 it missed."""
    y = np.arange(n) % 2
    right = np.where(y == 1, 0.9, 0.1)
    wrong = 1 - right
    pd = np.where(np.arange(n) < 540, right, wrong)
    pt = pd.copy()
    pt[:lost] = wrong[:lost]
    pt[540:540 + gained] = right[540:540 + gained]
    return _scores(y, pd), _scores(y, pt)


def test_verdict_from_paired_scores():
    d, t = _pair(lost=3, gained=0)  # -0.5 point
    c = fc.compare(d, t)
    a = c["accuracy_diff"]
    assert (a["n"], a["a_only"], a["b_only"]) == (600, 0, 3) and a["diff"] == pytest.approx(-0.005)
    assert a["low"] < -0.005 < a["high"] and c["within_1_point"]
    d, t = _pair(lost=12, gained=3)  # -1.5 points
    c = fc.compare(d, t)
    assert c["accuracy_diff"]["diff"] == pytest.approx(-0.015) and not c["within_1_point"]
    assert not c["bound_within_1_point"]
    d, t = _pair(lost=6, gained=0)  # exactly -1 point: within
    assert fc.compare(d, t)["within_1_point"]
    d, t = _pair(lost=0, gained=6)
    assert fc.compare(d, t)["accuracy_diff"]["diff"] == pytest.approx(0.01)
    with pytest.raises(ValueError):
        fc.compare(d, dict(t, y=1 - t["y"]))


def test_table_from_a_fake_result():
    d, t = _pair(lost=12, gained=3)
    res = {"settings": vars(fc.parse_args(["--label", "x"])), "train": {"seconds": 294.4, "peak_rss_mb": 3950.2},
           "default": d, "finetuned": t, "comparison": fc.compare(d, t), "machine": {}, "load_avg": 1.5}
    md = fc.table(res)
    assert md.startswith("# Fine-tune check (`python -m benchmarks.finetune_check --label x`)")
    assert "| default | 0.9000 | 0.9500 | 0.8000 | 0.9000 | 0.5000 |" in md
    assert "| fine-tuned | 0.8850 | 0.9500 |" in md
    assert "-1.50 points" in md and "**NOT within 1 point**" in md and "(3 images right only after, 12 only before)" in md
    assert "294 s wall, peak RSS 3950 MB" in md and "lr train's default (1e-5)" in md
