"""Guarantee: files that vanish, turn into folders, get emptied or corrupted, or become unreadable AFTER a
batch command listed them are skipped and reported; predict, evaluate and bench still finish (exit 0)
with every other image processed.
"""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
from hostile import IMAGES_SUBDIR, tiny_onnx, write_dataset, write_good

N = 30


def _sabotage(paths):
    """Damage four listed files in four different ways; returns {path: expected reason phrase}."""
    a, b, c, d = (str(p) for p in paths)
    os.unlink(a)
    os.unlink(b)
    os.mkdir(b)
    open(c, "wb").close()
    with open(d, "wb") as f:
        f.write(b"\x00garbage" * 50)
    return {a: "file not found", b: "is a folder", c: "empty file", d: "not a readable image"}


@pytest.fixture
def model(tmp_path):
    return tiny_onnx(tmp_path / "m.onnx")


def _hook_first_decode(monkeypatch, action):
    """Run ``action()`` once, when the first image is decoded (the inputs are listed by then)."""
    import edge_dfd.runtime.predict as pred

    real, done, lock = pred._load, [], threading.Lock()

    def load(path, size):
        with lock:  # decoding runs in a thread pool: sabotage exactly once
            if not done:
                done.append(action())
        return real(path, size)

    monkeypatch.setattr(pred, "_load", load)
    return done


def test_predict_files_change_mid_run(model, tmp_path, cli_run, monkeypatch):
    paths = write_good(tmp_path / "imgs", N)
    done = _hook_first_decode(monkeypatch, lambda: _sabotage(paths[20:24]))
    code, out, err = cli_run("predict", "--model", model, tmp_path / "imgs", "--json", "--batch-size", "1")
    assert code == 0 and "Traceback" not in err, err
    expected = done[0]
    doc = json.loads(out)
    assert doc["summary"]["images"] == N - 4 and doc["summary"]["unreadable"] == 4
    got = {e["path"]: e["reason"] for e in doc["summary"]["errors"]}
    assert set(got) == set(expected)
    for path, phrase in expected.items():
        assert phrase in got[path] and f"skipped: {path}" in err
    assert {r["path"] for r in doc["results"]} == {str(p) for p in paths} - set(expected)


def test_evaluate_files_change_mid_run(model, tmp_path, cli_run, monkeypatch):
    ds = write_dataset(tmp_path / "ds", per_class=6, splits=("test",))
    imgs = sorted((ds / IMAGES_SUBDIR / "test").rglob("*.jpg"))
    done = _hook_first_decode(monkeypatch, lambda: _sabotage(imgs[-4:]))
    code, out, err = cli_run("evaluate", model, "--data", ds, "--out", tmp_path / "ev", "--json", "--batch-size", "2")
    assert code == 0 and "Traceback" not in err, err
    rep = json.loads(out)
    assert rep["n"] == 12 - 4
    assert {s["path"] for s in rep["skipped"]} == set(done[0])


def test_bench_files_vanish_after_validation(model, tmp_path, cli_run, monkeypatch):
    from edge_dfd.bench import worker

    ds = write_dataset(tmp_path / "ds", per_class=6, splits=("test",))
    imgs = sorted((ds / IMAGES_SUBDIR / "test").rglob("*.jpg"))
    real = worker.measure_isolated

    def measure(job, workdir, **kw):
        _sabotage(imgs[:4])  # after the CSV was validated, before the measuring process reads the images
        return real(job, workdir, **kw)

    monkeypatch.setattr(worker, "measure_isolated", measure)
    code, out, err = cli_run("bench", model, "--data", ds, "--runs", "2", "--warmup", "0", "--out", tmp_path / "b",
                             "--json")
    assert code == 0 and "Traceback" not in err, err
    (row,) = json.loads(out)["rows"]
    assert row["status"] == "ok" and row["n"] == 8 and row["skipped_images"] == 4


def test_predict_while_another_process_deletes_files(model, tmp_path, cli_run, monkeypatch):
    """Real concurrency: a thread deletes files while predict runs; every file is either scored or listed."""
    paths = write_good(tmp_path / "imgs", 1, prefix="seed")
    data = paths[0].read_bytes()
    for i in range(400):
        (tmp_path / "imgs" / f"img{i:04d}.jpg").write_bytes(data)
    paths = sorted((tmp_path / "imgs").glob("*.jpg"))
    victims = paths[::-3]  # from the end backwards, so some go before they are read
    stop = threading.Event()

    def deleter():
        for v in victims:
            if stop.is_set():
                return
            v.unlink(missing_ok=True)

    import edge_dfd.runtime.predict as pred

    real_collect = pred.collect_inputs

    def collect(inputs):
        res = real_collect(inputs)
        threading.Thread(target=deleter, daemon=True).start()  # start deleting right after listing
        return res

    monkeypatch.setattr(pred, "collect_inputs", collect)
    try:
        code, out, err = cli_run("predict", "--model", model, tmp_path / "imgs", "--json", "--batch-size", "4")
    finally:
        stop.set()
    assert code == 0 and "Traceback" not in err, err
    s = json.loads(out)["summary"]
    assert s["images"] + s["unreadable"] == len(paths)
    assert all(e["reason"] == "file not found" for e in s["errors"])
    assert all(e["path"] in {str(v) for v in victims} for e in s["errors"])
    shutil.rmtree(tmp_path / "imgs")
