"""Guarantee: every output file is written atomically (temporary file beside it + rename). A command that
fails or is killed midway leaves either the complete new file or the untouched old one - never a
half-written file under the final name - and no temporary files when it fails normally.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hostile import (
    REPO,
    assert_clean_failure,
    cached,
    good_jpeg,
    tiny_keras,
    tiny_onnx,
    write_dataset,
    write_good,
    write_video,
)

from edge_dfd.core.errors import EdgeDFDError
from edge_dfd.core.fsutil import atomic_path, atomic_write_json

OLD = b"old complete content\n"


def _disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("atomic")
    return {"model": tiny_onnx(d / "m.onnx"), "imgs": write_good(d / "imgs", 6)[0].parent,
            "ds": write_dataset(d / "ds", per_class=2), "video": write_video(d / "clip.avi", frames=6)}


def test_atomic_path_keeps_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "report.json"
    target.write_bytes(OLD)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b'{"half": ')
        raise RuntimeError("killed midway")
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []


def test_disk_full_is_one_line_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_bytes(OLD)
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(EdgeDFDError, match=f"cannot write {target}: No space left on device"):
        atomic_write_json(target, {"a": 1})
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []


def test_predict_out_failing_midway(env, tmp_path, cli_run, monkeypatch):
    from edge_dfd.runtime.onnx import ONNXBackend

    out = tmp_path / "res.csv"
    out.write_bytes(OLD)
    real, calls = ONNXBackend._invoke, []

    def flaky(self, x):
        calls.append(len(x))
        if len(calls) == 2:
            raise RuntimeError("runtime crashed on batch 2")
        return real(self, x)

    monkeypatch.setattr(ONNXBackend, "_invoke", flaky)
    code, _, err = cli_run("predict", "--model", env["model"], env["imgs"], "--out", out, "--batch-size", "2")
    assert_clean_failure(code, err, 1, "runtime crashed on batch 2")
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == []


@pytest.mark.parametrize("verb", ["evaluate", "bench"])
def test_reports_when_the_disk_fills(verb, env, tmp_path, cli_run, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    name = "report.json" if verb == "evaluate" else "bench.json"
    (out / name).write_bytes(OLD)
    args = {"evaluate": ("evaluate", env["model"], "--data", env["ds"], "--out", out),
            "bench": ("bench", env["model"], "--data", env["ds"], "--runs", "2", "--warmup", "0", "--out", out)}[verb]
    monkeypatch.setattr(os, "fsync", _disk_full)
    code, _, err = cli_run(*args)
    assert_clean_failure(code, err, 1, f"cannot write {out / name}: No space left on device")
    assert (out / name).read_bytes() == OLD and _leftovers(out) == []


def test_live_outputs_when_the_model_fails_midway(env, tmp_path, cli_run, monkeypatch):
    """live's events and video are streams, not atomic files (issue 17): a run that fails midway keeps the old
    lines, appends the frames it finished and finalises the video with them; no temporary file is left."""
    import cv2

    from edge_dfd.runtime.onnx import ONNXBackend

    events, video = tmp_path / "events.jsonl", tmp_path / "v.avi"
    events.write_bytes(OLD)
    real, calls = ONNXBackend._invoke, []

    def flaky(self, x):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("runtime crashed on frame 3")
        return real(self, x)

    def frames(path):
        cap, n = cv2.VideoCapture(str(path)), 0
        while cap.read()[0]:
            n += 1
        return n

    monkeypatch.setattr(ONNXBackend, "_invoke", flaky)
    code, _, err = cli_run("live", "--model", env["model"], "--faces", "none", "--source", env["video"],
                           "--events", events, "--save", video)
    assert_clean_failure(code, err, 1, "runtime crashed on frame 3")
    lines = events.read_bytes().splitlines(keepends=True)
    assert lines[0] == OLD and [json.loads(ln)["frame"] for ln in lines[1:]] == [0, 1]
    assert frames(video) == 2 and _leftovers(tmp_path) == [] and not list(tmp_path.glob("*.partial.*"))
    monkeypatch.setattr(ONNXBackend, "_invoke", real)
    code, _, err = cli_run("live", "--model", env["model"], "--faces", "none", "--source", env["video"],
                           "--events", events, "--save", video)
    assert code == 0, err
    lines = [json.loads(ln) for ln in events.read_bytes().splitlines()[3:]]
    assert [ev["frame"] for ev in lines] == list(range(6)) and frames(video) == 6 and _leftovers(tmp_path) == []


@pytest.mark.slow  # a conversion: its worker pays TensorFlow's converter start-up
def test_convert_export_failing_midway(tmp_path, cli_run, monkeypatch):
    pytest.importorskip("tensorflow")
    keras_path = cached("good_keras", lambda d: tiny_keras(d / "good.keras"))
    out = tmp_path / "exports"
    out.mkdir()
    (out / "good_fp32.tflite").write_bytes(OLD)
    monkeypatch.setattr(os, "fsync", _disk_full)
    code, _, err = cli_run("convert", keras_path, "--formats", "tflite-fp32", "--out", out, "--no-verify")
    assert_clean_failure(code, err, 1, "No space left on device")
    assert (out / "good_fp32.tflite").read_bytes() == OLD and _leftovers(out) == []


@pytest.mark.slow
def test_sigkill_during_predict_never_leaves_a_partial_file(tmp_path):
    """A real process, really killed (SIGKILL) while it streams rows: the old --out file stays intact."""
    model = tiny_onnx(tmp_path / "m.onnx")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    data = good_jpeg(size=128)
    for i in range(3000):
        (imgs / f"{i:05d}.jpg").write_bytes(data)
    out = tmp_path / "res.csv"
    out.write_bytes(OLD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "edge_dfd", "predict", "--model", str(model), str(imgs),
                             "--out", str(out), "--batch-size", "1", "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            tmps = [p for p in tmp_path.iterdir() if p.name.startswith(".res.csv.")]
            if tmps and tmps[0].stat().st_size > 4096:  # rows are streaming into the temporary file
                break
            time.sleep(0.01)
        assert proc.poll() is None, "predict finished before it could be killed: " + proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert out.read_bytes() == OLD  # the final name still holds the old, complete file
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".res.csv.")]
    assert all(".tmp" in p.name and p.name.startswith(".") for p in partial)  # hidden, and named as temporary
