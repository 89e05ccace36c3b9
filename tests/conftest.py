"""Shared test set-up. Imports nothing heavy: the device-only test run loads it too."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


import subprocess  # noqa: E402

import pytest  # noqa: E402

from shared_paths import ROOT, WEIGHTS, need  # noqa: E402

@pytest.fixture(autouse=True)
def private_state(tmp_path_factory, monkeypatch) -> Path:
    """Every test (and every command it starts) keeps device state and the detector cache in its own
    folders, never in the user's ~/.local/state or ~/.cache: a test's default detector is Haar unless
    it puts YuNet in its cache."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("LOOKALIKE_STATE", str(folder))
    monkeypatch.setenv("LOOKALIKE_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("LOOKALIKE_TOKEN", raising=False)
    monkeypatch.delenv("LOOKALIKE_DETECTOR", raising=False)
    return folder


# A quick real-weights training run, shared by the slow tests of every stage: small inputs and a
# couple of images per class keep it to seconds, yet it exercises the real backbone and pipeline.
QUICK_TRAIN_ARGS = ["--size", "96", "--max-per-class", "2", "--augment-copies", "1", "--epochs", "15"]


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory) -> Path:
    """A models/ folder written by `python -m train` with the real ImageNet weights (no convert)."""
    weights = need(WEIGHTS)
    out = tmp_path_factory.mktemp("trained") / "models"
    result = subprocess.run(
        [sys.executable, "-m", "train", "--models", str(out), "--weights", str(weights), *QUICK_TRAIN_ARGS],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"training failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return out


@pytest.fixture(scope="session")
def converted_models_dir(trained_models_dir: Path, tmp_path_factory) -> Path:
    """trained_models_dir copied and run through `python -m convert` (all four variants)."""
    import shutil

    out = tmp_path_factory.mktemp("converted") / "models"
    shutil.copytree(trained_models_dir, out)
    result = subprocess.run(
        [sys.executable, "-m", "convert", "--models", str(out), "--rep-size", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"conversion failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return out
