"""edge-dfd: deepfake face-image detectors from Keras training to verified edge deployment.

The public API is small and imports nothing heavy at import time:

    from edge_dfd import load_model  # .keras / .tflite / .onnx / "default"
    det = load_model("default")
    p_fake = det.predict(batch_uint8_rgb)       # (N, H, W, 3) uint8 RGB -> (N,) P(fake)

Every model in this project outputs **P(fake)**: the probability that the face is generated.
(The 140k dataset's CSV label is 1 = real, 0 = fake; P(fake) = 1 - P(label == 1).)
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def load_model(model="default", **kwargs):
    """Load a detector backend for a model file (or "default"); see edge_dfd.runtime.load_model."""
    from edge_dfd.runtime import load_model as _load

    return _load(model, **kwargs)
