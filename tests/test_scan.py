"""edge-dfd scan on generated videos: verdicts and P(fake) per video and per track, sampling, bad videos, outputs.

The classifier is test_live's tiny ONNX model (fake for cool-coloured cartoon faces); faces are found with
--faces haar (BlazeFace does not find cartoon faces).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from stubs import StubBackend, background, cartoon_face, make_video, tiny_onnx

from edge_dfd.video.scan import collect_videos, iter_frames, logit_mean, sample_plan, scan_video

FACE = 160


def make_two_face_video(path: Path, n: int, fake_frames=None, fps: float = 30.0) -> Path:
    """A real face on the left in every frame and a fake one on the right in ``fake_frames`` (all by default)."""
    real = cv2.cvtColor(cartoon_face(False, FACE, 2), cv2.COLOR_RGB2BGR)
    fake = cv2.cvtColor(cartoon_face(True, FACE, 1), cv2.COLOR_RGB2BGR)
    fake_frames = range(n) if fake_frames is None else fake_frames
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    assert vw.isOpened()
    for i in range(n):
        frame = background()
        frame[150:150 + FACE, 60 + 2 * i:60 + 2 * i + FACE] = real
        if i in fake_frames:
            frame[170 - i:170 - i + FACE, 400 + i:400 + i + FACE] = fake
        vw.write(frame)
    vw.release()
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """real.avi, fake.avi, none.avi (faceless): 30 frames each, one slowly moving face."""
    d = tmp_path_factory.mktemp("videos")
    make_video(d / "real.avi", [(False, 60 + 4 * i, 150) for i in range(30)])
    make_video(d / "fake.avi", [(True, 400 + 2 * i, 170 - 2 * i) for i in range(30)])
    make_video(d / "none.avi", [None] * 30)
    return d


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def by_video(rows, kind="video") -> dict:
    return {Path(r["video"]).name: r for r in rows if r["kind"] == kind}


def scan(cli_run, model, *args):
    return cli_run("scan", *args, "--model", model, "--faces", "haar", "--quiet")


# ----------------------------------------------------------------------------- verdicts and outputs


def test_real_fake_and_faceless_videos_csv(cli_run, model, videos, tmp_path):
    out = tmp_path / "scan.csv"
    code, stdout, err = scan(cli_run, model, videos, "--out", out)
    assert code == 0, err
    rows = read_csv(out)
    assert list(rows[0]) == ["kind", "video", "track", "p_fake", "verdict", "frames_used", "faces", "status", "error"]
    v = by_video(rows)
    assert set(v) == {"real.avi", "fake.avi", "none.avi"}
    assert v["fake.avi"]["verdict"] == "fake" and float(v["fake.avi"]["p_fake"]) > 0.7
    assert v["real.avi"]["verdict"] == "real" and float(v["real.avi"]["p_fake"]) < 0.3
    for name in ("real.avi", "fake.avi"):
        assert v[name]["status"] == "ok" and v[name]["frames_used"] == "30" and v[name]["faces"] == "1"
        assert v[name]["track"] == "" and v[name]["error"] == ""
        (t,) = [r for r in rows if r["kind"] == "track" and Path(r["video"]).name == name]
        assert t["track"] == "1" and t["p_fake"] == v[name]["p_fake"] and t["verdict"] == v[name]["verdict"]
        assert int(t["frames_used"]) >= 28  # Haar finds the cartoon face in (nearly) every frame
    none = v["none.avi"]
    assert none["status"] == "no face" and none["p_fake"] == "" and none["verdict"] == ""
    assert none["frames_used"] == "30" and none["faces"] == "0"
    lines = stdout.strip().splitlines()  # the table: one line per video
    assert len(lines) == 3 and any("no face" in ln and "none.avi" in ln for ln in lines)
    assert "3 videos: 1 fake, 1 real, 1 without a face" in err and f"wrote {out}" in err


def test_jsonl_and_json_summary(cli_run, model, videos, tmp_path):
    out = tmp_path / "scan.jsonl"
    code, stdout, err = scan(cli_run, model, videos / "fake.avi", videos / "none.avi", "--out", out, "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["kind"], Path(r["video"]).name) for r in rows] == [
        ("video", "fake.avi"), ("track", "fake.avi"), ("video", "none.avi")]
    assert rows[0]["p_fake"] > 0.7 and rows[0]["track"] is None and rows[0]["faces"] == 1
    assert rows[1]["track"] == 1 and rows[1]["p_fake"] == rows[0]["p_fake"]
    assert rows[2]["status"] == "no face" and rows[2]["p_fake"] is None
    doc = json.loads(stdout)
    assert doc["summary"]["videos"] == 2 and doc["summary"]["fake"] == 1 and doc["summary"]["no_face"] == 1
    assert doc["videos"][0]["tracks"][0]["p_fake"] == rows[1]["p_fake"]


def test_two_faces_two_tracks_video_is_the_max(cli_run, model, tmp_path):
    path = make_two_face_video(tmp_path / "two.avi", 12)
    out = tmp_path / "two.csv"
    code, _, err = scan(cli_run, model, path, "--out", out)
    assert code == 0, err
    rows = read_csv(out)
    tracks = [r for r in rows if r["kind"] == "track"]
    assert len(tracks) == 2
    ps = sorted(float(t["p_fake"]) for t in tracks)
    assert ps[0] < 0.3 and ps[1] > 0.7  # the real face and the fake one
    (video,) = [r for r in rows if r["kind"] == "video"]
    assert video["faces"] == "2" and float(video["p_fake"]) == ps[1] and video["verdict"] == "fake"


def test_a_one_frame_face_does_not_decide(model, tmp_path):
    """min_track_frames: a fake face in one sampled frame only is a track of its own, but the video's P(fake)
    comes from the tracks seen in >= 2 frames; with min_track_frames=1 it decides."""
    path = make_two_face_video(tmp_path / "flash.avi", 10, fake_frames={5})
    backend = StubBackend()
    v = scan_video(path, backend, _haar(), frames=10)
    assert v.status == "ok" and len(v.tracks) == 2
    real, fake = sorted(v.tracks, key=lambda t: t.p_fake)
    assert fake.frames == 1 and real.frames >= 9 and fake.p_fake > 0.7 and real.p_fake < 0.3
    assert v.p_fake == real.p_fake and v.verdict == "real"
    v1 = scan_video(path, backend, _haar(), frames=10, min_track_frames=1)
    assert v1.p_fake == pytest.approx(fake.p_fake) and v1.verdict == "fake"


def test_threshold_option(cli_run, model, videos, tmp_path):
    out = tmp_path / "t.csv"
    code, _, err = scan(cli_run, model, videos / "real.avi", "--threshold", 0.01, "--out", out)
    assert code == 0, err
    assert by_video(read_csv(out))["real.avi"]["verdict"] == "fake"


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("args, used", [(("--frames", 5), 5), (("--every", 3), 10), (("--frames", 100), 30)])
def test_sampled_frame_counts(cli_run, model, videos, tmp_path, args, used):
    out = tmp_path / "s.jsonl"
    code, _, err = scan(cli_run, model, videos / "real.avi", *args, "--out", out)
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["frames_used"] == used and rows[1]["frames_used"] == used


def test_sample_plan():
    assert sample_plan(30, 30.0, None, 5) == ([3, 9, 15, 21, 27], 0)  # the centre of 5 equal slices
    assert sample_plan(3, 30.0, None, 32) == ([0, 1, 2], 0)  # never more frames than the video has
    assert sample_plan(30, 30.0, 3, None) == (None, 3)
    assert sample_plan(0, 25.0, None, 5) == (None, 25)  # unknown frame count: about one frame a second


class FakeCap:
    """n frames; counts grab() and read() calls and the decoded position."""

    def __init__(self, n: int):
        self.n, self.pos, self.grabs, self.reads = n, 0, 0, 0

    def grab(self):
        self.grabs += 1
        self.pos += 1
        return self.pos <= self.n

    def read(self):
        self.reads += 1
        self.pos += 1
        return (True, np.full((2, 2, 3), self.pos - 1, np.uint8)) if self.pos <= self.n else (False, None)


@pytest.mark.parametrize("targets, step, reads, grabs, idx", [
    (None, 3, 11, 20, list(range(0, 30, 3))),  # every 3rd: the 11th read finds the end
    ([3, 9, 15, 21, 27], 0, 5, 23, [3, 9, 15, 21, 27]),  # nothing decoded after the last planned frame
    ([3, 40], 0, 1, 30, [3]),  # a frame count that was too high: stops at the end
])
def test_iter_frames_grabs_unsampled_frames_in_order(targets, step, reads, grabs, idx):
    cap = FakeCap(30)
    got = list(iter_frames(cap, targets, step))
    assert [i for i, _ in got] == idx and [int(f[0, 0, 0]) for _, f in got] == idx  # the frame at that index
    assert cap.reads == reads and cap.grabs == grabs


def test_logit_mean():
    assert logit_mean([0.5]) == pytest.approx(0.5)
    assert logit_mean([0.9, 0.1]) == pytest.approx(0.5)
    assert logit_mean([0.9, 0.9, 0.1]) == pytest.approx(9 ** (1 / 3) / (1 + 9 ** (1 / 3)))  # geometric mean of the odds
    assert 0 < logit_mean([0.0, 0.0]) < 1e-5 and 1 - 1e-5 < logit_mean([1.0]) < 1  # clipped, never 0 or 1


# ----------------------------------------------------------------------------- bad input


def test_unreadable_videos_are_rows_and_others_continue(cli_run, model, videos, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "corrupt.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    (d / "empty.avi").write_bytes(b"")
    vw = cv2.VideoWriter(str(d / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    vw.release()  # a valid container without a frame
    (d / "notes.txt").write_text("not a video")  # not a video suffix: a folder input leaves it out
    out = tmp_path / "mixed.csv"
    code, stdout, err = scan(cli_run, model, d, videos / "real.avi", "--out", out)
    assert code == 0, err
    v = by_video(read_csv(out))
    assert set(v) == {"corrupt.avi", "empty.avi", "zero.avi", "real.avi"}
    assert v["corrupt.avi"]["status"] == v["empty.avi"]["status"] == "unreadable"
    assert v["zero.avi"]["status"] in ("no frames", "unreadable")
    for name in ("corrupt.avi", "empty.avi", "zero.avi"):
        assert v[name]["p_fake"] == "" and v[name]["frames_used"] == "0" and v[name]["error"]
        assert sum(f"skipped: {d / name}:" in ln for ln in err.splitlines()) == 1
    assert v["real.avi"]["status"] == "ok" and v["real.avi"]["verdict"] == "real"
    assert "Traceback" not in err


def test_all_unreadable_exit_1(cli_run, model, tmp_path):
    (tmp_path / "a.avi").write_bytes(b"")
    (tmp_path / "b.mp4").write_bytes(b"\x00garbage" * 100)
    out = tmp_path / "x.csv"
    code, _, err = scan(cli_run, model, tmp_path, "--out", out)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: none of the 2 video(s) could be read")
    assert not out.exists()


@pytest.mark.parametrize("args, names", [
    (("--every", 2, "--frames", 3), ["--every", "--frames"]),
    (("--every", 0), ["--every"]),
    (("--frames", -1), ["--frames"]),
    (("--out", "x.txt"), ["--out"]),
    (("--align", "sideways"), ["--align"]),
])
def test_bad_options_exit_2(cli_run, model, videos, args, names):
    code, _, err = scan(cli_run, model, videos / "real.avi", *args)
    assert code == 2
    assert all(n in err for n in names), err


def test_inputs_matching_nothing(cli_run, model, videos, tmp_path):
    code, _, err = scan(cli_run, model, videos / "real.avi", tmp_path / "missing.mp4", str(tmp_path / "*.mkv"))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "missing.mp4: file not found" in err and "*.mkv: no video file matches" in err
    sub = tmp_path / "top"
    (sub / "deeper").mkdir(parents=True)
    make_video(sub / "deeper" / "clip.avi", [None] * 3)
    code, _, err = scan(cli_run, model, sub)
    assert code == 1 and "--recursive" in err
    assert collect_videos([sub], recursive=True) == [str(sub / "deeper" / "clip.avi")]
    assert collect_videos([str(sub / "**" / "*.avi"), sub / "deeper" / "clip.avi"]) == [str(sub / "deeper" / "clip.avi")]


@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_run_leaves_no_partial_output(cli_run, model, videos, tmp_path, monkeypatch, existing):
    from edge_dfd.video.pipeline import LivePipeline

    out = tmp_path / "res" / "scan.csv"
    out.parent.mkdir()
    if existing:
        out.write_text("old results\n")
    calls = [0]
    process = LivePipeline.process

    def interrupting(self, frame, t=None):
        calls[0] += 1
        if calls[0] == 40:  # in the second video
            raise KeyboardInterrupt
        return process(self, frame, t)

    monkeypatch.setattr(LivePipeline, "process", interrupting)
    code, _, err = scan(cli_run, model, videos, "--out", out)
    assert code == 130 and "interrupted" in err
    assert calls[0] == 40
    assert [p.name for p in out.parent.iterdir()] == (["scan.csv"] if existing else [])  # no temporary file left
    if existing:
        assert out.read_text() == "old results\n"


def test_help_lists_options(cli_run):
    code, out, _ = cli_run("scan", "--help")
    assert code == 0
    for opt in ("--every", "--frames", "--recursive", "--faces", "--align", "--margin", "--threshold",
                "--min-track-frames", "--out", "--json", "--quiet", "--model", "--format", "--threads"):
        assert opt in out
    code, out, _ = cli_run("--help")
    assert "scan" in out


def test_scan_onnx_never_imports_tensorflow(model, videos):
    code = (
        "import sys; from edge_dfd.cli import main; "
        f"rc = main(['scan', {str(videos / 'real.avi')!r}, '--model', {str(model)!r}, '--frames', '3', '-q']); "
        "print('TF' if any(m == 'tensorflow' or m.startswith('tensorflow.') for m in sys.modules) else 'noTF', rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split()[-2:] == ["noTF", "0"], r.stdout + r.stderr


def _haar():
    from edge_dfd.images.faces import make_detector

    return make_detector("haar")
