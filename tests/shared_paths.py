"""Where the workplace's shared files are, for tests that need them.

A user's fresh clone has no ../shared: tests that need it skip with a reason there. CI sets
LOOKALIKE_REQUIRE_SHARED=1, which turns a missing file into a failure, so CI never skips them.
This module imports nothing heavy: the device-only test run uses it too.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LOOKALIKE_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_no_top.weights.h5"
FACES = SHARED / "faces"
YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"
ANCHOR = SHARED / "anchors" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
CELEBA = SHARED / "datasets" / "celeba-dev"  # labelled faces (non-commercial licence: never committed)
DATASET = ROOT / "data" / "emoji-characters"


def need(path: Path) -> Path:
    """Return path if it exists; otherwise skip (a user's clone) or fail (CI)."""
    if path.exists():
        return path
    message = f"{path} is missing (it lives in the workplace's ../shared, not in the repository)"
    if os.environ.get("LOOKALIKE_REQUIRE_SHARED") == "1":
        pytest.fail(message)
    pytest.skip(message)


# Committed with the tests, so that a fresh clone runs them: Eileen Collins' NASA portrait (public
# domain), as scikit-image ships it (see tests/fixtures/faces/README.md).
PORTRAIT = ROOT / "tests" / "fixtures" / "faces" / "astronaut.jpg"


def write_group_photo(path: Path) -> Path:
    """Two people side by side (the portrait's head and shoulders beside their mirror image), 640x320."""
    import cv2
    import numpy as np

    head = cv2.imread(str(PORTRAIT))[0:320, 64:384]
    cv2.imwrite(str(path), np.hstack([head, head[:, ::-1]]))
    return path


def write_committed_photos(folder: Path) -> list[str]:
    """Three photos with four faces in ``folder``: the portrait, its mirror image, and the group."""
    import cv2

    image = cv2.imread(str(PORTRAIT))
    cv2.imwrite(str(folder / "astronaut.jpg"), image)
    cv2.imwrite(str(folder / "astronaut_mirrored.jpg"), image[:, ::-1])
    write_group_photo(folder / "group.jpg")
    return ["astronaut.jpg", "astronaut_mirrored.jpg", "group.jpg"]
