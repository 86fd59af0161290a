"""Image input: the 140k dataset index (``data``), decoding and preprocessing, the named perturbations, face
detection (``faces``) and the face crop (``align``). Imports only ``edge_dfd.core``; no TensorFlow."""
