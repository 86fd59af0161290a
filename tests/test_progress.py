"""Progress on stderr (edge_dfd.core.progress) and accuracy on a sample (--sample, Wilson interval).

- A bar with rate and ETA when stderr is a terminal (a real pseudo-terminal here), nothing but log lines when
  stderr is a pipe, at most one plain line every PLAIN_INTERVAL s in plain mode, nothing with --quiet.
- stdout stays clean: --json parses while the bar is drawn.
- bench relays each format's bar from its measuring process, plus the count of formats.
- train draws the steps of each epoch, convert its calibration and verification.
- --sample N draws a class-stratified, seeded sample; the results carry its size, seed and a 95 % interval.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import FACES140K, needs_faces140k
from procs import no_tf_env
from runtime_models import build_tiny_models
from synth import synth_face, write_jpeg

from edge_dfd.bench.evaluate import sample_records
from edge_dfd.core import progress
from edge_dfd.core.errors import UsageError
from edge_dfd.core.metrics import wilson_interval
from edge_dfd.images.data import load_split

BAR = re.compile(r"\d+%\|")  # tqdm's "  40%|████" (never in a plain line or a log line)
FAST = ("--runs", "20", "--warmup", "2")


@pytest.fixture(scope="module")
def models():
    return build_tiny_models()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(40):
        write_jpeg(d / f"{'fake' if i % 2 else 'real'}{i:02d}.jpg", synth_face(i % 2 == 1, 64, 300 + i))
    return d


def run_cli(args, tmp_path, stderr_tty: bool, cols: int = 100, timeout: float = 120):
    """``python -m edge_dfd ARGS`` with stdout piped and stderr on a pseudo-terminal (``stderr_tty``) or a pipe,
    in an environment where importing TensorFlow fails. Returns (returncode, stdout, stderr)."""
    env = no_tf_env(tmp_path)
    cmd = [sys.executable, "-m", "edge_dfd", *[str(a) for a in args]]
    if not stderr_tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, cols, 0, 0))
    out_path = tmp_path / "stdout.txt"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return rc, out_path.read_text(), b"".join(chunks).decode("utf-8", "replace")


# ---------------------------------------------------------------- the helper itself


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(progress, "_clock", c)
    monkeypatch.setattr(progress, "_last_plain", float("-inf"))
    monkeypatch.setattr(progress, "_quiet", False)
    return c


def test_plain_lines_at_most_every_interval(clock):
    err = io.StringIO()  # not a terminal
    b = progress.Bar(100, "scan", unit="img", stream=err)
    assert b.mode == "plain"
    for _ in range(70):  # one image every 0.5 s for 35 s
        clock.t += 0.5
        b.update(1)
    b.close()
    lines = err.getvalue().splitlines()
    # first line 10 s in (20 images at 2 img/s: 80 left = 40 s), then one every 10 s: 3 in 35 s
    assert lines == ["scan: 20/100 img (20%), 2 img/s, elapsed 00:10, ETA 00:40",
                     "scan: 40/100 img (40%), 2 img/s, elapsed 00:20, ETA 00:30",
                     "scan: 60/100 img (60%), 2 img/s, elapsed 00:30, ETA 00:20"]


def test_plain_interval_is_shared_and_short_jobs_are_silent(clock):
    err = io.StringIO()
    a = progress.Bar(None, "outer", unit="format", stream=err)
    b = progress.Bar(1000, "inner", unit="img", stream=err)
    for _ in range(200):  # 25 s, both bars busy
        clock.t += 0.125
        a.update(1)
        b.update(1)
    lines = err.getvalue().splitlines()
    assert len(lines) == 2  # at 10 s and 20 s, not 2 per bar
    assert lines[0] == "outer: 80 format, 8 format/s, elapsed 00:10"  # unknown total: no ETA
    a.close()
    b.close()
    quick = io.StringIO()
    with progress.Bar(5, "quick", stream=quick) as q:
        clock.t += 9.0
        q.update(5)
    assert quick.getvalue() == ""  # under PLAIN_INTERVAL: nothing at all
    slow = io.StringIO()
    with progress.Bar(3, "bench", unit="format", stream=slow) as s:
        clock.t += 20.0
        s.update(1)
    assert slow.getvalue() == "bench: 1/3 format (33%), 20 s/format, elapsed 00:20, ETA 00:40\n"


def test_quiet_and_tty_modes(clock, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    progress.set_quiet(True)
    try:
        q = io.StringIO()
        b = progress.Bar(10, "x", stream=q)
        clock.t += 60
        b.update(10)
        b.close()
        assert b.mode == "closed" and q.getvalue() == "" and progress.mode_for(Tty()) == "off"
    finally:
        progress.set_quiet(False)
    t = Tty()
    with progress.Bar(4, "tty", unit="img", stream=t) as b:
        assert b.mode == "tty"
        b.update(4)
        b.write("a log line")  # printed above the bar, not through it
    text = t.getvalue()
    assert "tty: 100%|" in text and "4/4" in text and "img/s" in text and "a log line\n" in text


def test_relay_and_mirror_round_trip(clock):
    child = io.StringIO()
    make = progress.relay_to(child)
    with make(50, "accuracy", unit="img") as r:
        for _ in range(50):
            clock.t += 0.05
            r.update(1)
    lines = child.getvalue().splitlines()
    assert all(ln.startswith(progress.RELAY_TAG) for ln in lines)
    assert json.loads(lines[0][len(progress.RELAY_TAG):]) == {"open": "accuracy", "total": 50, "unit": "img"}
    assert json.loads(lines[-1][len(progress.RELAY_TAG):]) == {"n": 50, "close": True}
    assert 3 <= len(lines) <= 2 + 50 * 0.05 / progress.RELAY_INTERVAL + 1  # throttled, not one per image
    err = io.StringIO()
    m = progress.Mirror("[2/7] onnx", stream=err)
    seen = []
    for ln in lines[:-1]:
        assert m.feed(ln + "\n") is False
        seen.append((m.bar.desc, m.bar.total, m.bar.n))
    assert seen[0] == ("[2/7] onnx accuracy", 50, 0) and seen[-1][2] > 0
    m.feed(lines[-1])
    assert m.bar is None  # closed with the child's bar
    assert m.feed("an ordinary line\n") == "an ordinary line\n"


def test_wilson_interval():
    lo, hi = wilson_interval(90, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.8256, 0.9448)  # the textbook value
    lo, hi = wilson_interval(1800, 2000)
    assert lo < 0.9 < hi and round(hi - lo, 4) == 0.0263
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(5, 10) == pytest.approx((1 - wilson_interval(5, 10)[1], 1 - wilson_interval(5, 10)[0]))
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


# ---------------------------------------------------------------- --sample


def test_sample_is_stratified_and_reproducible(tiny140k):
    recs = load_split(tiny140k, "test")  # 8 real, 8 fake
    a = sample_records(recs, 6, seed=1)
    assert len(a) == 6 and sum(r.label for r in a) == 3  # 3 real, 3 fake
    assert [r.path for r in sample_records(recs, 6, seed=1)] == [r.path for r in a]
    others = {tuple(r.path for r in sample_records(recs, 6, seed=s)) for s in range(2, 8)}
    assert len(others | {tuple(r.path for r in a)}) > 1  # the seed matters
    assert sample_records(recs, None) is recs and len(sample_records(recs, 16)) == 16
    for bad in (0, -1, 17):
        with pytest.raises(UsageError, match=f"--sample {bad}") as e:
            sample_records(recs, bad, where="test split")
        assert e.value.exit_code == 2


@needs_faces140k
def test_sample_of_the_shared_140k_test_split():
    recs = load_split(FACES140K, "test")
    real = sum(r.label for r in recs) / len(recs)
    s = sample_records(recs, 100, seed=7)
    assert len(s) == 100 and abs(sum(r.label for r in s) - 100 * real) <= 1
    assert [r.path for r in s] == [r.path for r in sample_records(recs, 100, seed=7)]
    assert len({r.path for r in s}) == 100


@pytest.mark.slow
def test_evaluate_and_bench_on_the_same_sample(models, tiny140k, tmp_path, cli_run):
    code, out, err = cli_run("evaluate", models["onnx"], "--data", tiny140k, "--sample", "6", "--seed", "3",
                             "--out", tmp_path / "ev", "--json")
    assert code == 0, err
    ev = json.loads(out)
    assert ev["n"] == 6 and ev["sample"] == {"n": 6, "seed": 3, "of": 16, "stratified": True}
    assert ev["n_real"] == ev["n_fake"] == 3
    k = round(ev["accuracy"] * 6)
    assert ev["accuracy_ci95"] == list(wilson_interval(k, 6))
    assert "stratified sample of 16, seed 3" in err
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["accuracy_ci95"] == ev["accuracy_ci95"]
    assert "95% interval" in (tmp_path / "ev" / "report.txt").read_text()

    code, out, err = cli_run("bench", models["onnx"], "--data", tiny140k, "--sample", "6", "--seed", "3",
                             "--out", tmp_path / "b", "--json", *FAST)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["settings"]["sample"] == {"n": 6, "seed": 3, "of": 16, "stratified": True}
    assert doc["settings"]["n_images"] == 6
    (row,) = doc["rows"]
    assert row["n"] == 6 and row["accuracy"] == ev["accuracy"] and row["auc"] == ev["auc"]  # the same 6 images
    assert [row["accuracy_ci95_low"], row["accuracy_ci95_high"]] == ev["accuracy_ci95"]
    assert "acc [95% CI]" in err and "class-stratified sample of 6 of the 16 images (seed 3)" in err
    md = (tmp_path / "b" / "bench.md").read_text()
    lo, hi = ev["accuracy_ci95"]
    assert f"{lo:.3f}-{hi:.3f}" in md


@pytest.mark.parametrize("args, needle", [
    (("evaluate", "{m}", "--data", "{d}", "--sample", "0"), "'--sample': 0 is not in the range"),
    (("evaluate", "{m}", "--data", "{d}", "--sample", "17"), "--sample 17: larger than the 16 images"),
    (("bench", "{m}", "--data", "{d}", "--sample", "500"), "--sample 500: larger than the 16 images"),
    (("bench", "{m}", "--sample", "700"), "--sample 700: larger than the 660 images of the bundled evaluation sample"),
])
def test_bad_sample_is_a_usage_error(models, tiny140k, tmp_path, cli_run, args, needle):
    args = [str(a).format(m=models["onnx"], d=tiny140k) for a in args] + ["--out", str(tmp_path / "o")]
    code, out, err = cli_run(*args)
    assert code == 2 and needle in err and "Traceback" not in err and out == ""
    assert not (tmp_path / "o").exists()  # refused before anything was written


# ---------------------------------------------------------------- on a terminal, and not


def test_predict_bar_on_a_terminal_json_stays_clean(models, folder, tmp_path):
    rc, out, err = run_cli(["predict", "-m", models["tflite-int8"], folder, "--json", "--batch-size", "4"],
                           tmp_path, stderr_tty=True)
    assert rc == 0, err
    assert BAR.search(err) and "predict tflite-int8" in err and "40/40" in err and "img/s" in err
    doc = json.loads(out)  # nothing of the bar on stdout
    assert doc["summary"]["images"] == 40 and len(doc["results"]) == 40


def test_predict_no_bar_when_piped_or_quiet(models, folder, tmp_path):
    rc, out, err = run_cli(["predict", "-m", models["tflite-int8"], folder, "--json"], tmp_path, stderr_tty=False)
    assert rc == 0, err
    assert not BAR.search(err) and "\r" not in err and "img/s" not in err  # a short job: no plain line either
    assert err.splitlines()[-1].startswith("40 images:")  # the summary line is all
    assert json.loads(out)["summary"]["images"] == 40
    rc, out, err = run_cli(["predict", "-m", models["tflite-int8"], folder, "--quiet"], tmp_path, stderr_tty=True)
    assert rc == 0 and not BAR.search(err) and "40 images:" in err
    assert len(out.splitlines()) == 40  # the table rows


def test_evaluate_bar_on_a_terminal(models, tiny140k, tmp_path):
    rc, out, err = run_cli(["evaluate", models["onnx"], "--data", tiny140k, "--out", tmp_path / "ev", "--json"],
                           tmp_path, stderr_tty=True)
    assert rc == 0, err
    assert BAR.search(err) and "evaluate onnx" in err and "16/16" in err
    assert json.loads(out)["n"] == 16


@pytest.mark.slow
def test_bench_bars_per_format_and_overall(models, tiny140k, tmp_path):
    args = ["bench", models["tflite-int8"], models["onnx"], "--data", tiny140k, "--out", tmp_path / "b", "--json",
            *FAST]
    rc, out, err = run_cli(args, tmp_path, stderr_tty=True)
    assert rc == 0, err
    # each format's phases (warm-up + runs, then the 16 test images), relayed from its measuring process ...
    for fmt in ("[1/2] tflite-int8", "[2/2] onnx"):
        assert re.search(re.escape(fmt) + r" latency: +\d+%\|.*\d+/22 ", err), fmt
        assert re.search(re.escape(fmt) + r" accuracy: +\d+%\|.*\d+/16 ", err), fmt
    assert re.search(r"bench: 100%\|.*\| 2/2 ", err)  # ... and the count of formats
    assert [r["format"] for r in json.loads(out)["rows"]] == ["tflite-int8", "onnx"]
    rc, out, err = run_cli(args, tmp_path, stderr_tty=False)
    assert rc == 0 and not BAR.search(err) and progress.RELAY_TAG not in err and "run/s" not in err
    assert json.loads(out)["rows"][1]["status"] == "ok"


# ---------------------------------------------------------------- train and convert (TensorFlow)


@pytest.mark.slow
def test_train_callback_draws_each_epoch(clock, monkeypatch, capsys):
    pytest.importorskip("tensorflow")
    import keras

    from edge_dfd.train import progress_bars

    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)  # plain mode, a line per step
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(14, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    cb = progress_bars(2, 5, 3)  # estimates: 14 images / batch 4 = 4 steps really; validation 2
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x[:8], y[:8]), callbacks=[cb], verbose=0)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "epoch 1/2: 4/5 step (80%)" in err  # the estimate, then ...
    assert "epoch 2/2: 4/4 step (100%)" in err  # ... the count the first epoch really had
    assert "epoch 1/2 validation: 2/3 step" in err and "epoch 2/2 validation: 2/2 step (100%)" in err
    assert any(re.search(r", loss \d\.\d{4}  accuracy \d\.\d{4}$", ln) for ln in lines)
    assert cb.bar is None  # closed at the end of training


@pytest.mark.slow
def test_convert_shows_calibration_and_verification(tmp_path, clock, monkeypatch, capsys):
    pytest.importorskip("tensorflow")
    from runtime_models import SIZE, tiny_model
    from synth import make_140k

    from edge_dfd.export.convert import convert_model

    root = make_140k(tmp_path / "data", counts={"train": 1, "valid": 10, "test": 1}, size=SIZE)
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)
    (r,) = convert_model(path, "tflite-int8", out_dir=tmp_path, calib_data=root, calib_size=12, verify_size=8)
    assert r.status != "failed", r.error  # 8 images cannot prove the int8 margin: "unproven"
    err = capsys.readouterr().err
    assert "reading calibration images: 12/12 img (100%)" in err
    assert "reading verification images: 8/8 img (100%)" in err
    assert "keras: scoring verification images: 8/8 img (100%)" in err
    assert "tflite-int8: calibrating: 12/12 img (100%)" in err
    assert "tflite-int8: verifying: 8/8 img (100%)" in err
