"""Real-time detection: capture thread -> face detection -> tracking -> ONE batched predict per frame.

Library use (see ``examples/custom_loop.py``)::

    from edge_dfd.images.faces import make_detector
    from edge_dfd.video import LivePipeline
    from edge_dfd.runtime import load_model

    pipe = LivePipeline(load_model("default", threads=2), make_detector("blazeface", threads=2))
    for face in pipe.process(frame_bgr):          # one FaceResult per face in the frame
        print(face.track, face.box, face.smoothed, face.verdict)

``run_live(LiveConfig(...))`` is the whole ``edge-dfd live`` command: a ``FrameGrabber`` thread reads the
source (cameras and streams keep only the newest frame, files are read frame by frame), the pipeline runs
on every frame (the detector every ``detect_every`` frames, boxes carried in between), and the results go to
the window, the saved video and the JSONL events. No TensorFlow is imported on the tflite / onnx paths.
Outputs that survive a stop, a crash or a power cut (appended events, segmented video, status file,
sd_notify) live in ``edge_dfd.video.outputs``; SIGINT / SIGTERM / SIGHUP stop the loop through ``edge_dfd.core.signals``.
"""

from edge_dfd.core.meta import DEFAULT_MARGIN
from edge_dfd.video.config import STAGES, LiveConfig, LiveStats, StageTimes
from edge_dfd.video.live import check_gui, event_record, run_live
from edge_dfd.video.pipeline import FaceResult, LivePipeline, draw
from edge_dfd.video.sources import Frame, FrameGrabber, Picamera2Source, SourceError, VideoSource, open_source

__all__ = ["DEFAULT_MARGIN", "STAGES", "FaceResult", "Frame", "FrameGrabber", "LiveConfig", "LivePipeline",
           "LiveStats", "Picamera2Source", "SourceError", "StageTimes", "VideoSource", "check_gui", "draw",
           "event_record", "open_source", "run_live"]
