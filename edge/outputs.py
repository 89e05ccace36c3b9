"""Files the loop writes: annotated video or image, JSON lines, lookalike cards.

Nothing is ever half-written: each file is written under a temporary name in its own folder and
renamed into place by ``commit()``. ``discard()`` removes the temporary file instead (used when
the run fails on a bug); a run stopped by the user (Esc, q, Ctrl-C) commits what it finished.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.artifacts import atomic_write_bytes

IMAGE_OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class OutputError(RuntimeError):
    """An output file cannot be written; the message names it."""


def temporary_name(path: Path) -> Path:
    """A hidden sibling with the same suffix (OpenCV picks the file format from the suffix)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _check_folder(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder, give a file name")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {path.parent} is not writable")


def check_image_path(path: str | Path) -> Path:
    """Fail now, not after a long run, if an image cannot be written there."""
    path = Path(path)
    _check_folder(path)
    if path.suffix.lower() not in IMAGE_OUTPUT_SUFFIXES:
        raise OutputError(f"cannot write {path}: use one of {', '.join(IMAGE_OUTPUT_SUFFIXES)}")
    return path


def write_image(path: str | Path, bgr: np.ndarray) -> Path:
    """Encode and write an image atomically (format from the suffix)."""
    path = check_image_path(path)
    suffix = path.suffix.lower()
    ok, encoded = cv2.imencode(suffix, bgr)
    if not ok:
        raise OutputError(f"OpenCV could not encode {path}")
    try:
        atomic_write_bytes(path, encoded.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({exc.strerror or exc})") from exc
    return path


class JsonLinesWriter:
    """One JSON object per line, committed as a whole at the end."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        _check_folder(self.path)
        self._temporary = temporary_name(self.path)
        self._handle = open(self._temporary, "w", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.count += 1

    def commit(self) -> Path:
        self._handle.close()
        os.replace(self._temporary, self.path)
        return self.path

    def discard(self) -> None:
        self._handle.close()
        self._temporary.unlink(missing_ok=True)


class VideoOutput:
    """Annotated frames into a video file; frames of another size are resized to the first's."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        _check_folder(self.path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_CODECS:
            raise OutputError(f"cannot write video {self.path}: use one of {', '.join(VIDEO_CODECS)}")
        self._codec = VIDEO_CODECS[suffix]
        self._fps = fps
        self._temporary = temporary_name(self.path)
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.count = 0

    def write(self, bgr: np.ndarray) -> None:
        size = (bgr.shape[1], bgr.shape[0])
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self._temporary), cv2.VideoWriter_fourcc(*self._codec), self._fps, size)
            if not self._writer.isOpened():
                self._temporary.unlink(missing_ok=True)
                raise OutputError(f"cannot write video {self.path}: OpenCV has no {self._codec} encoder here (try .avi)")
            self._size = size
        if size != self._size:
            bgr = cv2.resize(bgr, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(bgr)
        self.count += 1

    def commit(self) -> Path | None:
        if self._writer is None:
            return None  # no frame was ever written: no file rather than an empty one
        self._writer.release()
        os.replace(self._temporary, self.path)
        return self.path

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
        self._temporary.unlink(missing_ok=True)


class ImageOutput:
    """The annotated picture of a single-image source, written when the run ends."""

    def __init__(self, path: str | Path):
        self.path = check_image_path(path)
        self._last: np.ndarray | None = None
        self.count = 0

    def write(self, bgr: np.ndarray) -> None:
        self._last = bgr
        self.count += 1

    def commit(self) -> Path | None:
        return write_image(self.path, self._last) if self._last is not None else None

    def discard(self) -> None:
        self._last = None


def annotated_output(path: str | Path, fps: float, still_source: bool, single_picture: bool):
    """A video writer, or an image writer when the name says image and there is one picture."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_OUTPUT_SUFFIXES:
        if not single_picture:
            raise OutputError(f"--output {path} is an image but the source has many frames: name a video (.mp4 or .avi)")
        return ImageOutput(path)
    return VideoOutput(path, 1.0 if still_source else fps)


# ---------------------------------------------------------------- staging folders and stop signals

STAGING_OWNER = ".owner-pid"


def make_staging(folder: str | Path, prefix: str) -> Path:
    """A new hidden staging folder in ``folder`` that names its process, after removing the
    staging folders of processes that are gone (killed, powered off) so they never pile up."""
    folder = Path(folder)
    remove_stale_staging(folder, prefix)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    (staging / STAGING_OWNER).write_text(str(os.getpid()))
    return staging


def remove_stale_staging(folder: str | Path, prefix: str) -> list[str]:
    """Remove ``prefix*`` folders whose owning process no longer runs; the names removed."""
    removed = []
    for path in sorted(Path(folder).glob(prefix + "*")):
        if path.is_dir() and not _owner_alive(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def _owner_alive(staging: Path) -> bool:
    try:
        pid = int((staging / STAGING_OWNER).read_text().strip())
    except (OSError, ValueError):
        return False  # no owner recorded: left by a run that died before it wrote one
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
