"""Activation ranges for the int8 variant: each tensor's range chosen for the least quantization error.

TFLite's calibrator records each activation's minimum and maximum over the representative images,
and the quantizer spreads 256 int8 levels over that range. A few extreme values then set the step
for all the others: MobileNetV2's residual stream (the ``project`` convolutions and the adds after
them, which have no ReLU6 to bound them) spans about -20..+26 on this project's models, while
almost all of its values are within a few units of zero, so each value is rounded in steps of 0.18.

``tighten`` replaces each such range by the one that minimises the mean squared error of
quantizing that tensor, rounding and clipping together, on the same representative images. The
ImageNet MobileNetV2 weights happen to lie on a per-channel int8 grid already (checked to 1e-5 on
every backbone kernel), so the int8 variant's remaining error is almost all activation rounding,
which is what this reduces. What it gained on each held-out style: README "The int8 variant".

The search is on a histogram of each tensor (values sampled from every representative image): the
range is shrunk towards zero by a common factor, then each end alone, a few times over. The model
input (uint8 camera pixels, which must keep scale 1 and zero point 0) and the model outputs keep
the calibrator's ranges.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convert import tf_private
from convert.interpreters import every_tensor_interpreter, invoke_each

BINS = 8192  # histogram bins over the calibrated range: a tenth of an int8 step even at a 0.1 factor
SAMPLES_PER_IMAGE = 4096  # values taken from each tensor per image (all of them for smaller tensors)
FACTORS = np.linspace(1.0, 0.1, 91)  # candidate fractions of the calibrated end, searched for each end
LEVELS = 256


@dataclass(frozen=True)
class Tightened:
    """One tensor's range: as calibrated and as chosen, with the quantization MSE of each."""

    name: str
    calibrated: tuple[float, float]
    chosen: tuple[float, float]
    mse_calibrated: float
    mse_chosen: float


def quantization_mse(centres: np.ndarray, counts: np.ndarray, low: float, high: float) -> float:
    """Mean squared error of int8-quantizing values (histogram ``centres`` weighted by ``counts``)
    over [low, high], as TFLite's asymmetric int8 does: the range is widened to include zero, the
    zero point is a whole level, values outside are clipped to the end levels."""
    low, high = min(low, 0.0), max(high, 0.0)
    total = counts.sum()
    if high - low <= 0 or total == 0:
        return 0.0
    scale = (high - low) / (LEVELS - 1)
    zero_point = np.clip(np.round(-128 - low / scale), -128, 127)
    levels = np.clip(np.round(centres / scale) + zero_point, -128, 127)
    return float(np.sum(counts * ((levels - zero_point) * scale - centres) ** 2) / total)


def best_range(centres: np.ndarray, counts: np.ndarray, low: float, high: float, rounds: int = 3) -> tuple[float, float]:
    """The [low', high'] inside [low, high] (each end a fraction of the calibrated one) with the
    least quantization MSE: a common factor first, then each end alone, ``rounds`` times."""
    def mse(a: float, b: float) -> float:
        return quantization_mse(centres, counts, a, b)

    common = min(FACTORS, key=lambda f: mse(low * f, high * f))
    best = (low * common, high * common)
    for _ in range(rounds):
        best = (low * min(FACTORS, key=lambda f: mse(low * f, best[1])), best[1])
        best = (best[0], high * min(FACTORS, key=lambda f: mse(best[0], high * f)))
    return best if mse(*best) <= mse(low, high) else (low, high)


def ranged_tensors(model) -> dict[int, tuple[float, float]]:
    """Tensor index -> calibrated (min, max) of every activation the calibrator gave one range
    (not constants, not the model's inputs and outputs)."""
    graph = model.subgraphs[0]
    ends = set(np.atleast_1d(graph.inputs).tolist()) | set(np.atleast_1d(graph.outputs).tolist())
    found: dict[int, tuple[float, float]] = {}
    for index, tensor in enumerate(graph.tensors):
        q = tensor.quantization
        if index in ends or q is None or q.min is None or q.max is None or model.buffers[tensor.buffer].data is not None:
            continue
        low, high = np.atleast_1d(q.min), np.atleast_1d(q.max)
        if len(low) == 1 and len(high) == 1 and high[0] > low[0]:
            found[index] = (float(low[0]), float(high[0]))
    return found


def histograms(calibrated: bytes, images: np.ndarray, ranges: dict[int, tuple[float, float]], seed: int = 0) -> dict[int, np.ndarray]:
    """Counts of each ranged tensor's values over its calibrated range, from every image (float
    model run with every intermediate tensor kept; at most SAMPLES_PER_IMAGE values an image)."""
    interpreter = every_tensor_interpreter(calibrated)
    rng = np.random.default_rng(seed)
    counts = {index: np.zeros(BINS, np.int64) for index in ranges}
    for _ in invoke_each(interpreter, images):
        for index, (low, high) in ranges.items():
            values = interpreter.get_tensor(index).ravel()
            if values.size > SAMPLES_PER_IMAGE:
                values = values[rng.integers(0, values.size, SAMPLES_PER_IMAGE)]
            counts[index] += np.histogram(np.clip(values, low, high), bins=BINS, range=(low, high))[0]
    return counts


def tighten(calibrated: bytes, images: np.ndarray, seed: int = 0) -> tuple[bytes, list[Tightened]]:
    """The calibrated model with each activation's range replaced by its least-MSE one (see the
    module docstring), and what changed for each tensor."""
    model = tf_private.read_flatbuffer(calibrated)
    ranges = ranged_tensors(model)
    counts = histograms(calibrated, images, ranges, seed)
    graph = model.subgraphs[0]
    changes: list[Tightened] = []
    for index, (low, high) in ranges.items():
        edges = np.linspace(low, high, BINS + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        chosen = best_range(centres, counts[index], low, high)
        quantization = graph.tensors[index].quantization
        quantization.min = np.array([chosen[0]], np.float32)
        quantization.max = np.array([chosen[1]], np.float32)
        changes.append(Tightened(
            tf_private.tensor_name(graph.tensors[index]), (low, high), chosen,
            quantization_mse(centres, counts[index], low, high), quantization_mse(centres, counts[index], *chosen),
        ))
    return tf_private.write_flatbuffer(model), changes
