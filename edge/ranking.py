"""Ranking scores: the one owner of "which k are best" for every stage (NumPy only, no TensorFlow).

The device's top-k list (``edge.matcher.top_k``), the conversion check's top-1/top-5
(``convert.verify``), the benchmark's accuracy (``benchmarks.accuracy``), the trait-sense
benchmark (``benchmarks.labelled``), training's evaluation (``train.pipeline``) and the enrolment
hint (``edge.enroll``) all rank through ``top_k_indices``, so they agree on every input.

Tie rule: among equal scores the lower index ranks first (a stable sort of the negated scores),
the same choice as ``np.argmax``; so the first entry of a ranking is always the row's argmax.
Ties are common with uint8 outputs, which move in steps of 1/256. NaN scores rank last.
"""
from __future__ import annotations

import numpy as np


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores along the last axis, best first, ties to the lower index.

    ``scores`` is (C,) or (N, C); the result is (min(k, C),) or (N, min(k, C)). Integer scores
    (uint8 model outputs) are ranked by value, never wrapped by negation.
    """
    scores = np.asarray(scores)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k = min(int(k), scores.shape[-1])
    # float64 holds every float32 and every integer below 2**53 exactly: the order and the ties stay
    # those of the scores, and negating it cannot wrap around as an unsigned integer would.
    return np.argsort(-scores.astype(np.float64, copy=False), axis=-1, kind="stable")[..., :k]


def in_top_k(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: is each row's target among its ``k`` best (under the tie rule above)?"""
    best = top_k_indices(np.atleast_2d(scores), k)
    return (best == np.asarray(targets).reshape(-1, 1)).any(axis=1)


def top_k_accuracy(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of rows whose target is among their ``k`` best."""
    return float(np.mean(in_top_k(scores, targets, k)))
