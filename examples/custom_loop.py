"""A custom real-time loop on the edge-dfd library API (what `edge-dfd live` does, minus the CLI).

    python examples/custom_loop.py --source 0                 # webcam
    python examples/custom_loop.py --source clip.mp4 --model detector_int8.tflite

Reads frames with OpenCV, finds faces with BlazeFace, classifies every face of a frame in one batched call,
and prints one line per face whenever a track's smoothed verdict changes. No TensorFlow is imported for
.tflite / .onnx models.
"""

from __future__ import annotations

import argparse
import time

import cv2

from edge_dfd.images.faces import make_detector
from edge_dfd.runtime import load_model
from edge_dfd.video import LivePipeline


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="0", help="camera index or video file")
    ap.add_argument("--model", default="default", help="model file or 'default' (the bundled model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()

    backend = load_model(args.model, threads=args.threads)  # Backend.predict(uint8 RGB batch) -> P(fake)
    detector = make_detector("blazeface", threads=args.threads)  # detect(BGR frame) -> boxes, scores
    pipe = LivePipeline(backend, detector, detect_every=2, smooth=8)
    print(f"model {backend.path.name}: input {backend.input_size} px, threshold {pipe.threshold:.3f}")

    cap = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    if not cap.isOpened():
        raise SystemExit(f"error: cannot open {args.source}")
    verdicts: dict[int, str] = {}
    t0, n = time.perf_counter(), 0
    while n < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        for face in pipe.process(frame):  # FaceResult: track, box, score, smoothed, verdict, detected
            if verdicts.get(face.track) != face.verdict:
                verdicts[face.track] = face.verdict
                print(f"frame {n}: face #{face.track} at {face.box} is {face.verdict} "
                      f"(P(fake) {face.smoothed:.2f} over the last frames)")
        n += 1
    cap.release()
    dt = time.perf_counter() - t0
    print(f"{n} frames in {dt:.1f} s ({n / max(dt, 1e-9):.1f} FPS); last stage ms: {pipe.last_ms}")


if __name__ == "__main__":
    main()
