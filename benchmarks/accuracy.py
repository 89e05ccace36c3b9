"""Accuracy numbers from predicted probabilities: top-1, top-5, per class, confusion, agreement."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edge.ranking import in_top_k
from edge.runtime import LookalikeModel

TOP_K = 5


@dataclass
class AccuracyResult:
    top1: float
    top5: float
    macro: float  # mean of the per-class accuracies over classes that have images
    per_class: dict[str, float | None]  # None: no image of that class in the data
    confusion: np.ndarray  # (C, C) counts, rows = true class, columns = predicted class
    predicted: np.ndarray  # (N,) top-1 class index of each image
    ties: int = 0  # images whose top probability is shared by several classes (argmax takes the first)

    def to_dict(self) -> dict[str, Any]:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "macro_per_class": self.macro,
            "per_class": self.per_class,
            "confusion": self.confusion.tolist(),
            "top1_ties": self.ties,
        }


def score(probabilities: np.ndarray, truth: np.ndarray, labels: tuple[str, ...]) -> AccuracyResult:
    """Accuracy of (N, C) probabilities against (N,) true class indices."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    truth = np.asarray(truth)
    classes = len(labels)
    predicted = probabilities.argmax(axis=1)
    # uint8 outputs move in steps of 1/256, so several classes can share the top probability.
    ties = int(((probabilities == probabilities.max(axis=1, keepdims=True)).sum(axis=1) > 1).sum())
    # Ties at the k-th place go to the lower class index, as everywhere (edge.ranking).
    in_top = in_top_k(probabilities, truth, TOP_K)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class: dict[str, float | None] = {}
    for i, label in enumerate(labels):
        count = int(confusion[i].sum())
        per_class[label] = float(confusion[i, i] / count) if count else None
    present = [v for v in per_class.values() if v is not None]
    return AccuracyResult(
        top1=float((predicted == truth).mean()),
        top5=float(in_top.mean()),
        macro=float(np.mean(present)) if present else float("nan"),
        per_class=per_class,
        confusion=confusion,
        predicted=predicted,
        ties=ties,
    )


def agreement(predicted: np.ndarray, reference_predicted: np.ndarray) -> float:
    """Share of images on which two models give the same top-1 class."""
    return float((np.asarray(predicted) == np.asarray(reference_predicted)).mean())


def predict_tflite(
    model: LookalikeModel, images: np.ndarray, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, C) probabilities, one image at a time as on the device."""
    out = np.empty((len(images), model.contract.num_classes), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = model.predict(image).probabilities
        if progress:
            progress(1)
    return out
