"""The test-video maker used by tests and benchmarks."""
from __future__ import annotations

import cv2
import numpy as np

from edge.faces import HaarFaceDetector
from edge.video import write_test_video


def test_writes_the_requested_frames_with_a_face(tmp_path, portrait):
    path = write_test_video(tmp_path / "clip.mp4", portrait, frames=12, blank_frames=3)
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 15 and frames[0].shape == (480, 640, 3)
    faces = HaarFaceDetector().detect(frames[0])
    assert faces and 100 <= faces[0][3] <= 200  # about 0.3 of the frame height
    assert not HaarFaceDetector().detect(frames[-1])
    assert not np.array_equal(frames[0], frames[6])  # it moves
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_accepts_an_rgb_array(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (100, 80, 3), dtype=np.uint8)
    path = write_test_video(tmp_path / "noise.avi", rgb, frames=2, size=(320, 240))
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    assert ok and frame.shape == (240, 320, 3)
