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

from shared_paths import CELEBA, ROOT, WEIGHTS, need  # noqa: E402

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


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """What make train writes, for a tiny random-weight model (tests/fixtures/make_tiny_models.py),
    built once per session (read-only: copy it before changing anything)."""
    from fixtures.make_tiny_models import write_tiny_source  # TensorFlow: only the workstation tests ask

    folder = tmp_path_factory.mktemp("tiny_source") / "models"
    write_tiny_source(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_converted(tiny_source: Path, tmp_path_factory):
    """The tiny model converted to all four variants and checked, once per session: (folder, result)."""
    import shutil

    from convert.pipeline import ConvertConfig, run

    folder = Path(shutil.copytree(tiny_source, tmp_path_factory.mktemp("tiny_converted") / "models"))
    return folder, run(ConvertConfig(models_dir=folder, rep_size=30), on_table=lambda _: None)


# One quick real-weights model serves the slow tests of every stage (training, conversion, parity,
# the face traits): small inputs and a couple of images per class keep it to seconds, yet it runs the
# real backbone, a face-trait head built from labelled faces, and the whole pipeline.
QUICK_TRAIN_ARGS = ["--size", "96", "--max-per-class", "2", "--augment-copies", "1", "--epochs", "15"]
QUICK_FACES = "40"  # labelled faces per split for the head, and test faces for convert's trait check


def run_python(args: list[str], what: str) -> None:
    """A command of the session's quick model. Session fixtures come before ``private_state``, so the
    command gets its own empty cache and state here (Haar, whatever this machine has cached)."""
    import os
    import tempfile

    private = Path(tempfile.mkdtemp(prefix="session-"))
    env = {k: v for k, v in os.environ.items() if k not in ("LOOKALIKE_DETECTOR", "LOOKALIKE_TOKEN")}
    env.update(LOOKALIKE_CACHE=str(private / "cache"), LOOKALIKE_STATE=str(private / "state"))
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="session")
def trait_head_file(tmp_path_factory) -> Path:
    """make traits in small: a head for the 96 px backbone from 40 labelled faces per split."""
    weights, faces = need(WEIGHTS), need(CELEBA)
    head = tmp_path_factory.mktemp("head") / "trait_head.npz"
    run_python(["-m", "train.traits", "--faces", str(faces), "--out", str(head), "--weights", str(weights),
                "--size", "96", "--max-per-split", QUICK_FACES], "building the trait head")
    return head


@pytest.fixture(scope="session")
def trained_models_dir(trait_head_file: Path, tmp_path_factory) -> Path:
    """A models/ folder written by `python -m train` with the real ImageNet weights and that head (no convert)."""
    out = tmp_path_factory.mktemp("trained") / "models"
    run_python(["-m", "train", "--models", str(out), "--weights", str(need(WEIGHTS)), "--traits", str(trait_head_file),
                *QUICK_TRAIN_ARGS], "training")
    return out


@pytest.fixture(scope="session")
def converted_models_dir(trained_models_dir: Path, tmp_path_factory) -> Path:
    """trained_models_dir copied and run through `python -m convert` (all four variants, traits checked
    on labelled test faces)."""
    import shutil

    out = tmp_path_factory.mktemp("converted") / "models"
    shutil.copytree(trained_models_dir, out)
    run_python(["-m", "convert", "--models", str(out), "--rep-size", "60", "--faces", str(need(CELEBA)),
                "--max-faces", QUICK_FACES], "conversion")
    return out
