"""Which character does a face look like: classifier scores and a gallery match, side by side.

The model gives two views of a face: softmax ``probabilities`` over the characters it was trained
on, and an L2-normalised ``embedding``. ``gallery.npz`` (written by training, named by the
sidecar) holds one embedding per character; cosine similarity against it is the second view.

How gallery similarities become readable scores is meant to change (domain centring, temperature
calibration), so it lives in one place, ``GalleryScoring``, configured from the files, not from
code:
- ``gallery.npz`` arrays ``labels`` (G,) and ``embeddings`` (G, D) are required; optional
  ``character_mean`` (D,) and ``face_mean`` (D,) switch on centred cosine similarity (each side
  minus its domain's mean, renormalised), and an optional scalar ``temperature`` turns the
  similarities into a softmax distribution over the characters;
- the sidecar may hold ``"matching": {"method": ..., "temperature": ...}``, which wins over the
  gallery file (so a recalibration does not need new embeddings).

Scores are full vectors (one value per class) so that they can be averaged over frames before
ranking; ``rank`` turns them into (label, score 0..1) lists.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.runtime import ModelError, Prediction, sidecar_path

METHODS = ("auto", "classifier", "gallery")


@dataclass(frozen=True)
class Ranked:
    label: str
    score: float  # 0..1


@dataclass
class MatchScores:
    """Per-class scores for one face: classifier probabilities and (optionally) gallery scores."""

    classifier: np.ndarray  # (C,)
    gallery: np.ndarray | None = None  # (G,)

    def blend(self, newer: "MatchScores", weight: float) -> "MatchScores":
        """Exponential moving average: ``weight`` of the newer scores, the rest of these."""
        def mix(old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
            if old is None or new is None:
                return new
            return (1.0 - weight) * old + weight * new

        return MatchScores(mix(self.classifier, newer.classifier), mix(self.gallery, newer.gallery))


@dataclass
class Lookalike:
    """What the user sees for one face: the primary ranking and both views behind it."""

    top: list[Ranked]
    classifier: list[Ranked]
    gallery: list[Ranked]
    method: str  # which view ``top`` comes from

    @property
    def best(self) -> Ranked | None:
        return self.top[0] if self.top else None


@dataclass
class GalleryScoring:
    """Gallery embeddings prepared for scoring, with the optional calibration parameters."""

    labels: tuple[str, ...]
    embeddings: np.ndarray  # (G, D), unit rows (centred first when means are given)
    face_mean: np.ndarray | None = None
    temperature: float | None = None

    @property
    def centred(self) -> bool:
        return self.face_mean is not None

    @property
    def calibrated(self) -> bool:
        return self.temperature is not None

    @classmethod
    def build(
        cls,
        labels: tuple[str, ...],
        embeddings: np.ndarray,
        character_mean: np.ndarray | None = None,
        face_mean: np.ndarray | None = None,
        temperature: float | None = None,
    ) -> "GalleryScoring":
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if (character_mean is None) != (face_mean is None):
            raise ValueError("centring needs both character_mean and face_mean")
        if character_mean is not None:
            embeddings = embeddings - np.asarray(character_mean, dtype=np.float32)
            face_mean = np.asarray(face_mean, dtype=np.float32)
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        return cls(tuple(labels), _unit_rows(embeddings), face_mean, temperature)

    def similarities(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine similarity of one embedding with every character, in [-1, 1]."""
        query = np.asarray(embedding, dtype=np.float32)
        length = float(np.linalg.norm(query))
        if length > 0.0:
            query = query / length  # the face mean is a mean of unit embeddings: centre on the same sphere
        if self.face_mean is not None:
            query = query - self.face_mean
        norm = float(np.linalg.norm(query))
        if norm == 0.0:
            return np.zeros(len(self.labels), np.float32)
        return self.embeddings @ (query / norm)

    def scores(self, embedding: np.ndarray) -> np.ndarray:
        """Readable 0..1 scores: a softmax over the characters when calibrated (a temperature is
        given), else the cosine similarity mapped from [-1, 1] to [0, 1] (order kept: 0.5 is
        "unrelated", 1 "same direction")."""
        similarity = self.similarities(embedding)
        if self.temperature is not None:
            logits = similarity / self.temperature
            logits = logits - logits.max()
            weights = np.exp(logits)
            return (weights / weights.sum()).astype(np.float32)
        return ((similarity + 1.0) / 2.0).astype(np.float32)


class LookalikeMatcher:
    """Classifier probabilities + gallery scores -> ranked lookalikes."""

    def __init__(self, labels: tuple[str, ...], gallery: GalleryScoring | None = None, method: str = "auto"):
        if method not in METHODS:
            raise ValueError(f"matching method must be one of {', '.join(METHODS)}, got {method!r}")
        if method == "gallery" and gallery is None:
            raise ModelError("--match gallery needs gallery.npz beside the model: run 'make train' and 'make convert'")
        self.labels = tuple(labels)
        self.gallery = gallery
        self.method = method

    @property
    def primary(self) -> str:
        """Which view ranks the answer: a calibrated gallery when there is one, else the classifier."""
        if self.method != "auto":
            return self.method
        return "gallery" if self.gallery is not None and self.gallery.calibrated else "classifier"

    def score(self, prediction: Prediction) -> MatchScores:
        gallery = self.gallery.scores(prediction.embedding) if self.gallery is not None else None
        return MatchScores(np.asarray(prediction.probabilities, dtype=np.float32), gallery)

    def rank(self, scores: MatchScores, k: int = 3) -> Lookalike:
        classifier = _top_k(self.labels, scores.classifier, k)
        gallery = []
        if self.gallery is not None and scores.gallery is not None:
            gallery = _top_k(self.gallery.labels, scores.gallery, k)
        if self.primary == "gallery" and gallery:
            return Lookalike(gallery, classifier, gallery, "gallery")
        return Lookalike(classifier, classifier, gallery, "classifier")

    @classmethod
    def from_sidecar(cls, tflite_path: str | Path, sidecar: dict[str, Any], labels: tuple[str, ...],
                     embedding_dim: int, method: str = "auto") -> "LookalikeMatcher":
        """The matcher a converted model was shipped with: its gallery and matching parameters."""
        gallery = load_gallery(tflite_path, sidecar, embedding_dim)
        matching = sidecar.get("matching") or {}
        if gallery is not None and isinstance(matching, dict) and matching.get("temperature") is not None:
            gallery.temperature = _positive(matching["temperature"], sidecar_path(tflite_path))
        if method == "auto" and isinstance(matching, dict) and matching.get("method") in METHODS:
            method = matching["method"]
        return cls(labels, gallery, method)


def load_gallery(tflite_path: str | Path, sidecar: dict[str, Any], embedding_dim: int) -> GalleryScoring | None:
    """The gallery named by the sidecar, or None when the sidecar names none."""
    name = sidecar.get("gallery")
    if not name:
        return None
    path = sidecar_path(tflite_path).parent / str(name)
    if not path.is_file():
        raise ModelError(f"{path} (named by {sidecar_path(tflite_path).name}) is missing: copy it with the model, or run 'make train' and 'make convert'")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{path} is not a readable gallery ({exc}): run 'make train' and 'make convert' again") from exc
    try:
        labels = tuple(str(v) for v in arrays["labels"])
        embeddings = np.asarray(arrays["embeddings"], dtype=np.float32)
    except KeyError as exc:
        raise ModelError(f"{path} has no {exc.args[0]!r} array: run 'make train' again") from exc
    if embeddings.ndim != 2 or embeddings.shape != (len(labels), embedding_dim):
        raise ModelError(
            f"{path} holds embeddings of shape {embeddings.shape}, the model needs ({len(labels)}, {embedding_dim}): "
            "the gallery comes from another model, run 'make train' and 'make convert' again"
        )
    temperature = arrays.get("temperature")
    try:
        return GalleryScoring.build(
            labels,
            embeddings,
            _optional_vector(arrays, "character_mean", embedding_dim, path),
            _optional_vector(arrays, "face_mean", embedding_dim, path),
            None if temperature is None else _positive(float(np.asarray(temperature).reshape(-1)[0]), path),
        )
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}: run 'make train' again") from exc


def _optional_vector(arrays: dict, key: str, dim: int, path: Path) -> np.ndarray | None:
    value = arrays.get(key)
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float32).reshape(-1)
    if value.shape != (dim,):
        raise ModelError(f"{path}: {key} has {value.size} values, the model's embedding has {dim}: run 'make train' again")
    return value


def _positive(value: Any, path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise ModelError(f"{path}: temperature must be a positive number, got {value!r}: run 'make convert' again")
    return number


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def _top_k(labels: tuple[str, ...], scores: np.ndarray | None, k: int) -> list[Ranked]:
    if scores is None:
        return []
    order = np.argsort(-scores, kind="stable")[:k]
    return [Ranked(labels[i], float(np.clip(scores[i], 0.0, 1.0))) for i in order]
