"""A 640x480 test video with a moving face, for tests and benchmarks (no camera needed).

``write_test_video`` cuts the face out of a portrait photo (with some hair and shoulders), scales
it to webcam size, pastes it onto a plain background and moves it along a slow figure-of-eight
with a gentle change of size, the way a person sways in front of a webcam. The motion is smooth
enough for tracking and large enough that the crop keeps changing.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from edge.contract import read_rgb
from edge.faces import HaarFaceDetector
from edge.outputs import VIDEO_CODECS, OutputError, temporary_name

BACKGROUND = (118, 128, 136)  # BGR, a neutral wall


def write_test_video(
    path: str | os.PathLike,
    face_image: str | os.PathLike | np.ndarray,
    frames: int = 90,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    face_height: float = 0.3,
    blank_frames: int = 0,
) -> Path:
    """Write ``frames`` frames of a moving face (a photo path or an RGB array); return the path.

    ``face_height`` is the face's height as a fraction of the frame height (0.3: about 145 px in
    480, a person at arm's length from a webcam). The face is found in the photo with the Haar
    cascade; if none is found the whole photo stands in for it. ``blank_frames`` frames without
    the face are appended at the end (for "no face in view"). Written atomically.
    """
    path = Path(path)
    codec = VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise OutputError(f"cannot write video {path}: use one of {', '.join(VIDEO_CODECS)}")
    rgb = read_rgb(str(face_image)) if not isinstance(face_image, np.ndarray) else face_image
    photo = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    width, height = size
    portrait, face_fraction = _head_and_shoulders(photo)
    portrait_height = min(1.0, face_height / face_fraction)
    temporary = temporary_name(path)
    writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise OutputError(f"cannot write video {path}: OpenCV has no {codec} encoder here")
    try:
        for index in range(frames):
            writer.write(_moving_face_frame(portrait, index, frames, size, portrait_height))
        blank = np.full((height, width, 3), BACKGROUND, np.uint8)
        for _ in range(blank_frames):
            writer.write(blank)
    except BaseException:
        writer.release()
        temporary.unlink(missing_ok=True)
        raise
    writer.release()
    os.replace(temporary, path)
    return path


def _head_and_shoulders(photo: np.ndarray) -> tuple[np.ndarray, float]:
    """The region around the photo's largest face, and the face's share of that region's height."""
    faces = HaarFaceDetector().detect(photo)
    if not faces:
        return photo, 1.0
    x, y, w, h = faces[0]
    side = 2.6 * max(w, h)
    cx, cy = x + w / 2.0, y + h / 2.0 + 0.25 * h
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(photo.shape[1], cx + side / 2)), int(min(photo.shape[0], cy + side / 2))
    return photo[y0:y1, x0:x1], h / float(y1 - y0)


def _moving_face_frame(portrait: np.ndarray, index: int, frames: int, size: tuple[int, int], portrait_height: float) -> np.ndarray:
    width, height = size
    phase = 2.0 * math.pi * index / max(frames, 1)
    scale = portrait_height * height * (1.0 + 0.08 * math.sin(2.0 * phase)) / portrait.shape[0]
    pw = max(8, int(round(portrait.shape[1] * scale)))
    ph = max(8, int(round(portrait.shape[0] * scale)))
    picture = cv2.resize(portrait, (pw, ph), interpolation=cv2.INTER_AREA)
    cx = width / 2.0 + 0.18 * width * math.sin(phase)
    cy = height / 2.0 + 0.08 * height * math.sin(2.0 * phase)
    x0, y0 = int(round(cx - pw / 2.0)), int(round(cy - ph / 2.0))
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(width, x0 + pw), min(height, y0 + ph)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = picture[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    return frame
