"""Check every converted variant against the Keras model on the validation images.

Each variant runs through ``edge.runtime.LookalikeModel``, the loader the device uses, so the
check covers the sidecar, the output map and the input quantization too, not just the numbers.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge.artifacts import VARIANT_TABLE, variant_info
from edge.ranking import top_k_accuracy
from edge.runtime import LookalikeModel

# Top-1 agreement with Keras below which a variant is flagged: the variant table's own value for the
# float variants (edge.artifacts.VARIANT_TABLE says why), --min-agreement for the quantized ones.
FLOAT_MIN_AGREEMENT = variant_info("float32").min_agreement
FLOAT16_MIN_AGREEMENT = variant_info("float16").min_agreement
DEFAULT_MIN_AGREEMENT = 0.97
TOP_K = 5


def thresholds(min_agreement: float) -> dict[str, float]:
    return {v.name: v.min_agreement if v.min_agreement is not None else min_agreement for v in VARIANT_TABLE}


@dataclass
class Outputs:
    probabilities: np.ndarray  # (N, C) float32
    embeddings: np.ndarray  # (N, D) float32
    seconds_per_image: float
    traits: np.ndarray | None = None  # (N, T) float32 trait probabilities, when the model reads traits


@dataclass
class VariantCheck:
    """One row of the conversion report."""

    variant: str
    file: str
    size_bytes: int
    top1: float
    top5: float
    agreement: float  # top-1 equal to Keras' top-1 (ties broken towards the lower class index)
    agreement_tie_aware: float  # Keras' top-1 is among the variant's equally top classes
    ties: int  # images whose highest probability is shared by two or more classes
    mean_abs_diff: float  # of the probabilities, over all images and classes
    max_abs_diff: float
    embedding_cosine_mean: float
    embedding_cosine_min: float
    gallery_agreement: float | None  # nearest gallery character equal to Keras' nearest
    ms_per_image: float
    min_agreement: float
    passed: bool
    # Face traits: share of (image, trait) decisions at the contract's thresholds equal to Keras',
    # and the largest probability difference (None without a trait output).
    trait_agreement: float | None = None
    trait_max_abs_diff: float | None = None
    # The device's adaptive classifier (edge.style_domain) over the validation pictures in a seeded
    # order, on this variant's embeddings: its top-1, and its agreement with the same on Keras'.
    adapted_top1: float | None = None
    adapted_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def keras_outputs(model, images: np.ndarray, batch_size: int = 32) -> Outputs:
    """The Keras model's outputs for uint8 model inputs, in batches (fast on CPU)."""
    start = time.perf_counter()
    parts: list[list[np.ndarray]] = [[] for _ in model.outputs]
    for first in range(0, len(images), batch_size):
        # predict_on_batch runs a compiled graph: about twice as fast as calling the model eagerly
        for part, value in zip(parts, model.predict_on_batch(images[first : first + batch_size].astype(np.float32))):
            part.append(np.asarray(value, dtype=np.float32))
    seconds = time.perf_counter() - start
    arrays = [np.concatenate(part) for part in parts]
    return Outputs(arrays[0], arrays[1], seconds / max(len(images), 1), arrays[2] if len(arrays) > 2 else None)


def adapted_answers(head, embeddings: np.ndarray, seed: int) -> np.ndarray:
    """Top-1 of the device's adaptive classifier (``edge.style_domain``, the device's code) for each
    row of ``embeddings`` (the model's raw embedding output), met in a seeded random order, each
    answered before it is counted."""
    from edge.style_domain import adapted_probabilities

    return np.argmax(adapted_probabilities(head, embeddings, seed)[0], axis=1)


def noisy_copies(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Every pixel moved by -1, 0 or +1 level (seeded), clipped to 0..255."""
    rng = np.random.default_rng(seed)
    return np.clip(images.astype(np.int16) + rng.integers(-1, 2, images.shape), 0, 255).astype(np.uint8)


def noise_agreement(model, images: np.ndarray, reference: Outputs, seed: int = 0, head=None) -> tuple[float, float | None]:
    """Top-1 agreement of the Keras model with itself when every pixel moves by -1, 0 or +1 level.

    The yardstick for the agreement numbers. Quantization perturbs the activations much as a
    little input noise does, and on flat, synthetic drawings with a low-margin classifier this
    invisible noise alone flips 11-22% of top-1 answers (measured on the emoji models): a variant
    below the threshold but near this number is as faithful as the model's own stability allows.
    """
    noisy = keras_outputs(model, noisy_copies(images, seed))
    plain = float(np.mean(np.argmax(noisy.probabilities, axis=1) == np.argmax(reference.probabilities, axis=1)))
    if head is None:
        return plain, None
    adapted = float(np.mean(adapted_answers(head, noisy.embeddings, seed) == adapted_answers(head, reference.embeddings, seed)))
    return plain, adapted


def tflite_outputs(path: Path, images: np.ndarray, num_threads: int = 2, progress: Callable[[int], None] | None = None) -> Outputs:
    """Run one variant image by image through the device's loader."""
    model = LookalikeModel(path, num_threads=num_threads)
    model.predict(images[0])  # warm-up: first invoke allocates and packs weights
    probabilities = np.empty((len(images), model.contract.num_classes), dtype=np.float32)
    embeddings = np.empty((len(images), model.contract.embedding_dim), dtype=np.float32)
    traits = np.empty((len(images), len(model.contract.traits)), dtype=np.float32) if model.contract.has_traits else None
    start = time.perf_counter()
    for i, image in enumerate(images):
        prediction = model.predict(image)
        probabilities[i] = prediction.probabilities
        embeddings[i] = prediction.features  # as the model gave it: the adaptive classifier needs its scale
        if traits is not None:
            traits[i] = prediction.traits
        if progress and (i + 1) % 100 == 0:
            progress(i + 1)
    seconds = time.perf_counter() - start
    return Outputs(probabilities, embeddings, seconds / max(len(images), 1), traits)


def trait_agreement(outputs: Outputs, reference: Outputs, thresholds) -> tuple[float | None, float | None]:
    """(share of trait decisions equal to the reference's, largest probability difference)."""
    if outputs.traits is None or reference.traits is None:
        return None, None
    limits = np.asarray(thresholds, dtype=np.float32)
    same = (outputs.traits >= limits) == (reference.traits >= limits)
    return float(same.mean()), float(np.abs(outputs.traits - reference.traits).max())


def tied_top(probabilities: np.ndarray) -> np.ndarray:
    """(N, C) bool: classes equal to the row's highest probability."""
    return probabilities == probabilities.max(axis=1, keepdims=True)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)


def nearest_gallery(embeddings: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    return np.argmax(embeddings @ gallery.T, axis=1)


def compare(
    variant: str,
    path: Path,
    outputs: Outputs,
    reference: Outputs,
    targets: np.ndarray,
    min_agreement: float,
    gallery: np.ndarray | None = None,
    trait_thresholds=(),
    head=None,
    seed: int = 0,
) -> VariantCheck:
    probs, ref = outputs.probabilities, reference.probabilities
    keras_top1 = np.argmax(ref, axis=1)
    top = tied_top(probs)
    diff = np.abs(probs - ref)
    cos = cosine(outputs.embeddings, reference.embeddings)
    agreement = float(np.mean(np.argmax(probs, axis=1) == keras_top1))
    gallery_agreement = None
    if gallery is not None:
        gallery_agreement = float(
            np.mean(nearest_gallery(outputs.embeddings, gallery) == nearest_gallery(reference.embeddings, gallery))
        )
    traits_same, traits_diff = trait_agreement(outputs, reference, trait_thresholds)
    adapted_top1 = adapted_agreement = None
    if head is not None:
        answers = adapted_answers(head, outputs.embeddings, seed)
        adapted_top1 = float(np.mean(answers == targets))
        adapted_agreement = float(np.mean(answers == adapted_answers(head, reference.embeddings, seed)))
    return VariantCheck(
        variant=variant,
        file=path.name,
        size_bytes=path.stat().st_size,
        top1=top_k_accuracy(probs, targets, 1),
        top5=top_k_accuracy(probs, targets, TOP_K),
        agreement=agreement,
        agreement_tie_aware=float(np.mean(top[np.arange(len(top)), keras_top1])),
        ties=int(np.sum(top.sum(axis=1) > 1)),
        mean_abs_diff=float(diff.mean()),
        max_abs_diff=float(diff.max()),
        embedding_cosine_mean=float(cos.mean()),
        embedding_cosine_min=float(cos.min()),
        gallery_agreement=gallery_agreement,
        ms_per_image=outputs.seconds_per_image * 1000.0,
        min_agreement=min_agreement,
        passed=agreement >= min_agreement,
        trait_agreement=traits_same,
        trait_max_abs_diff=traits_diff,
        adapted_top1=adapted_top1,
        adapted_agreement=adapted_agreement,
    )


def format_size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


def format_table(keras_row: dict, checks: Sequence[VariantCheck]) -> str:
    """A plain-text table: one row for Keras, one per variant, flagged rows marked."""
    header = f"{'variant':<9} {'size':>9} {'top-1':>6} {'top-5':>6} {'agree':>6} {'ties':>5} {'mean|dp|':>9} {'max|dp|':>8} {'emb cos':>7} {'ms/img':>7}  status"
    lines = [header, "-" * len(header)]
    lines.append(
        f"{'keras':<9} {format_size(keras_row['size_bytes']):>9} {keras_row['top1']:>6.1%} {keras_row['top5']:>6.1%} "
        f"{keras_row['noise_agreement']:>6.1%} {'':>5} {'':>9} {'':>8} {'':>7} {keras_row['ms_per_image']:>7.1f}  "
        "reference (agree: with itself under +-1 pixel-level noise)"
        + (f"; adaptive classifier top-1 {keras_row['adapted_top1']:.1%}, {keras_row['adapted_noise_agreement']:.1%} under noise"
           if keras_row.get("adapted_top1") is not None else "")
    )
    for c in checks:
        status = "ok" if c.passed else f"FLAGGED: agreement below {c.min_agreement:.0%}"
        if c.trait_agreement is not None:
            status += f"; traits agree {c.trait_agreement:.1%}"
        if c.adapted_agreement is not None:
            status += f"; adaptive top-1 {c.adapted_top1:.1%}, agrees {c.adapted_agreement:.1%}"
        lines.append(
            f"{c.variant:<9} {format_size(c.size_bytes):>9} {c.top1:>6.1%} {c.top5:>6.1%} {c.agreement:>6.1%} "
            f"{c.ties:>5d} {c.mean_abs_diff:>9.5f} {c.max_abs_diff:>8.4f} {c.embedding_cosine_mean:>7.4f} "
            f"{c.ms_per_image:>7.1f}  {status}"
        )
    return "\n".join(lines)
