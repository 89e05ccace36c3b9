"""The live-view tests' stand-in camera. Starting ``python -m edge --serve`` and reading its endpoints
and MJPEG stream is ``benchmarks.serve_client`` (standard library only), shared with the live-view
benchmark."""
from __future__ import annotations

from pathlib import Path


def drawing_video(models: Path, path: Path, frames: int = 90) -> Path:
    """A 640x480 clip of one character picture moving: the tiny model's --full-frame stand-in camera."""
    from edge.video import write_test_video

    picture = sorted((models / "characters").glob("*.png"))[0]
    return write_test_video(path, picture, frames=frames, face_height=0.6)
