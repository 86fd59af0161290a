"""The two-stage cascade (--escalate): band calibration, the combine rule, the stage of each result, bad input,
and per-track escalation in the live pipeline and scan. Stub backends and hand-built ONNX models: no TensorFlow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from stubs import Boxes, StubBackend, background, make_video

from benchmarks.synth import tiny_onnx
from edge_dfd.core.errors import ModelError, UsageError
from edge_dfd.runtime import cascade as rc

# ----------------------------------------------------------------------------- helpers


class Fake:
    """A backend whose P(fake) is the mean of the red channel / 255 (one pixel value decides it)."""

    def __init__(self, path: Path, size: int = 32, threshold: float = 0.5, fail_on: int | None = None):
        self.path, self.input_size, self.fail_on = Path(path), size, fail_on
        self.path.write_bytes(f"fake model {size} {threshold} {fail_on}".encode())
        self.meta = type("M", (), {"threshold": threshold})()
        self.threshold, self.format, self.fmt, self.threads, self.provider = threshold, "stub", None, None, ""
        self.seen: list[tuple] = []

    def predict(self, batch):
        batch = np.asarray(batch)
        self.seen.append(batch.shape)
        if self.fail_on is not None and np.any(batch[:, 0, 0, 1] == self.fail_on):
            raise RuntimeError("cannot classify this face")
        return batch[..., 0].mean(axis=(1, 2)) / 255.0

    def describe(self):
        return {"path": str(self.path)}


def table(band_at_one: float = 2.0, rule: str = "replace") -> dict:
    """A calibration table whose band grows linearly with F (band(F) = band_at_one * F)."""
    return {"version": rc.TABLE_VERSION, "rule": rule, "fractions": rc.GRID,
            "band": [band_at_one * f for f in rc.GRID], "first": {"sha256": "a"}, "second": {"sha256": "b"},
            "source": "test", "n": 101}


def faces(reds, size=48, green=0):
    x = np.zeros((len(reds), size, size, 3), np.uint8)
    for i, r in enumerate(reds):
        x[i, ..., 0] = r
        x[i, ..., 1] = green[i] if isinstance(green, (list, tuple)) else green
    return x


# ----------------------------------------------------------------------------- calibration and combination


def test_band_sends_the_requested_share_of_the_calibration_faces():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    z1 = (2 * y - 1) * rng.gamma(2.0, 1.0, 400) + rng.normal(0, 0.8, 400)
    z2 = (2 * y - 1) * 3.0 + rng.normal(0, 0.5, 400)
    t = rc.build_table(z1, z2, y, {"sha256": "a"}, {"sha256": "b"}, "test")
    for f in (0.05, 0.1, 0.2, 0.33, 0.5, 0.8):
        sent = np.mean(np.abs(z1) < rc.band_for(t, f))
        assert sent == pytest.approx(f, abs=1 / 400 + 1e-9), f
    assert rc.band_for(t, 0) == 0 and rc.band_for(t, 1) == float("inf")
    assert t["rule"] == "replace"  # a much better second model: its margin alone beats the average
    assert t["valid_balanced_accuracy"]["replace"]["1.0"] > 0.99
    with pytest.raises(UsageError, match="between 0 and 1"):
        rc.band_for(t, 1.5)


def test_average_is_chosen_when_it_is_better_on_valid():
    """Second model right and sure on 70 % of the faces, slightly wrong on 30 %, where the first model is right
    with a larger margin: replace copies its 30 % errors, the average fixes them."""
    n = 100
    y = np.arange(n) % 2
    s = 2 * y - 1
    z1 = s * (0.5 + 0.001 * np.arange(n))
    z2 = np.where(np.arange(n) % 10 < 3, -0.2 * s, 3.0 * s)
    t = rc.build_table(z1, z2, y, {"sha256": "a"}, {"sha256": "b"}, "test")
    assert t["rule"] == "average"
    assert t["valid_balanced_accuracy"]["average"]["0.5"] == 1.0
    assert t["valid_balanced_accuracy"]["replace"]["1.0"] == pytest.approx(0.7)
    assert rc.combine([1.0, -2.0], [3.0, 1.0], "average") == pytest.approx([2.0, -0.5])
    assert rc.combine([1.0], [-3.0], "replace") == pytest.approx([-3.0])
    p = np.array([0.01, 0.3, 0.5, 0.97])
    assert rc.from_margin(rc.margin(p, 0.3), 0.3) == pytest.approx(p)
    assert rc.margin(0.3, 0.3) == pytest.approx(0.0)


def test_stage_column_and_the_first_models_scale(tmp_path):
    first, second = Fake(tmp_path / "a", 32, 0.5), Fake(tmp_path / "b", 48, 0.2)
    cas = rc.Cascade(first, second, table(2.0), 0.5)  # band 1.0: |logit(p1) - logit(0.5)| < 1 <=> 0.269 < p1 < 0.731
    assert cas.input_size == 48 and cas.threshold == 0.5 and cas.band == pytest.approx(1.0)
    reds = [10, 100, 128, 160, 250]  # p1 = 0.04, 0.39, 0.50, 0.63, 0.98
    d = cas.predict_detail(faces(reds))
    assert d.stage.tolist() == [1, 2, 2, 2, 1]
    p1 = np.array(reds) / 255
    assert d.p1 == pytest.approx(p1, abs=1e-6)
    assert d.p[[0, 4]] == pytest.approx(p1[[0, 4]], abs=1e-6)  # stage 1: the first model's own P(fake)
    want = rc.from_margin(rc.margin(p1[1:4], 0.2), 0.5)  # replace: the second's margin on the first's scale
    assert d.p[1:4] == pytest.approx(want, abs=1e-5)
    assert first.seen == [(5, 32, 32, 3)] and second.seen == [(3, 48, 48, 3)]  # each at its own size
    assert np.isnan(d.p2[[0, 4]]).all() and not d.errors
    assert cas.stats == {"images": 5, "escalated": 3, "failed": 0}
    assert rc.Cascade(first, second, table(2.0), 0.0).predict_detail(faces(reds)).stage.tolist() == [1] * 5
    assert rc.Cascade(first, second, table(2.0), 1.0).predict_detail(faces(reds)).stage.tolist() == [2] * 5
    avg = rc.Cascade(first, second, table(2.0, "average"), 0.5).predict_detail(faces(reds))
    z = (rc.margin(p1[1:4], 0.5) + rc.margin(p1[1:4], 0.2)) / 2
    assert avg.p[1:4] == pytest.approx(rc.from_margin(z, 0.5), abs=1e-5)


def test_each_models_own_input_gives_the_same_verdicts_without_resizing(tmp_path):
    """predict_detail(first_batch, second_batch): nothing is resized inside, only the escalated rows of the second
    batch reach the second model, and the result equals the one-batch path on the same faces."""
    first, second = Fake(tmp_path / "a", 32, 0.5), Fake(tmp_path / "b", 48, 0.2)
    cas = rc.Cascade(first, second, table(2.0), 0.5)
    assert cas.input_sizes == (32, 48)
    reds = [10, 100, 128, 160, 250]
    one = cas.predict_detail(faces(reds, 48))
    first.seen.clear(), second.seen.clear()
    two = cas.predict_detail(faces(reds, 32), faces(reds, 48))
    assert two.stage.tolist() == one.stage.tolist() == [1, 2, 2, 2, 1]
    assert two.p == pytest.approx(one.p, abs=1e-6)
    assert first.seen == [(5, 32, 32, 3)] and second.seen == [(3, 48, 48, 3)]
    with pytest.raises(ModelError, match=r"second model's batch has shape \(5, 32, 32, 3\), expected \(N, 48, 48"):
        cas.predict_detail(faces(reds, 32), faces(reds, 32))
    with pytest.raises(ModelError, match="5 faces for the first model but 2 for the second"):
        cas.predict_detail(faces(reds, 32), faces(reds[:2], 48))


def test_predict_feeds_a_cascade_each_models_size_from_the_decode_workers(tmp_path):
    import cv2

    from edge_dfd.runtime.predict import Item, predict_items

    paths = []
    for i, red in enumerate([10, 128, 250]):
        p = tmp_path / f"f{i}.png"
        cv2.imwrite(str(p), np.dstack([np.zeros((64, 64), np.uint8)] * 2 + [np.full((64, 64), red, np.uint8)]))
        paths.append(p)
    first, second = Fake(tmp_path / "a", 32, 0.5), Fake(tmp_path / "b", 48, 0.2)
    cas = rc.Cascade(first, second, table(2.0), 0.5)
    got = list(predict_items(cas, [Item(str(p)) for p in paths], details=True))
    assert [info["stage"] for _, _, info in got] == [1, 2, 1]
    assert [round(p, 3) for _, p, _ in got[::2]] == [round(10 / 255, 3), round(250 / 255, 3)]
    assert first.seen == [(3, 32, 32, 3)] and second.seen == [(1, 48, 48, 3)]  # each decoded at its own size
    plain = [p for _, p in predict_items(cas, [Item(str(p)) for p in paths])]  # evaluate's path: the same numbers
    assert plain == pytest.approx([p for _, p, _ in got])


def test_a_second_model_failing_on_one_face_keeps_its_first_stage_verdict(tmp_path):
    first, second = Fake(tmp_path / "a"), Fake(tmp_path / "b", fail_on=7)
    cas = rc.Cascade(first, second, table(2.0), 1.0)
    d = cas.predict_detail(faces([100, 120, 140], size=32, green=[0, 7, 0]))
    assert d.stage.tolist() == [2, 1, 2]
    assert d.p[1] == pytest.approx(120 / 255, abs=1e-6)
    assert list(d.errors) == [1] and "cannot classify this face" in d.errors[1]
    assert cas.stats["failed"] == 1 and cas.stats["escalated"] == 2


# ----------------------------------------------------------------------------- loading: tables, cache, bad input


@pytest.fixture
def onnx_pair(tmp_path):
    return tiny_onnx(tmp_path / "first.onnx", 32, 0.5), tiny_onnx(tmp_path / "second.onnx", 48, 0.4)


@pytest.fixture(scope="module")
def calib140k(tmp_path_factory):
    """A generated 140k-layout set with 12 + 12 valid and 8 + 8 test images."""
    from benchmarks.synth import make_140k

    return make_140k(tmp_path_factory.mktemp("calib140k"), {"valid": 12, "test": 8}, splits=("valid", "test"))


def test_user_pair_needs_calibration_then_uses_the_cache(onnx_pair, calib140k, tmp_path, monkeypatch):
    from edge_dfd.runtime import load_model

    monkeypatch.setenv("EDGE_DFD_CACHE", str(tmp_path / "cache"))
    first = load_model(onnx_pair[0])
    with pytest.raises(ModelError, match="--calib-data"):
        rc.load_cascade(first, str(onnx_pair[1]), 0.2)
    cas = rc.load_cascade(first, str(onnx_pair[1]), 0.25, calib_data=[calib140k])
    cached = list((tmp_path / "cache" / "cascade").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["n"] == cas.table["n"] == 24  # 12 + 12 valid
    import edge_dfd.runtime.calibrate as cm

    monkeypatch.setattr(cm, "calibrate", lambda *a, **k: pytest.fail("the cached table was not used"))
    again = rc.load_cascade(first, str(onnx_pair[1]), 0.25)
    assert again.table == cas.table and again.input_size == 48
    again2 = rc.load_cascade(first, str(onnx_pair[1]), 0.25, calib_data=[calib140k])  # same data: cached too
    assert again2.table == cas.table


def test_bundled_pair_has_a_table_for_every_shipped_format():
    from edge_dfd.runtime import zoo

    tables = json.loads(rc.BUNDLED_TABLES.read_text())["tables"]
    firsts = {t["first"]["format"]: t for t in tables}
    for fmt in ("tflite-fp32", "tflite-int8", "onnx-int8-arm"):
        t = firsts[fmt]
        p = zoo.default_dir() / t["first"]["file"]
        assert rc.file_id(p)["sha256"] == t["first"]["sha256"], f"{fmt}: regenerate with python -m edge_dfd.runtime.calibrate"
        assert t["rule"] in rc.RULES and t["n"] == 660
        assert 0 < rc.band_for(t, 0.2) < rc.band_for(t, 0.5)
    assert rc.file_id(zoo.bundled_path("ten-pass"))["sha256"] == tables[0]["second"]["sha256"]


def test_bad_escalation_models_are_one_line_errors_before_any_work(cli_run, onnx_pair, tmp_path):
    img = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(img), np.full((40, 40, 3), 128, np.uint8))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for bad, why in ((junk, "junk.tflite"), (text, "unknown model type"), (tmp_path / "gone.onnx", "not found")):
        code, out, err = cli_run("predict", "--model", onnx_pair[0], "--escalate", bad, img)
        assert code == 1 and out == "" and err.count("\n") == 1 and why in err and "Traceback" not in err, err
    code, out, err = cli_run("predict", "--model", onnx_pair[0], "--escalate", onnx_pair[1], img)
    assert code == 1 and out == "" and "--calib-data" in err  # a user pair without a table
    video = tmp_path / "v.avi"
    make_video(video, [(False, 60, 150)] * 3)
    events = tmp_path / "ev.jsonl"
    for verb in (["scan", video], ["live", "--source", video, "--events", events]):
        code, out, err = cli_run(*verb, "--model", onnx_pair[0], "--escalate", junk)
        assert code == 1 and out == "" and err.count("\n") == 1 and "junk.tflite" in err, (verb, err)
    assert not events.exists() or events.read_text() == ""  # live stopped before the first frame
    for frac in ("1.5", "-0.1"):
        code, _, err = cli_run("predict", "--model", onnx_pair[0], "--escalate", onnx_pair[1],
                               "--escalate-fraction", frac, img)
        assert code == 2 and "escalate-fraction" in err
    code, _, err = cli_run("evaluate", onnx_pair[0], "--data", tmp_path, "--escalate-fraction", "0.3")
    assert code == 2 and "need --escalate" in err


def test_a_model_that_loads_but_cannot_run_is_refused(onnx_pair, monkeypatch):
    from edge_dfd.runtime.onnx import ONNXBackend

    def broken(self, x):
        raise RuntimeError("kernel not implemented on this CPU")

    monkeypatch.setattr(ONNXBackend, "_run", broken)
    with pytest.raises(ModelError, match="cannot run in this install.*kernel not implemented"):
        rc.load_second(str(onnx_pair[1]))


def test_predict_and_evaluate_say_which_stage_decided(cli_run, onnx_pair, calib140k, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_DFD_CACHE", str(tmp_path / "cache"))
    first, second = map(str, onnx_pair)
    out_csv = tmp_path / "r.csv"
    code, out, err = cli_run("predict", "-q", "--model", first, "--escalate", second, "--escalate-fraction", "1",
                             "--calib-data", calib140k, "--out", out_csv, "--json", calib140k / "test.csv")
    assert code == 0, err
    doc = json.loads(out)
    assert {r["stage"] for r in doc["results"]} == {2} and doc["summary"]["stage2"] == len(doc["results"]) == 16
    assert doc["model"]["cascade"]["second"] == second and doc["model"]["cascade"]["fraction"] == 1.0
    import csv

    rows = list(csv.DictReader(out_csv.open()))
    assert [r["stage"] for r in rows] == ["2"] * 16
    code, out, err = cli_run("predict", "-q", "--model", first, "--escalate", second, "--escalate-fraction", "0",
                             calib140k / "test.csv")
    assert code == 0 and out.count("stage 1") == 16 and "stage 2" not in out
    plain = cli_run("predict", "-q", "--model", first, calib140k / "test.csv")[1]
    # F = 0: the first model's own P(fake) and verdicts (decoded at the larger input size, then resized: within
    # resampling noise of decoding straight at its own size)
    a, b = ([ln.split()[:2] for ln in text.splitlines()] for text in (plain, out))
    assert [v for _, v in a] == [v for _, v in b]
    assert np.array([float(p) for p, _ in a]) == pytest.approx([float(p) for p, _ in b], abs=5e-3)
    code, out, err = cli_run("evaluate", first, "--data", calib140k, "--escalate", second, "--escalate-fraction",
                             "0.5", "--json", "--out", tmp_path / "ev")
    assert code == 0, err
    rep = json.loads(out)
    c = rep["cascade"]
    assert c["images"] == 16 and 0 < c["escalated"] < 16 and c["failed"] == 0 and "escalating 0.5" in rep["title"]


# ----------------------------------------------------------------------------- live and scan: per track


class Second(StubBackend):
    """The escalation model: says ``p`` for every face, counts the faces it saw."""

    input_size = 40
    threshold = 0.5

    def __init__(self, p: float = 0.95, delay: float = 0.0):
        super().__init__()
        self.p, self.delay, self.path, self.format = p, delay, Path("second.stub"), "stub"

    def predict(self, batch):
        time.sleep(self.delay)
        self.calls += 1
        self.batch_sizes.append(len(batch))
        assert batch.shape[1:] == (40, 40, 3)
        return np.full(len(batch), self.p)


def two_face_frame() -> np.ndarray:
    """Track 1's box on the flat background (B - R = -0.15: P(fake) 0.5, uncertain), track 2's on a warm
    patch (clearly real)."""
    f = background()
    f[100:220, 420:540] = (60, 120, 200)  # BGR: B - R = -0.55, exactly track 2's box (FarApart)
    return f


class FarApart(Boxes):
    """Two fixed face boxes whose crops (box + margin) do not overlap."""

    def __init__(self):
        super().__init__(2)
        self.boxes = np.array([[40, 100, 160, 220], [420, 100, 540, 220]], np.float32)


def escalation(second, rate_hz=1.0, fraction=0.5):
    from edge_dfd.video.escalation import Escalation

    first = StubBackend()
    first.threshold, first.path = 0.5, Path("first.stub")
    return first, Escalation(rc.Cascade(first, second, table(2.0), fraction), rate_hz=rate_hz)


def test_live_escalates_the_uncertain_track_once_and_keeps_the_schedule():
    from edge_dfd.video.pipeline import LivePipeline

    second = Second(0.95)
    first, esc = escalation(second)
    pipe = LivePipeline(first, FarApart(), classify_hz=10.0, align="box", smooth=3, escalation=esc)
    ref = LivePipeline(StubBackend(), FarApart(), classify_hz=10.0, align="box", smooth=3)
    frame = two_face_frame()
    res = [pipe.process(frame, t=i / 30) for i in range(90)]
    ref_res = [ref.process(frame, t=i / 30) for i in range(90)]
    assert pipe.classified == ref.classified == 60  # the first stage's schedule is the same with escalation
    assert second.calls == 1 and second.batch_sizes == [3]  # one track, once, its 3 sharpest crops
    news = [(i, f) for i, r in enumerate(res) for f in r if f.escalation]
    assert len(news) == 1
    i, f = news[0]
    assert f.track == 1 and i == 6  # 3 classifications at 10 Hz: frames 0, 3, 6
    assert f.escalation["ok"] and f.escalation["after"] == "fake" and f.escalation["p_second"] == 0.95
    assert [r[0].stage for r in res[:6]] == [1] * 6 and all(r[0].stage == 2 for r in res[6:])
    assert all(r[0].verdict == "fake" and r[0].smoothed == pytest.approx(0.95, abs=1e-6) for r in res[6:])
    assert all(r[1].stage == 1 and r[1].verdict == "real" for r in res)  # the sure track is never escalated
    assert [r[1].smoothed for r in res] == [r[1].smoothed for r in ref_res]
    from edge_dfd.video.live import event_record
    from edge_dfd.video.sources import Frame

    rec = event_record(Frame(6, 0.2, frame, 0.0), f, "utc")
    assert rec["stage"] == 2 and rec["escalation"]["before"] in ("fake", "real") and rec["escalation"]["after"] == "fake"
    assert "escalation" not in event_record(Frame(7, 0.23, frame, 0.0), res[7][0], "utc")


def test_live_escalations_are_rate_limited_over_all_tracks():
    from edge_dfd.video.pipeline import LivePipeline

    second = Second(0.95)
    first, esc = escalation(second, rate_hz=2.0, fraction=1.0)  # every track is uncertain; 2 a second at most
    pipe = LivePipeline(first, Boxes(4), classify_hz=10.0, align="box", escalation=esc)
    times = []
    for i in range(60):
        for f in pipe.process(background(), t=i / 30):
            if f.escalation:
                times.append(i / 30)
    assert len(times) == 4 and second.calls == 4  # each track once
    assert np.diff(times) == pytest.approx([0.5, 0.5, 0.5], abs=1 / 30 + 1e-9)


def test_a_track_still_uncertain_is_rechecked_after_recheck_s():
    from edge_dfd.video.escalation import Escalation
    from edge_dfd.video.pipeline import LivePipeline

    second = Second(0.95)
    first, _ = escalation(second)
    esc = Escalation(rc.Cascade(first, second, table(2.0), 0.5), rate_hz=5.0, recheck_s=1.0)
    pipe = LivePipeline(first, FarApart(), classify_hz=10.0, align="box", smooth=3, escalation=esc)
    at = [i for i in range(100) for f in pipe.process(two_face_frame(), t=i / 30) if f.escalation]
    assert at == [6, 36, 66, 96]  # frame 6 (3 classifications), then every 30 frames = 1 s: track 1 only


@pytest.mark.slow
def test_live_worker_escalation_never_blocks_the_frame_loop():
    from edge_dfd.video.pipeline import LivePipeline

    second = Second(0.95, delay=0.4)
    first, esc = escalation(second, rate_hz=5.0, fraction=1.0)
    with LivePipeline(first, Boxes(2), classify_hz=20.0, align="box", worker=True, escalation=esc) as pipe:
        slow, got = 0.0, []
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            got += [f for f in pipe.process(background()) if f.escalation]
            slow = max(slow, time.perf_counter() - t0)
            time.sleep(0.01)
    assert slow < 0.2, f"a frame took {slow:.2f} s while the 0.4-s second model ran"
    assert {f.track for f in got} == {1, 2} and esc.escalated == 2


def test_scan_tracks_say_which_stage_decided(tmp_path):
    from edge_dfd.images.faces import make_detector
    from edge_dfd.video.scan import scan_video

    plan = [(False, 60 + 2 * i, 150) for i in range(12)]
    path = tmp_path / "v.avi"
    make_video(path, plan)
    first = StubBackend()
    first.threshold, first.path = 0.5, Path("first.stub")
    for fraction, stage, verdict in ((1.0, 2, "fake"), (0.0, 1, "real")):
        second = Second(0.95)
        cas = rc.Cascade(first, second, table(2.0), fraction)
        v = scan_video(path, first, make_detector("haar"), every=1, align="box", cascade=cas)
        assert v.status == "ok" and v.tracks, v
        t = max(v.tracks, key=lambda t: t.frames)
        assert (t.stage, t.verdict) == (stage, verdict)
        assert v.rows()[1]["stage"] == stage
        assert second.calls == (1 if fraction else 0)


def test_predict_reports_a_failed_escalation_and_goes_on(tmp_path):
    import io

    import cv2

    from edge_dfd.runtime.predict import run_predict

    paths = []
    for i, (red, green) in enumerate([(100, 0), (120, 7), (140, 0)]):
        p = tmp_path / f"f{i}.png"
        cv2.imwrite(str(p), np.dstack([np.full((32, 32), c, np.uint8) for c in (0, green, red)]))  # BGR
        paths.append(str(p))
    cas = rc.Cascade(Fake(tmp_path / "a"), Fake(tmp_path / "b", fail_on=7), table(2.0), 1.0)
    out, err = io.StringIO(), io.StringIO()
    s = run_predict(cas, paths, out=tmp_path / "r.csv", stdout=out, stderr=err)
    assert [ln.split()[2:4] for ln in out.getvalue().splitlines()] == [["stage", "2"], ["stage", "1"], ["stage", "2"]]
    assert s.n == 3 and s.stage2 == 2 and [p for p, _ in s.escalation_errors] == [paths[1]] and not s.errors
    assert f"escalation failed: {paths[1]}" in err.getvalue() and "1 escalation failure(s)" in err.getvalue()
    import csv

    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["stage"] for r in rows] == ["2", "1", "2"] and "cannot classify" in rows[1]["escalation_error"]
    assert float(rows[1]["p_fake"]) == pytest.approx(120 / 255, abs=1e-5)


def test_cascade_curve_measures_every_point(tmp_path, calib140k):
    from edge_dfd.bench.curve import cascade_curve, curve_table
    from edge_dfd.images import data

    first, second = Fake(tmp_path / "a", 32, 0.5), Fake(tmp_path / "b", 48, 0.5)
    recs = data.load_split(calib140k, "test")
    res = cascade_curve(rc.Cascade(first, second, table(8.0), 0.2), recs, fractions=(0.0, 1.0),
                        groups=["g"] * len(recs))
    names = [p["name"] for p in res["points"]]
    assert names == ["first", "second", "cascade F=0.0", "cascade F=1.0"]
    first_pt, second_pt, none, every = res["points"]
    assert none["escalated_share"] == 0.0 and every["escalated_share"] == 1.0 and res["images"] == 16
    assert none["accuracy"] == pytest.approx(first_pt["accuracy"], abs=1 / 16 + 1e-9)
    assert every["accuracy"] == pytest.approx(second_pt["accuracy"], abs=1 / 16 + 1e-9)
    assert all(p["ms_per_face"] > 0 and p["groups"]["g"]["images"] == 16 for p in res["points"])
    assert second_pt["time_vs_second"] == 1.0 and "| cascade F=1.0 | 1.000 |" in curve_table(res)
    # each model was called face by face (batch 1), every point on all 16 faces (+ 5 warm-up calls each)
    assert first.seen.count((1, 32, 32, 3)) == 3 * (16 + 5) and second.seen.count((1, 48, 48, 3)) == 2 * (16 + 5)


def test_benchmark_fails_in_one_line_without_the_bundled_sample(tmp_path, monkeypatch, capsys):
    import benchmarks.cascade as bc

    monkeypatch.setattr(bc, "FACES140K", tmp_path / "none1")
    monkeypatch.setattr(bc, "TPDNE128", tmp_path / "none2")
    for args in ([], ["--live"]):
        assert bc.main([*args, "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and "evaluation sample" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
