"""Keras modelling: the study's architectures and the deploy detector (``models``, ``backbones``) and reading /
writing ``.keras`` files with their metadata (``kerasio``). Imports ``core`` and ``images``; TensorFlow is imported
inside the functions that need it."""
