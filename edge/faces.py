"""Face detection: YuNet when the device has its ONNX file, else OpenCV's bundled Haar cascade.

``--detector auto`` (the default) takes YuNet from ``$LOOKALIKE_DETECTOR`` or the cache that
``python -m edge detector --fetch`` fills (edge/detector_store.py), and the Haar cascade otherwise.

Detectors take a (usually downscaled) BGR image and return face boxes (x, y, w, h) in that
image's pixels, largest first. Detecting on a small image is what keeps the live loop fast: the
Haar cascade's cost grows with the pixel count and the number of pyramid scales it scans. Each
detector names the width it needs for a face 60 px wide in a 640x480 frame (``detect_width``).

``find_faces`` is the one way a still picture is searched (shrunk to 640 px, detected, cut to the
picture): the faces benchmark, training's face mean and the trait head's faces call it, and the
device's photo mode takes the same steps inside the pipeline (a test checks the boxes agree).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

from edge.quiet import native_stderr_silenced

Box = tuple[float, float, float, float]  # x, y, w, h
HAAR_FILE = "haarcascade_frontalface_default.xml"
# Where distribution packages of OpenCV (apt's python3-opencv on Raspberry Pi OS) keep the
# cascades; the pip wheels carry them in cv2.data instead.
HAAR_FOLDERS = ("/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades", "/usr/local/share/opencv4/haarcascades")


# Stream detection widths (a 640x480 frame is shrunk to this before detecting and tracking). YuNet
# finds a 60 px face at 240; the cascade's 24 px window needs the face at least that large.
YUNET_DETECT_WIDTH = 240
HAAR_DETECT_WIDTH = 400
STILL_DETECT_WIDTH = 640  # still pictures: speed matters less than small faces


class DetectorError(RuntimeError):
    """The face detector cannot be loaded; the message names the file and what to do."""


class FaceDetector(Protocol):
    name: str
    detect_width: int

    def detect(self, bgr: np.ndarray) -> list[Box]:
        """Face boxes in ``bgr``'s pixels, largest first."""


@dataclass(frozen=True)
class HaarSettings:
    scale_factor: float = 1.2  # 1.1 is the textbook value; 1.2 scans half the scales for ~2x speed
    min_neighbors: int = 4
    min_face_fraction: float = 0.08  # smallest face searched for, as a fraction of the image width (51 px in 640)
    min_face_pixels: int = 24  # the cascade's own window: smaller faces cannot be found


def haar_cascade_path() -> Path:
    data = getattr(cv2, "data", None)
    folders = ([data.haarcascades] if data is not None else []) + list(HAAR_FOLDERS)
    for folder in folders:
        path = Path(folder) / HAAR_FILE
        if path.is_file():
            return path
    raise DetectorError(
        f"OpenCV's {HAAR_FILE} was not found (looked in {', '.join(folders)}): "
        "pip install -r edge/requirements.txt, or pass --detector path/to/yunet.onnx"
    )


class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal face cascade: no model download, works everywhere."""

    name = "haar"
    detect_width = HAAR_DETECT_WIDTH

    def __init__(self, settings: HaarSettings = HaarSettings(), cascade_path: str | Path | None = None):
        path = Path(cascade_path) if cascade_path else haar_cascade_path()
        try:
            with native_stderr_silenced():  # OpenCV prints its parse error itself before raising it
                self._cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError) as exc:  # a file that is not cascade XML at all
            raise DetectorError(f"{path} is not a valid Haar cascade file (OpenCV cannot parse it)") from exc
        if self._cascade.empty():
            raise DetectorError(f"{path} is not a valid Haar cascade file")
        self.settings = settings

    def detect(self, bgr: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(gray)  # the cascade was trained on contrast-normalised faces
        s = self.settings
        min_side = max(s.min_face_pixels, int(round(gray.shape[1] * s.min_face_fraction)))
        if min_side > min(gray.shape[:2]):
            return []
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors, minSize=(min_side, min_side)
        )
        return _largest_first([tuple(float(v) for v in box) for box in found])


class YuNetFaceDetector:
    """OpenCV's YuNet CNN (ONNX, from the OpenCV model zoo): faster and more robust than Haar."""

    name = "yunet"
    detect_width = YUNET_DETECT_WIDTH

    def __init__(self, model_path: str | Path, score_threshold: float = 0.8):
        path = Path(model_path)
        if not path.is_file():
            raise DetectorError(
                f"face detector {path} does not exist: download face_detection_yunet_*.onnx from the "
                "OpenCV model zoo (opencv/opencv_zoo, models/face_detection_yunet) or pass --detector haar"
            )
        if not hasattr(cv2, "FaceDetectorYN"):
            raise DetectorError(f"this OpenCV ({cv2.__version__}) has no FaceDetectorYN: install opencv-python >= 4.8")
        try:
            self._detector = cv2.FaceDetectorYN.create(str(path), "", (320, 240), score_threshold, 0.3, 5000)
        except cv2.error as exc:
            raise DetectorError(f"{path} is not a YuNet ONNX model OpenCV can load ({_opencv_reason(exc, path)})") from exc
        self._input_size = (320, 240)

    def detect(self, bgr: np.ndarray) -> list[Box]:
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._input_size:
            self._detector.setInputSize(size)
            self._input_size = size
        _, faces = self._detector.detect(bgr)
        if faces is None:
            return []
        # Each row: x, y, w, h, five landmarks (x, y), score.
        return _largest_first([tuple(float(v) for v in row[:4]) for row in faces if row[2] > 0 and row[3] > 0])


AUTO = "auto"


def make_face_detector(detector: str | os.PathLike | None = AUTO, haar: HaarSettings = HaarSettings()) -> FaceDetector:
    """'auto' or None -> YuNet when the device has it (edge/detector_store.py), else Haar; 'haar' -> the
    bundled Haar cascade; an .onnx path -> YuNet; an .xml path -> that cascade. The detector's ``source``
    says which file it runs and why (``describe_detector``)."""
    source = str(detector)
    if detector is None or str(detector) in ("", AUTO):
        from edge.detector_store import auto_choice

        choice = auto_choice()
        source = f"auto: {choice.reason}" if choice.path is None else str(choice.path)
        detector = "haar" if choice.path is None else choice.path
    found = _detector_for(detector, haar)
    found.source = source
    return found


def _detector_for(detector: str | os.PathLike, haar: HaarSettings) -> FaceDetector:
    if str(detector) == "haar":
        return HaarFaceDetector(haar)
    path = Path(detector).expanduser()
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.onnx")) + sorted(p.name for p in path.glob("*.xml"))
        hint = f" ({', '.join(found[:3])} in it)" if found else ""
        raise DetectorError(f"--detector {path} is a folder: pass the detector file itself{hint}")
    if path.suffix.lower() not in (".onnx", ".xml"):
        raise DetectorError(f"--detector takes auto, haar, a YuNet .onnx file or a Haar cascade .xml, not {path.name}")
    if path.suffix.lower() == ".xml":
        if not path.is_file():
            raise DetectorError(f"Haar cascade {path} does not exist")
        return HaarFaceDetector(haar, path)
    return YuNetFaceDetector(path)


def describe_detector(detector: FaceDetector) -> str:
    """One line for the start of a run: which detector runs and, for auto, why."""
    return f"{detector.name} ({getattr(detector, 'source', detector.name)})"


def downscale(bgr: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """The picture shrunk to ``width`` (never enlarged) and the factor back to its pixels."""
    height, picture_width = bgr.shape[:2]
    if picture_width <= width:
        return bgr, 1.0
    factor = picture_width / float(width)
    size = (width, max(1, int(round(height / factor))))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), factor


def find_faces(bgr: np.ndarray, detector: FaceDetector, width: int = STILL_DETECT_WIDTH) -> list[Box]:
    """Face boxes in a still picture's own pixels, largest first: detected on a copy shrunk to ``width``."""
    small, factor = downscale(bgr, width)
    boxes = clip_boxes(detector.detect(small), (small.shape[1], small.shape[0]))
    return scale_boxes(boxes, factor, (bgr.shape[1], bgr.shape[0]))


def scale_boxes(boxes: Sequence[Box], factor: float, frame_size: tuple[int, int]) -> list[Box]:
    """Boxes found on a resized image -> boxes in the full frame, clipped to it."""
    width, height = frame_size
    scaled = []
    for x, y, w, h in boxes:
        x0, y0 = max(0.0, x * factor), max(0.0, y * factor)
        x1, y1 = min(float(width), (x + w) * factor), min(float(height), (y + h) * factor)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            scaled.append((x0, y0, x1 - x0, y1 - y0))
    return scaled


def clip_boxes(boxes: Sequence[Box], image_size: tuple[int, int]) -> list[Box]:
    """Boxes cut to the image (detectors may report faces that reach past its edge)."""
    return scale_boxes(boxes, 1.0, image_size)


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def _opencv_reason(exc: BaseException, path: Path) -> str:
    """The human part of a cv2.error ("OpenCV(4.x) file.cpp:288: error: (-210:...) reason: path")."""
    text = " ".join(str(exc).split())
    match = re.search(r"error: \(-?\d+:[^)]*\) (.*)$", text)
    reason = match.group(1) if match else text
    return reason.replace(f": {path}", "").replace(str(path), "").strip(" :")[:160] or "unknown error"
