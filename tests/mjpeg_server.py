"""The test scenes and MJPEG stream live in benchmarks/mjpeg_server.py (the soak uses them too); tests import
them from here."""

from benchmarks.mjpeg_server import MJPEGServer, have_photos, scene_frames, write_video

__all__ = ["MJPEGServer", "have_photos", "scene_frames", "write_video"]
