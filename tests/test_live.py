"""edge-dfd live on generated videos: events, max-frames, saved video, bad sources, reconnects, no TensorFlow.

The classifier is the tiny hand-built ONNX model of tests/stubs.py (no training, no TensorFlow): P(fake) =
sigmoid(40 * (mean(B - R) + 0.15)) on 32 px crops. synth "real" cartoon faces are warm (B - R ~ -0.25), "fake" ones
cool (B - R ~ -0.05), and the background sits exactly at the threshold (B - R = -0.15), so crop margins cannot flip
a verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from stubs import H, StubBackend, W, background, count_frames, make_video, read_events, tiny_onnx
from synth import synth_face


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """30 frames: 6 blank, 10 real face moving right (left half), 4 blank, 10 fake face moving (right half)."""
    plan = [None] * 6 + [(False, 60 + 4 * i, 150) for i in range(10)] + [None] * 4
    plan += [(True, 400 + 3 * i, 170 - 2 * i) for i in range(10)]
    path = tmp_path_factory.mktemp("video") / "faces.avi"
    return path, make_video(path, plan)


# ----------------------------------------------------------------------------- events


def test_events_faces_where_present_and_verdicts(cli_run, model, video, tmp_path):
    path, truth = video
    ev = tmp_path / "events.jsonl"
    code, out, err = cli_run("live", "--model", model, "--source", path, "--faces", "haar", "--events", ev,
                             "--smooth", 3)
    assert code == 0, err
    assert "30 frames" in err and "FPS" in err and "infer" in err
    events = read_events(ev)
    by_frame: dict[int, list] = {}
    for e in events:
        assert set(e) >= {"time", "frame", "track", "box", "crop", "score", "smoothed", "verdict"}
        by_frame.setdefault(e["frame"], []).append(e)
    blank = [i for i, t in enumerate(truth) if t is None]
    assert not set(blank) & set(by_frame), "a face was reported in a frame without one"
    face_frames = [i for i, t in enumerate(truth) if t is not None]
    found = [i for i in face_frames if len(by_frame.get(i, [])) == 1]
    assert len(found) >= 18, f"one face expected in each of 20 face frames, got it in {len(found)}"
    for i in found:
        (e,) = by_frame[i]
        fake, (x1, y1, x2, y2) = truth[i]
        cx, cy = (e["box"][0] + e["box"][2]) / 2, (e["box"][1] + e["box"][3]) / 2
        assert x1 < cx < x2 and y1 < cy < y2, (i, e["box"], truth[i])
        c = e["crop"]  # the classified square: the face box plus margin, inside the frame
        assert c[2] - c[0] == c[3] - c[1] and c[0] <= e["box"][0] and c[2] >= e["box"][2] and 0 <= c[0] and c[2] <= W
        assert e["verdict"] == ("fake" if fake else "real"), (i, e)
        assert (e["score"] > 0.7) if fake else (e["score"] < 0.3), (i, e["score"])
        assert e["time"] == pytest.approx(i / 30, abs=1e-3)
    real_tracks = {by_frame[i][0]["track"] for i in found if not truth[i][0]}
    fake_tracks = {by_frame[i][0]["track"] for i in found if truth[i][0]}
    assert len(real_tracks) == 1 and len(fake_tracks) == 1 and real_tracks != fake_tracks


def test_max_frames_none_detector_stdout_events(cli_run, model, video):
    path, truth = video
    code, out, err = cli_run("live", "--model", model, "--source", path, "--faces", "none", "--events", "-",
                             "--max-frames", 7, "--threshold", 0.01)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["frame"] for e in events] == list(range(7))
    assert all(e["box"] == [80, 0, 560, 480] for e in events)  # the centre square
    assert all(e["verdict"] == "fake" for e in events)  # --threshold 0.01 overrides the model's 0.5
    assert "live: 7 frames" in err


def test_detect_every_carries_boxes_and_one_predict_per_frame(video):
    from edge_dfd.images.faces import make_detector
    from edge_dfd.video import LivePipeline

    class Counting:
        name = "counting"

        def __init__(self):
            self.inner, self.calls = make_detector("none"), 0

        def detect(self, frame):
            self.calls += 1
            b, s = self.inner.detect(frame)
            return np.concatenate([b, b * 0.5]), np.concatenate([s, s])  # two faces per frame

    det, backend = Counting(), StubBackend()
    pipe = LivePipeline(backend, det, detect_every=3)
    frame = background()
    results = [pipe.process(frame) for _ in range(7)]
    assert det.calls == 3  # frames 0, 3, 6
    assert [len(r) for r in results] == [2] * 7  # boxes carried on frames 1, 2, 4, 5
    assert [r[0].detected for r in results] == [True, False, False, True, False, False, True]
    assert backend.calls == 7 and backend.batch_sizes == [2] * 7  # all faces of a frame in ONE predict call
    assert {f.track for r in results for f in r} == {1, 2}


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_save_video_frame_count(cli_run, model, video, tmp_path, suffix):
    path, _ = video
    out = tmp_path / f"annotated{suffix}"
    code, _, err = cli_run("live", "--model", model, "--source", path, "--faces", "none", "--save", out,
                           "--max-frames", 12)
    assert code == 0, err
    assert count_frames(out) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left behind
    cap = cv2.VideoCapture(str(out))
    ok, img = cap.read()
    cap.release()
    assert ok and img.shape == (H, W, 3)
    # the verdict box was drawn: green (real) pixels along the centre square's left edge
    edge = img[100:380, 80:82].reshape(-1, 3).astype(int)
    assert (edge[:, 1] > 150).mean() > 0.8 and (edge[:, 2] < 100).mean() > 0.8


def test_save_bad_suffix(cli_run, model, video, tmp_path):
    code, _, err = cli_run("live", "--model", model, "--source", video[0], "--save", tmp_path / "x.gif")
    assert code == 1 and "x.gif" in err and ".avi" in err


# ----------------------------------------------------------------------------- sources


def test_bad_sources_one_line_errors(cli_run, model, tmp_path):
    cases = {
        str(tmp_path / "missing.mp4"): "missing.mp4: not found",
        "97": "camera 97: cannot be opened",
        "picamera2": "picamera2",
    }
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    cases[str(junk)] = "junk.mp4: cannot be opened"
    for src, expected in cases.items():
        if src == "picamera2" and _have("picamera2"):
            continue
        code, out, err = cli_run("live", "--model", model, "--source", src, "--faces", "none")
        assert code == 1, (src, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (src, err)


def _have(mod):
    import importlib.util

    return importlib.util.find_spec(mod) is not None


class FakeCapture:
    """A capture that yields ``n`` frames (``bad`` indices are unreadable: (True, None)), then fails."""

    def __init__(self, n, bad=(), opened=True):
        self.n, self.bad, self.i, self.opened = n, set(bad), 0, opened

    def isOpened(self):
        return self.opened

    def read(self):
        if self.i >= self.n:
            return False, None
        self.i += 1
        if self.i - 1 in self.bad:
            return True, None
        return True, background()

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.opened = False


def test_stream_drop_reconnects_then_gives_up(tmp_path):
    from edge_dfd.images.faces import make_detector
    from edge_dfd.video import LiveConfig, SourceError, run_live

    caps = iter([FakeCapture(5), FakeCapture(3, bad=[1]), FakeCapture(0, opened=False), FakeCapture(0, opened=False)])
    opened = []

    def opener(arg):
        opened.append(arg)
        return next(caps)

    ev = tmp_path / "ev.jsonl"
    cfg = LiveConfig(source="rtsp://camera.invalid/stream", faces="none", events=str(ev), reconnects=2, backoff=0.01,
                     save=str(tmp_path / "out.avi"))
    with pytest.raises(SourceError, match=r"rtsp://camera.invalid/stream: stream lost and 2 reconnect attempts") as ei:
        run_live(cfg, backend=StubBackend(), detector=make_detector("none"), opener=opener)
    assert opened == ["rtsp://camera.invalid/stream"] * 4  # first open, one good reconnect, two failed ones
    stats = ei.value.stats
    assert stats.reconnects == 1 and stats.skipped == 1
    assert stats.frames + stats.dropped == 7  # 5 + 3 frames, one unreadable; a live source keeps only the newest
    events = read_events(ev)  # outputs are complete and closed even though the stream was lost
    frames = [e["frame"] for e in events]
    assert len(events) == stats.frames >= 1 and frames == sorted(set(frames)) and frames[-1] == 6
    assert count_frames(tmp_path / "out.avi") == stats.frames


def test_stream_reconnect_stats_and_skipped():
    from edge_dfd.images.faces import make_detector
    from edge_dfd.video import FrameGrabber, VideoSource

    caps = iter([FakeCapture(4, bad=[0, 2]), FakeCapture(3)])
    src = VideoSource("http://cam.invalid/mjpg", opener=lambda arg: next(caps, FakeCapture(0, opened=False)))
    g = FrameGrabber(src, reconnects=1, backoff=0.01)
    g.start()
    frames = []
    while (f := g.get(timeout=5)) is not None:
        frames.append(f)
    g.join(5)
    assert g.skipped == 2 and g.reconnected == 1
    assert "2 reconnect" not in str(g.error) and "1 reconnect attempts failed" in str(g.error)
    assert 1 <= len(frames) <= 5 and frames[-1].image.shape == (H, W, 3)  # live: newest frame only, may drop
    assert len(frames) + g.dropped == 5
    assert make_detector("none").detect(frames[0].image)[0].shape == (1, 4)


def test_file_frames_read_in_order_without_drops(video):
    from edge_dfd.video import FrameGrabber, open_source

    g = FrameGrabber(open_source(str(video[0])))
    g.start()
    idx = []
    while (f := g.get()) is not None:
        idx.append(f.index)
    assert idx == list(range(30)) and g.dropped == 0 and g.error is None


def test_show_without_gui_is_a_clear_error(cli_run, model, video):
    from edge_dfd.video import check_gui

    try:
        check_gui()
    except Exception:
        pass
    else:
        pytest.skip("this OpenCV has GUI support")
    code, _, err = cli_run("live", "--model", model, "--source", video[0], "--show")
    assert code == 1 and "pip install 'opencv-python" in err and "--show" in err


def test_live_onnx_never_imports_tensorflow(model, video, tmp_path):
    code = (
        "import sys; from edge_dfd.cli import main; "
        f"rc = main(['live', '--model', {str(model)!r}, '--source', {str(video[0])!r}, '--faces', 'blazeface', "
        "'--max-frames', '3']); "
        "print('TF' if any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules) else 'noTF', rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split()[-2:] == ["noTF", "0"], r.stdout + r.stderr


def test_help_lists_options(cli_run):
    code, out, _ = cli_run("live", "--help")
    assert code == 0
    for opt in ("--model", "--source", "--faces", "--detect-every", "--threshold", "--smooth", "--show", "--save",
                "--events", "--max-frames", "--threads"):
        assert opt in out


# ----------------------------------------------------------------------------- tracking


def test_tracker_ids_and_smoothing():
    from edge_dfd.video.tracking import Tracker

    t = Tracker(smooth=3, max_missed=1)
    a, b = [10, 10, 60, 60], [200, 200, 260, 260]
    assert t.update([a, b]) == [1, 2]
    assert t.add_scores([1, 2], [0.2, 0.9]) == pytest.approx([0.2, 0.9])
    assert t.update([[204, 203, 264, 263], [14, 12, 64, 62]]) == [2, 1]  # moved a little, order swapped
    assert t.add_scores([2, 1], [0.6, 0.4]) == pytest.approx([0.75, 0.3])
    t.add_scores([1], [0.6])
    assert t.add_scores([1], [1.0]) == pytest.approx([(0.4 + 0.6 + 1.0) / 3])  # window of 3
    assert t.update([b]) == [2]  # track 1 missed once: kept
    assert t.current()[1] == [2]
    assert t.update([b]) == [2]  # track 1 missed twice: dropped
    assert t.update([a]) == [3]  # a face in the old place is a new track


# ----------------------------------------------------------------------------- Ctrl-C, every backend


def test_ctrl_c_closes_the_saved_video(video, tmp_path):
    """KeyboardInterrupt mid-run: stats say interrupted, the video is complete and renamed, events closed."""
    from edge_dfd.images.faces import CentreSquare
    from edge_dfd.video import LiveConfig, run_live

    class InterruptAt(CentreSquare):
        def __init__(self, n):
            self.n = n

        def detect(self, frame):
            self.n -= 1
            if self.n < 0:
                raise KeyboardInterrupt
            return super().detect(frame)

    out, ev = tmp_path / "out.mp4", tmp_path / "ev.jsonl"
    stats = run_live(LiveConfig(source=str(video[0]), save=str(out), events=str(ev)), backend=StubBackend(),
                     detector=InterruptAt(9))
    assert stats.interrupted and stats.frames == 9
    assert count_frames(out) == 9 and len(read_events(ev)) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.jsonl", "out.mp4"]


@pytest.mark.slow
def test_live_verdicts_through_every_backend(tmp_path, cli_run):
    """The tiny trained model of the runtime tests (keras, tflite-int8, onnx-int8): synth faces filling the
    centre square get their class as verdict through `edge-dfd live --faces none`."""
    from runtime_models import build_tiny_models

    models = build_tiny_models()
    plan = [False] * 6 + [True] * 6
    path = tmp_path / "centre.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (W, H))
    for i, fake in enumerate(plan):
        frame = background()
        frame[:, 80:560] = cv2.cvtColor(synth_face(fake, H, 500 + i), cv2.COLOR_RGB2BGR)
        vw.write(frame)
    vw.release()
    for fmt in ("keras", "tflite-int8", "onnx-int8"):
        ev = tmp_path / f"{fmt}.jsonl"
        code, _, err = cli_run("live", "--model", models[fmt], "--source", path, "--faces", "none", "--events", ev,
                               "--smooth", 1)
        assert code == 0, err
        verdicts = [e["verdict"] for e in read_events(ev)]
        assert verdicts == ["fake" if f else "real" for f in plan], (fmt, verdicts)


def test_format_picks_the_bundled_file(cli_run, model, video, tmp_path, monkeypatch):
    """`--format` chooses which file of the bundled set `--model default` loads (a Pi user wants tflite-int8):
    here the set has only an ONNX file, so the default format is missing and `--format onnx` works."""
    import shutil

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(model, zoo / "detector.onnx")
    monkeypatch.setenv("EDGE_DFD_DEFAULT_MODEL_DIR", str(zoo))
    path, _ = video
    code, _, err = cli_run("live", "--source", path, "--faces", "none", "--max-frames", 3)
    assert code != 0 and "tflite-fp32" in err and "Traceback" not in err
    code, out, err = cli_run("live", "--format", "onnx", "--source", path, "--faces", "none", "--max-frames", 3,
                             "--events", "-")
    assert code == 0, err
    assert [json.loads(line)["frame"] for line in out.splitlines()] == [0, 1, 2]
