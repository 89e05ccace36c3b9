"""Where the device keeps the YuNet face detector, and how it gets there.

YuNet finds small and turned faces that OpenCV's Haar cascade misses (a face 60 px wide in a
640x480 frame, a person about two metres from a webcam), at the same speed. Its ONNX file is not
part of any pip package, so the device fetches it once, on a machine with internet, and keeps it:

    python -m edge detector --fetch          # download from the OpenCV model zoo, check its sha256
    python -m edge detector --install FILE   # or copy a file you already have (offline devices)
    python -m edge detector                  # which detector the camera loop will use, and why

The cache folder is ``$LOOKALIKE_CACHE``, else ``$XDG_CACHE_HOME/cartoon-lookalike``, else
``~/.cache/cartoon-lookalike``. ``--detector auto`` (the default everywhere) picks, in order:
``$LOOKALIKE_DETECTOR`` when set, the cached YuNet, and OpenCV's bundled Haar cascade otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge.command import run_command

CACHE_FOLDER_NAME = "cartoon-lookalike"
DETECTOR_ENV = "LOOKALIKE_DETECTOR"


@dataclass(frozen=True)
class Release:
    """A published YuNet file: where it is and what its bytes hash to."""

    file: str
    url: str
    sha256: str


# The OpenCV model zoo's YuNet (MIT licence). The hash is the zoo's own Git LFS object id.
YUNET = Release(
    file="face_detection_yunet_2023mar.onnx",
    url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",  # 232,589 bytes
)
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # YuNet is 0.2 MB; anything this large is not it
DOWNLOAD_TIMEOUT_S = 30.0


class StoreError(RuntimeError):
    """The detector cannot be fetched or installed; the message says why and what to do."""


def cache_folder() -> Path:
    if os.environ.get("LOOKALIKE_CACHE"):
        return Path(os.environ["LOOKALIKE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / CACHE_FOLDER_NAME


def cached_yunet(folder: Path | None = None) -> Path | None:
    """The YuNet file in the cache (install and fetch keep one; if several were copied in by hand, the newest)."""
    folder = folder if folder is not None else cache_folder()
    found = [p for p in folder.glob("face_detection_yunet_*.onnx") if p.is_file()] if folder.is_dir() else []
    return max(found, key=lambda p: (p.stat().st_mtime, p.name)) if found else None


@dataclass(frozen=True)
class Choice:
    """What ``--detector auto`` resolves to: a path (YuNet .onnx or Haar .xml) or None for Haar."""

    path: Path | None
    reason: str


def auto_choice() -> Choice:
    from_env = os.environ.get(DETECTOR_ENV, "").strip()
    if from_env and from_env != "auto":
        return Choice(None if from_env == "haar" else Path(from_env).expanduser(), f"${DETECTOR_ENV}")
    cached = cached_yunet()
    if cached is not None:
        return Choice(cached, f"cached in {cached.parent}")
    return Choice(None, "no YuNet in the cache: 'python -m edge detector --fetch' once, on a connected machine, "
                        "finds small and turned faces")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_loads(path: Path, what: str) -> None:
    """The file must load as YuNet and run on a blank frame (another ONNX network loads, then fails to detect)."""
    import cv2
    import numpy as np

    from edge.faces import DetectorError, YuNetFaceDetector

    try:
        YuNetFaceDetector(path).detect(np.zeros((240, 320, 3), np.uint8))
    except DetectorError as exc:
        raise StoreError(f"{what} is not a YuNet model OpenCV can load ({exc})") from None
    except cv2.error:
        raise StoreError(f"{what} loads as a network but does not run as YuNet (another ONNX model?)") from None


def _place(staged: Path, folder: Path, name: str) -> Path:
    """Rename the checked file into the cache (atomic: the old file or the new one, never half), readable
    by every user (a service may run as another user), and drop any other YuNet file so the choice is plain."""
    target = folder / name
    try:
        os.chmod(staged, 0o644)
        os.replace(staged, target)
        for other in folder.glob("face_detection_yunet_*.onnx"):
            if other != target:
                other.unlink()
    except OSError as exc:
        raise StoreError(f"cannot write to the cache folder {folder} ({exc.strerror or exc}): "
                         "set LOOKALIKE_CACHE to a writable folder") from None
    return target


def _staging(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".partial-detector-", suffix=".onnx", dir=folder)  # OpenCV reads by suffix
    except OSError as exc:
        raise StoreError(f"cannot write to the cache folder {folder} ({exc.strerror or exc}): "
                         "set LOOKALIKE_CACHE to a writable folder") from None
    os.close(handle)
    return Path(name)


def install(source: Path, folder: Path | None = None) -> Path:
    """Copy a YuNet .onnx file the user already has into the cache, after checking it loads."""
    folder = folder if folder is not None else cache_folder()
    source = Path(source).expanduser()
    if not source.is_file():
        raise StoreError(f"{source} does not exist (or is not a file): pass the YuNet .onnx file")
    if source.suffix.lower() != ".onnx":
        raise StoreError(f"{source.name} is not an .onnx file: pass a YuNet model (face_detection_yunet_*.onnx)")
    _check_loads(source, str(source))
    name = source.name if source.name.startswith("face_detection_yunet_") else YUNET.file
    staged = _staging(folder)
    try:
        try:
            shutil.copyfile(source, staged)
        except OSError as exc:
            raise StoreError(f"cannot copy {source} into {folder} ({exc.strerror or exc})") from None
        return _place(staged, folder, name)
    finally:
        staged.unlink(missing_ok=True)


def fetch(url: str = YUNET.url, sha256: str | None = YUNET.sha256, folder: Path | None = None,
          timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download YuNet into the cache; refuse bytes whose sha256 differs from the one expected."""
    folder = folder if folder is not None else cache_folder()
    name = Path(urllib.parse.urlparse(url).path).name
    name = name if name.startswith("face_detection_yunet_") and name.endswith(".onnx") else YUNET.file
    staged = _staging(folder)
    try:
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise StoreError(f"cannot download {url} ({reason}): on a machine without internet, copy the file "
                             "over and run 'python -m edge detector --install FILE'") from None
        with response:
            _receive(response, staged, url, folder)
        got = sha256_of(staged)
        if sha256 is not None and got != sha256.lower():
            raise StoreError(f"{url} sent a file whose sha256 is {got[:16]}..., not the expected {sha256[:16]}...: "
                             "nothing was installed")
        _check_loads(staged, f"the file from {url}")
        return _place(staged, folder, name)
    finally:
        staged.unlink(missing_ok=True)


def _receive(response, staged: Path, url: str, folder: Path) -> None:
    """Copy the response into the staged file; a broken connection and a full disk say which they are."""
    received = 0
    with open(staged, "wb") as out:
        while True:
            try:
                block = response.read(1 << 16)
            except OSError as exc:
                raise StoreError(f"the download of {url} broke off ({exc}): try again") from None
            if not block:
                return
            received += len(block)
            if received > MAX_DOWNLOAD_BYTES:
                raise StoreError(f"{url} sent more than {MAX_DOWNLOAD_BYTES >> 20} MB: that is not YuNet")
            try:
                out.write(block)
            except OSError as exc:
                raise StoreError(f"cannot write the download into {folder} ({exc.strerror or exc})") from None


def describe() -> str:
    choice = auto_choice()
    if choice.path is None:
        return f"--detector auto: OpenCV's Haar cascade ({choice.reason})"
    return f"--detector auto: {choice.path} ({choice.reason})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge detector",
        description="Fetch or install the YuNet face detector the camera loop uses by default.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--fetch", action="store_true", help="download YuNet from the OpenCV model zoo into the cache")
    action.add_argument("--install", type=Path, metavar="FILE", help="copy a YuNet .onnx file into the cache")
    parser.add_argument("--url", default=YUNET.url, help="where --fetch downloads from")
    parser.add_argument("--sha256", default=None,
                        help="expected sha256 of the download [default: the zoo file's, when --url is the default]")
    args = parser.parse_args(argv)

    def body() -> None:
        if args.fetch:
            expected = args.sha256 or (YUNET.sha256 if args.url == YUNET.url else None)
            print(f"face detector saved: {fetch(args.url, expected)}", file=sys.stderr)
        elif args.install is not None:
            print(f"face detector saved: {install(args.install)}", file=sys.stderr)
        print(describe())

    return run_command(body, (StoreError,), "error: interrupted: nothing was installed")
