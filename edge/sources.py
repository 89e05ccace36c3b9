"""Where frames come from: a camera, a video file, one image, a folder of images, a Pi camera.

Every source hands out BGR uint8 frames (OpenCV's native order; the pipeline converts face crops
to the contract's RGB) through one small interface, so the camera loop does not care which it
has. ``read()`` returns a ``Frame``: an image, a dropped frame (``image is None``: the loop counts
it and keeps going) or the end of the stream.
"""
from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from edge.artifacts import IMAGE_SUFFIXES
from edge.contract import read_rgb
from edge.quiet import native_stderr_silenced

PICAMERA = "picamera"
# A live camera that fails this many reads in a row (about a second at 30 FPS) has gone away.
MAX_CONSECUTIVE_CAMERA_FAILURES = 30
# A video file that fails this many reads in a row before its last frame is treated as ended.
MAX_CONSECUTIVE_VIDEO_FAILURES = 5


class SourceError(RuntimeError):
    """A source that cannot be opened or stopped working; the message says what to do."""


@dataclass
class Frame:
    """One read from a source. ``image`` is None for a dropped frame; ``end`` marks the end."""

    image: np.ndarray | None
    label: Union[str, int]  # file path for images, frame index for streams
    end: bool = False
    error: str = ""


class FrameSource:
    """Base class: a source of BGR frames. ``still`` sources hand out unrelated pictures."""

    still = False
    live = False  # a camera: frames come at the camera's pace, not as fast as they can be decoded
    name = "source"
    picture_count: int | None = None  # how many pictures a still source holds; None for streams

    def read(self) -> Frame:
        raise NotImplementedError

    @property
    def fps(self) -> float:
        """Frames per second of the stream (for the annotated video); 30 when unknown."""
        return 30.0

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def list_video_devices() -> list[str]:
    """The /dev/video* device nodes on this machine (empty on machines without cameras)."""
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def no_camera_hint() -> str:
    devices = list_video_devices()
    if devices:
        found = "cameras found: " + ", ".join(devices) + " (pick one with --source N or --source /dev/videoN)"
    else:
        found = "no /dev/video* camera found"
    return (
        f"{found}; on a Raspberry Pi camera module use --source picamera; "
        "or pass a video file, an image or a folder of images"
    )


class CaptureSource(FrameSource):
    """A cv2.VideoCapture: a camera (index or device path) or a video file."""

    def __init__(self, capture: cv2.VideoCapture, name: str, live: bool):
        self._capture = capture
        self.name = name
        self.live = live
        self._index = 0
        self._failures = 0
        frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self._frame_count = int(frames) if not live and frames and frames > 0 else None

    @property
    def fps(self) -> float:
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps and 1.0 <= fps <= 240.0 else 30.0

    def read(self) -> Frame:
        with native_stderr_silenced():  # FFmpeg reports a damaged frame itself; we count it instead
            ok, image = self._capture.read()
        index = self._index
        self._index += 1
        if ok and image is not None:
            self._failures = 0
            return Frame(_as_bgr(image), index)
        self._failures += 1
        if self.live:
            if self._failures >= MAX_CONSECUTIVE_CAMERA_FAILURES:
                raise SourceError(
                    f"camera {self.name} stopped delivering frames ({self._failures} failed reads in a row): "
                    "check the cable or whether another program uses it"
                )
            return Frame(None, index, error="camera read failed")
        if self._before_last_frame() and self._failures < MAX_CONSECUTIVE_VIDEO_FAILURES:
            return Frame(None, index, error="frame could not be decoded")
        return Frame(None, index, end=True)

    def _before_last_frame(self) -> bool:
        if self._frame_count is None:
            return False
        position = self._capture.get(cv2.CAP_PROP_POS_FRAMES)
        return 0 <= position < self._frame_count - 1

    def close(self) -> None:
        self._capture.release()


class ImageListSource(FrameSource):
    """One image or a folder of images; a file that cannot be decoded is a dropped frame."""

    still = True

    def __init__(self, paths: list[Path], name: str):
        self._paths = list(paths)
        self.picture_count = len(self._paths)
        self._next = 0
        self.name = name

    def read(self) -> Frame:
        if self._next >= len(self._paths):
            return Frame(None, "", end=True)
        path = self._paths[self._next]
        self._next += 1
        try:
            rgb = read_rgb(str(path))
        except (ValueError, OSError) as exc:
            return Frame(None, str(path), error=str(exc))
        return Frame(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), str(path))


class ArraySource(FrameSource):
    """An image already in memory (e.g. scikit-image's astronaut), handed out once."""

    still = True
    picture_count = 1

    def __init__(self, rgb: np.ndarray, name: str):
        self._bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
        self.name = name
        self._done = False

    def read(self) -> Frame:
        if self._done:
            return Frame(None, self.name, end=True)
        self._done = True
        return Frame(self._bgr, self.name)


class PicameraSource(FrameSource):
    """A Raspberry Pi camera module through picamera2 (libcamera)."""

    live = True

    def __init__(self, size: tuple[int, int]):
        try:
            from picamera2 import Picamera2  # only on a Raspberry Pi; never a hard dependency
        except ImportError as exc:
            raise SourceError(
                "--source picamera needs picamera2: on Raspberry Pi OS run 'sudo apt install python3-picamera2' "
                "and create the venv with --system-site-packages; or use a USB camera with --source 0"
            ) from exc
        except ValueError as exc:
            # apt's picamera2 pulls in apt's simplejpeg, built for the system's NumPy 1.x; the venv
            # has NumPy 2 ("numpy.dtype size changed, may indicate binary incompatibility").
            raise SourceError(
                f"picamera2 could not be loaded ({exc}): its simplejpeg was built for an older NumPy; "
                "in this venv run 'pip install --force-reinstall simplejpeg'"
            ) from exc
        self.name = PICAMERA
        try:
            self._camera = Picamera2()
            # libcamera names formats by their little-endian word: "RGB888" arrives as B, G, R
            # bytes per pixel, which is exactly OpenCV's BGR order.
            config = self._camera.create_preview_configuration(main={"size": tuple(size), "format": "RGB888"})
            self._camera.configure(config)
            self._camera.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise SourceError(f"the Raspberry Pi camera could not be started ({exc}): check 'rpicam-hello' works") from exc
        self._index = 0
        self._failures = 0

    def read(self) -> Frame:
        index = self._index
        self._index += 1
        try:
            image = self._camera.capture_array()
        except RuntimeError as exc:
            self._failures += 1
            if self._failures >= MAX_CONSECUTIVE_CAMERA_FAILURES:
                raise SourceError(f"the Raspberry Pi camera stopped delivering frames ({exc})") from exc
            return Frame(None, index, error=str(exc))
        self._failures = 0
        return Frame(_as_bgr(image), index)

    def close(self) -> None:
        self._camera.stop()
        self._camera.close()


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _open_camera(spec: str, size: tuple[int, int]) -> CaptureSource:
    device: Union[int, str] = int(spec) if spec.isdigit() else spec
    if isinstance(device, int) and sys.platform.startswith("linux") and not Path(f"/dev/video{device}").exists():
        raise SourceError(f"camera {device} does not exist (no /dev/video{device}); {no_camera_hint()}")
    if isinstance(device, str) and not Path(device).exists():
        raise SourceError(f"camera {device} does not exist; {no_camera_hint()}")
    with native_stderr_silenced():
        capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        capture.release()
        node = f"/dev/video{device}" if isinstance(device, int) else device
        raise SourceError(f"cannot open camera {spec}: is another program using it? ('fuser {node}' names it); "
                          f"{no_camera_hint()}")
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    return CaptureSource(capture, f"camera {spec}", live=True)


def _open_video(path: Path) -> CaptureSource:
    with native_stderr_silenced():
        capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open {path} as a video or image (unknown or damaged format)")
    return CaptureSource(capture, str(path), live=False)


def is_pictures(spec: str) -> bool:
    """True when ``spec`` names a picture or a folder of pictures (not a camera or a video)."""
    path = Path(str(spec).strip()).expanduser()
    return str(spec).strip() != PICAMERA and (path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES)


def open_source(spec: str, camera_size: tuple[int, int] = (640, 480)) -> FrameSource:
    """A source from what the user typed: a camera index or /dev path, 'picamera', a file or folder."""
    spec = str(spec).strip()
    if spec == PICAMERA:
        return PicameraSource(camera_size)
    if spec.isdigit() or spec.startswith("/dev/"):
        return _open_camera(spec, camera_size)
    path = Path(spec).expanduser()
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise SourceError(f"folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageListSource(files, str(path))
    if not path.exists():
        raise SourceError(f"{path} does not exist; pass a camera index (0), a video, an image or a folder")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path} cannot be read (permission denied)")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageListSource([path], str(path))
    return _open_video(path)


def astronaut_source() -> ArraySource:
    """scikit-image's astronaut photo (Eileen Collins, NASA, public domain), if scikit-image is installed."""
    try:
        from skimage import data  # a workstation extra: the device venv does not have it
    except ImportError as exc:
        raise SourceError(
            "--astronaut needs scikit-image (pip install scikit-image, or 'make setup'); "
            "or pass a photo: python -m edge path/to/photo.jpg"
        ) from exc
    return ArraySource(data.astronaut(), "astronaut")

