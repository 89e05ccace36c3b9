"""Small helpers shared by the device-side tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.cli import main
from edge.face_traits import FACE_TRAITS
from edge.matcher import GalleryScoring, LookalikeMatcher, PictureSet
from edge.pipeline import STAGES
from edge.runtime import Prediction
from edge.traits import TERM_NAMES, trait_vector


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``python -m edge`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code: int, stderr: str) -> str:
    """Assert a command failed with exit status 1 and one ``error: ...`` line on stderr; that line."""
    assert code == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def check_record(record: dict, labels: tuple[str, ...], size: tuple[int, int] | None = None) -> None:
    """Assert one JSON line has the documented shape (it says nothing about how many faces: the
    callers say that, since a detector that finds none would pass a shape check)."""
    assert set(record) >= {"source", "faces", "ms"}
    assert isinstance(record["source"], (int, str))
    assert set(record["ms"]) >= set(STAGES) | {"total"}
    assert all(value >= 0 for value in record["ms"].values())
    for face in record["faces"]:
        x, y, w, h = face["box"]
        assert all(isinstance(v, int) for v in face["box"]) and w > 0 and h > 0
        if size is not None:
            assert 0 <= x and 0 <= y and x + w <= size[0] + 1 and y + h <= size[1] + 1
        for key in ("top", "classifier"):
            rows = face[key]
            assert 1 <= len(rows) <= 3
            assert all(row["label"] in labels and 0.0 <= row["score"] <= 1.0 for row in rows)
            assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
        assert face["method"] in ("classifier", "gallery")


def leftovers(folder: Path) -> list[str]:
    """Temporary files a run should not leave behind."""
    return sorted(p.name for p in Path(folder).iterdir() if ".partial" in p.name)


# ---------------------------------------------------------------- a three-character trait match

LABELS = ("plain", "specs", "bearded")
DIM = 4


def person(**probabilities: float) -> np.ndarray:
    """Trait probabilities in FACE_TRAITS order; unspecified traits 0.02 (absent), young 0.9."""
    values = {name: 0.02 for name in FACE_TRAITS} | {"young": 0.9, "male": 0.5} | probabilities
    return np.array([values[name] for name in FACE_TRAITS], np.float32)


def scoring(weights: float = 2.0) -> GalleryScoring:
    """Three characters equally similar to every face; pictures: specs (man, woman), bearded, plain."""
    embeddings = np.tile(np.eye(DIM, dtype=np.float32)[0], (3, 1))
    gallery = GalleryScoring.build(LABELS, embeddings, temperature=0.05)
    files = ("plain/a.png", "specs/man.png", "specs/woman.png", "bearded/a.png")
    owners = np.array([0, 1, 1, 2])
    traits = np.stack([trait_vector(()), trait_vector(("glasses", "male")), trait_vector(("glasses", "female")),
                       trait_vector(("beard", "mustache", "male"))])
    gallery.pictures = PictureSet(files, owners, 3, np.tile(np.eye(DIM, dtype=np.float32)[0], (4, 1)), traits)
    gallery.trait_weights = np.full(len(TERM_NAMES), weights, np.float32)
    return gallery


def matcher(weights: float = 2.0) -> LookalikeMatcher:
    return LookalikeMatcher(LABELS, scoring(weights), "gallery", FACE_TRAITS, (0.5,) * len(FACE_TRAITS))


def answer(m: LookalikeMatcher, traits: np.ndarray):
    prediction = Prediction(np.full(3, 1 / 3, np.float32), np.eye(DIM, dtype=np.float32)[0], traits)
    return m.rank(m.score(prediction))
