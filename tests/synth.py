"""The generated test data lives in benchmarks/synth.py (benchmarks use it too); tests import it from here."""

from benchmarks.synth import HEADER, IMAGES_SUBDIR, make_140k, make_folder_layout, synth_face, write_jpeg

__all__ = ["HEADER", "IMAGES_SUBDIR", "make_140k", "make_folder_layout", "synth_face", "write_jpeg"]
