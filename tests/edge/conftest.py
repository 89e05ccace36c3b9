"""Fixtures for the device-side tests: the tiny converted models, test videos and photos.

These tests run in the device-only venv too (edge/requirements.txt + pytest: no TensorFlow, no
scikit-image), so nothing here builds a model: the tiny converted models are committed under
tests/fixtures/tiny_models (48 px, 3 classes, every variant, sidecars, gallery, characters).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shared_paths import PORTRAIT, ROOT, write_group_photo

TINY_MODELS = Path(os.environ.get("LOOKALIKE_TINY_MODELS", ROOT / "tests" / "fixtures" / "tiny_models"))


@pytest.fixture(scope="session")
def tiny_models() -> Path:
    """The committed tiny models folder (read-only: copy it before changing anything)."""
    if not (TINY_MODELS / "lookalike_int8.tflite").is_file():
        pytest.fail(f"{TINY_MODELS} has no lookalike_int8.tflite: the tiny model fixture is missing from the checkout")
    return TINY_MODELS


@pytest.fixture
def models_copy(tiny_models: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny models, for tests that damage or remove files."""
    target = tmp_path / "models"
    shutil.copytree(tiny_models, target)
    return target


@pytest.fixture(scope="session")
def portrait() -> Path:
    """A photo of one person, face to the camera."""
    return PORTRAIT


@pytest.fixture(scope="session")
def group_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two people side by side (the portrait's head and shoulders beside their mirror image), 640x320."""
    return write_group_photo(tmp_path_factory.mktemp("group") / "group.jpg")


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory, portrait: Path) -> Path:
    """A 640x480 clip: 60 frames of a moving face, then 6 frames of empty background."""
    from edge.video import write_test_video

    path = tmp_path_factory.mktemp("video") / "face.mp4"
    return write_test_video(path, portrait, frames=60, blank_frames=6)
