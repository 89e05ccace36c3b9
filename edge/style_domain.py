"""Feature statistics the device learns from what it sees: an unseen art style (or camera) gets its own.

The model standardises its pooled features by the statistics it was shipped with: those of the
training styles together (the *prior*), since nothing is known yet about the style the device will
meet. Every art style shifts and stretches the features in its own way, so a device shown pictures
of one new style can do better by standardising them by that style's statistics. It cannot know
them in advance, so it estimates them as it goes (``StyleStatistics``):

- the estimate starts at the prior (mean 0 and spread 1, in the units of the model's standardised
  features) and the prior counts as ``PRIOR_PICTURES`` pictures;
- each picture is answered first, then counted (causal: a picture never standardises itself);
- a picture nearly identical to one of the last few counted (cosine >= ``SAME_PICTURE``) is not
  counted again, so a drawing held in front of the camera for a minute does not become the style;
- past ``MEMORY`` pictures the estimate becomes a moving average and keeps following the stream.

With the re-standardised embedding the device recomputes the classifier itself
(``ClassifierHead``: the model's last dense layer, shipped in ``gallery.npz`` as ``head_kernel`` and
``head_bias``); before the first counted picture its answer equals the model's own.

Measured with the same code by ``python -m train --protocol loso`` (the device-adapted column): each
style in turn unseen, the head trained on the other two.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# How many pictures the shipped prior weighs. Fixed before any measurement, not tuned: a style's own
# statistics take over after a few dozen pictures.
PRIOR_PICTURES = 30.0
MEMORY = 1000
SAME_PICTURE = 0.995  # cosine of two embeddings above which the second is the same picture again
RECENT = 8
# A floor under each channel's spread, as a share of the median spread: a channel that barely varies
# in the pictures seen so far would otherwise blow up (the same floor training puts under its statistics).
SPREAD_FLOOR = 0.25


def floored_spread(std: np.ndarray) -> np.ndarray:
    """Each channel's spread, but at least ``SPREAD_FLOOR`` of the median one: the one rule for
    training's statistics and the device's running estimate."""
    return np.maximum(std, SPREAD_FLOOR * float(np.median(std)) + 1e-6)


@dataclass
class StyleStatistics:
    """A running estimate of the standardised features' per-channel mean and spread.

    Works in ``z`` units: the model's ``embedding`` output times sqrt(D) (the pooled features
    standardised by the shipped prior), so the prior is mean 0, spread 1."""

    dim: int
    prior: float = PRIOR_PICTURES
    memory: int = MEMORY
    count: int = field(init=False, default=0)
    mean: np.ndarray = field(init=False)
    second: np.ndarray = field(init=False)  # running mean of z**2
    _recent: list = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not self.prior > 0:
            raise ValueError(f"the style prior must be positive, got {self.prior}")
        self.mean = np.zeros(self.dim, np.float64)
        self.second = np.ones(self.dim, np.float64)

    @property
    def spread(self) -> np.ndarray:
        return floored_spread(np.sqrt(np.maximum(self.second - np.square(self.mean), 0.0)))

    def standardise(self, z: np.ndarray) -> np.ndarray:
        """z (D,) or (N, D) standardised by the current estimate (the pictures counted so far)."""
        return ((np.asarray(z, np.float64) - self.mean) / self.spread).astype(np.float32)

    def restore(self, count: int, mean: np.ndarray, second: np.ndarray) -> None:
        """Continue from an estimate saved earlier (``edge.state``), or a ValueError saying why it
        cannot be one (and nothing changes). The recent pictures are not saved: the first picture
        after a restart is always counted."""
        mean = np.asarray(mean, np.float64)
        second = np.asarray(second, np.float64)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"a count of pictures must be a whole number >= 0, got {count!r}")
        if mean.shape != (self.dim,) or second.shape != (self.dim,):
            raise ValueError(f"a mean of shape {mean.shape} and a second moment of shape {second.shape}, "
                             f"these features have {self.dim} channels")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(second))):
            raise ValueError("the mean or the second moment holds values that are not finite")
        if np.any(second < 0):
            raise ValueError("the second moment (a mean of squares) has negative values")
        self.count = int(count)
        self.mean = mean.copy()
        self.second = second.copy()
        self._recent = []

    def observe(self, z: np.ndarray) -> bool:
        """Count one picture; False (and nothing changes) when it repeats one just counted."""
        z = np.asarray(z, np.float64).reshape(-1)
        if z.shape != (self.dim,) or not np.all(np.isfinite(z)):
            return False
        length = float(np.linalg.norm(z))
        unit = z / length if length > 0 else z
        if any(float(unit @ seen) >= SAME_PICTURE for seen in self._recent):
            return False
        self.count += 1
        weight = 1.0 / (self.prior + min(self.count, self.memory))
        self.mean += weight * (z - self.mean)
        self.second += weight * (np.square(z) - self.second)
        self._recent = (self._recent + [unit])[-RECENT:]
        return True


def causal_standardise(z: np.ndarray, prior: float = PRIOR_PICTURES, statistics: "StyleStatistics | None" = None) -> np.ndarray:
    """Each row of ``z`` (N, D) standardised by the estimate of the rows before it, as a device that
    answers each picture and then counts it (a simulation of the device with its own code).
    ``statistics``: the estimate to start from and leave updated (default: a new one from the prior)."""
    stats = statistics if statistics is not None else StyleStatistics(z.shape[1], prior)
    out = np.empty(z.shape, np.float32)
    for i, row in enumerate(z):
        out[i] = stats.standardise(row)
        stats.observe(row)
    return out


def adapted_probabilities(head: "ClassifierHead", embeddings: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """The adaptive classifier's probabilities (N, C) for ``embeddings`` (N, D, the model's embedding
    output as it came), the pictures met in a seeded random order, each answered before it is
    counted; and how many were counted. What training and conversion measure the device by."""
    embeddings = np.asarray(embeddings, np.float32)
    scale = float(np.sqrt(embeddings.shape[1]))
    order = np.random.default_rng(seed).permutation(len(embeddings))
    statistics = StyleStatistics(embeddings.shape[1])
    adapted = np.empty_like(embeddings)
    adapted[order] = causal_standardise(embeddings[order] * scale, statistics=statistics) / scale
    return head.probabilities(adapted), statistics.count


@dataclass(frozen=True)
class ClassifierHead:
    """The model's last layer: probabilities = softmax(embedding @ kernel + bias)."""

    kernel: np.ndarray  # (D, C)
    bias: np.ndarray  # (C,)

    def probabilities(self, embedding: np.ndarray) -> np.ndarray:
        logits = np.asarray(embedding, np.float32) @ self.kernel + self.bias
        logits = logits - logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class StyleAdaptation:
    """The classifier with statistics that follow the pictures seen."""

    head: ClassifierHead
    statistics: StyleStatistics

    @classmethod
    def start(cls, head: ClassifierHead, prior: float = PRIOR_PICTURES) -> "StyleAdaptation":
        return cls(head, StyleStatistics(head.kernel.shape[0], prior))

    @property
    def scale(self) -> float:
        return float(np.sqrt(self.statistics.dim))

    def embedding(self, embedding: np.ndarray) -> np.ndarray:
        """The model's embedding re-standardised by the current estimate (same units as the model's)."""
        return self.statistics.standardise(np.asarray(embedding, np.float32) * self.scale) / self.scale

    def probabilities(self, embedding: np.ndarray) -> np.ndarray:
        return self.head.probabilities(self.embedding(embedding))

    def observe(self, embedding: np.ndarray) -> bool:
        return self.statistics.observe(np.asarray(embedding, np.float32) * self.scale)
