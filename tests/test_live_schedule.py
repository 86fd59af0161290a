"""The live classifier's schedule: new tracks first, then round robin at most --classify-hz per track; a worker
thread keeps a slow model from lowering the frame rate; verdict ages; usage errors of the new options."""

from __future__ import annotations

import time

import numpy as np
import pytest
from stubs import Boxes, StubBackend, background

from edge_dfd.video.pipeline import LivePipeline, Scheduler


class Slow(StubBackend):
    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def predict(self, batch):
        time.sleep(self.delay)
        return super().predict(batch)


def test_scheduler_new_first_then_longest_waiting_at_most_hz():
    s = Scheduler(10.0)  # period 0.1 s
    assert s.due([3, 1, 2], 0.0) == [1, 2, 3]  # never classified: all, oldest id first
    s.done(1, 0.0), s.done(2, 0.05), s.done(3, 0.0)
    assert s.due([1, 2, 3, 4], 0.06) == [4]  # a new track jumps the queue; the others are not due yet
    s.done(4, 0.06)
    assert s.due([1, 2, 3, 4], 0.1) == [1, 3]  # due again after 1/hz, longest-waiting first
    assert s.due([1, 2, 3, 4], 0.2, limit=2) == [1, 3]
    assert s.next_due([1, 2, 3, 4], 0.0) == pytest.approx(0.1)
    s.forget([2])
    assert s.due([1, 2], 1.0) == [1, 2]  # 1 was forgotten: new again
    assert Scheduler(None).due([5, 6], 0.0) == [5, 6]
    with pytest.raises(Exception, match="classify_hz"):
        Scheduler(0)


def test_inline_schedule_runs_on_the_frame_clock():
    """Without a worker (video files): 30 frames at 30 fps, 10 Hz -> each of 2 tracks classified on frames
    0, 3, 6, ... in ONE batch; verdict ages count in the video's own time."""
    backend = StubBackend()
    pipe = LivePipeline(backend, Boxes(2), classify_hz=10.0, align="box")
    frame = background()
    results = [pipe.process(frame, t=i / 30) for i in range(30)]
    assert backend.calls == 10 and backend.batch_sizes == [2] * 10
    assert pipe.classified == 20
    ages = [r[0].age for r in results]
    assert ages[:4] == pytest.approx([0.0, 1 / 30, 2 / 30, 0.0])
    assert [r[0].fresh for r in results[:4]] == [True, False, False, True]
    assert all(r[0].verdict in ("fake", "real") for r in results)


@pytest.mark.slow
def test_worker_keeps_the_frame_loop_fast_with_a_slow_model():
    """A 150-ms model: process() never waits for it; tracks start "pending", then get verdicts, newer tracks
    first; the verdict age stays bounded by the model's pace."""
    backend = Slow(0.15)
    with LivePipeline(backend, Boxes(3), classify_hz=100.0, worker=True, align="box") as pipe:
        frame = background()
        first = pipe.process(frame)
        assert [f.verdict for f in first] == ["pending"] * 3
        assert all(f.age is None and np.isnan(f.score) for f in first)
        times, results = [], []
        t_end = time.monotonic() + 1.2
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            results.append(pipe.process(frame))
            times.append(time.perf_counter() - t0)
            time.sleep(0.005)
        assert np.median(times) < 0.03, np.median(times)  # the loop is not paced by the 150-ms model
        last = results[-1]
        assert all(f.verdict != "pending" for f in last)
        assert 3 <= pipe.classified <= 3 * 1.5 / 0.15  # one batch of <= 8 per model call
        assert all(f.age is not None and f.age < 0.6 for f in last), [f.age for f in last]
        assert max(backend.batch_sizes) <= 3
    assert not pipe._worker.is_alive()


def test_worker_error_surfaces_in_the_frame_loop():
    class Broken(StubBackend):
        def predict(self, batch):
            raise RuntimeError("model exploded")

    pipe = LivePipeline(Broken(), Boxes(1), classify_hz=10.0, worker=True, align="box")
    try:
        pipe.process(background())
        time.sleep(0.3)
        with pytest.raises(RuntimeError, match="exploded"):
            pipe.process(background())
    finally:
        pipe.close()


@pytest.mark.parametrize("args, name", [
    (["--classify-hz", "0"], "--classify-hz"),
    (["--serve", "localhost:http"], "--serve"),
    (["--serve", "99999"], "--serve"),
    (["--source", "rtsp:/camera/stream"], "--source"),
    (["--source", "http://"], "--source"),
    (["--align", "eyes"], "--align"),
])
def test_bad_live_options_are_usage_errors(cli_run, args, name):
    code, out, err = cli_run("live", *args)
    assert code == 2, (code, err)
    assert name in err and "Traceback" not in err


def test_tracker_motion_gate_starts_a_new_track_at_a_cut():
    """A face that moves or grows a little keeps its track (and smoothed verdict); a box that changes size by
    more than 1.25x or jumps by more than 0.4 of its side between two detections is another face."""
    from edge_dfd.video.tracking import Tracker

    t = Tracker()
    (a,) = t.update([[100, 100, 200, 200]])
    assert t.update([[110, 104, 212, 206]]) == [a]  # moved 11 px, grew 2 %
    (b,) = t.update([[95, 95, 235, 235]])  # 1.37x the side in one detection: a cut to another face
    assert b != a
    (c,) = t.update([[150, 95, 290, 235]])  # same size, centre jumped 0.39 x side: still plausible motion
    assert c == b
    (d,) = t.update([[215, 95, 355, 235]])  # jumped 0.46 x side (IoU 0.37 would have matched): new face
    assert d not in (a, b)
    loose = Tracker(max_scale=2.0, max_shift=1.0)
    (e,) = loose.update([[100, 100, 200, 200]])
    assert loose.update([[95, 95, 235, 235]]) == [e]


@pytest.mark.slow
def test_frame_wait_outlasts_the_reconnect_attempts():
    """A stream that drops for good: the frame loop waits for every reconnect attempt (here 3 attempts, 2.1 s of
    backoff, longer than the 0.5-s frame timeout) and then ends with the stream-lost error, not a timeout."""
    from edge_dfd.video.sources import FrameGrabber

    class Dead:
        live, kind, name, fps = True, "stream", "stream http://dead", 30.0

        def __init__(self):
            self.reads = self.reopens = 0

        def read(self):
            self.reads += 1
            return (True, background()) if self.reads == 1 else (False, None)

        def reopen(self):
            self.reopens += 1
            return False

        def release(self):
            pass

    src = Dead()
    g = FrameGrabber(src, reconnects=3, backoff=0.3)
    g.start()
    assert g.get(timeout=5).index == 0
    t0 = time.monotonic()
    assert g.get(timeout=0.5) is None  # no "no frame for 0 s" while reconnecting
    assert time.monotonic() - t0 > 1.8
    assert src.reopens == 3 and "3 reconnect attempts failed" in str(g.error)
    g.join(timeout=5)


def test_auto_align_picks_the_models_training_framing():
    from edge_dfd.video.pipeline import resolve_align

    class M:
        def __init__(self, arch):
            self.meta = type("meta", (), {"arch": arch, "threshold": 0.5})()
            self.input_size = 32

    assert resolve_align("auto", M("mobilenet_v2_single_pass")) == "box"
    assert resolve_align("auto", M("efficientnet_lite0_single_pass")) == "aligned"
    assert resolve_align("auto", M("mobilenet_v2+efficientnet_lite0_multicrop")) == "aligned"
    assert resolve_align("auto", M("cnn")) == "aligned"
    assert resolve_align("box", M("cnn")) == "box"
    assert LivePipeline(M("mobilenet_v2_single_pass"), Boxes(1)).align == "box"
    # metadata that states the crop wins over the arch (the fallback above is for files without the field)
    stated = M("mobilenet_v2_single_pass")
    stated.meta.crop_mode, stated.meta.crop_margin = "aligned", 0.5
    pipe = LivePipeline(stated, Boxes(1))
    assert (pipe.align, pipe.margin) == ("aligned", 0.5)
    forced = LivePipeline(stated, Boxes(1), align="box", margin=0.2)  # explicit options win over the metadata
    assert (forced.align, forced.margin) == ("box", 0.2)


def test_a_cut_to_another_face_in_the_same_box_starts_its_verdict_afresh():
    """Same box, different face (a cut the motion gate cannot see): the track's old scores are dropped and the
    new face is classified at once; the same face with a little shift and brightness change is not a cut."""
    import cv2

    class Fixed:
        name = "fixed"

        def detect(self, frame):
            return np.array([[200, 120, 440, 360]], np.float32), np.ones(1, np.float32)

    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3)).astype(np.uint8), (0, 0), 6)
    tex = cv2.normalize(tex, None, 0, 60, cv2.NORM_MINMAX)  # coarse structure, like a face's
    a = cv2.add(background(), tex)  # StubBackend: P(fake) from the B - R of the crop
    b = a.copy()
    b[120:360, 200:440] = cv2.flip(b[120:360, 200:440], 0)[:, :, ::-1]  # another "face": flipped, colours swapped
    backend = StubBackend()
    pipe = LivePipeline(backend, Fixed(), classify_hz=1.0, align="box")
    first = pipe.process(a, t=0.0)[0]
    moved = pipe.process(np.roll(cv2.convertScaleAbs(a, alpha=1.15), 3, axis=1), t=0.1)[0]
    assert pipe.cuts == 0 and not moved.fresh and moved.smoothed == first.smoothed  # not due yet at 1 Hz
    cut = pipe.process(b, t=0.2)[0]
    assert pipe.cuts == 1 and cut.fresh  # classified again at once, although 1 Hz was not due
    assert cut.smoothed == pytest.approx(cut.score) and cut.score != pytest.approx(first.score)
