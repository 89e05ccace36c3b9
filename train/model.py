"""The lookalike model: MobileNetV2 backbone, pooled embedding, softmax over the characters.

Input: RGB pixels 0..255 (the MobileNetV2 scaling is the first layer). Outputs, in order:
``probabilities`` (softmax over the classes) and ``embedding`` (L2-normalised pooled features).
"""
from __future__ import annotations

import os
from pathlib import Path

import keras

from edge.contract import InputContract

BACKBONE_NAME = "backbone"
WEIGHTS_ENV = "LOOKALIKE_WEIGHTS"


class WeightsError(RuntimeError):
    """The pretrained weights could not be loaded (missing file, no network)."""


def resolve_weights(weights: str | None) -> str | None:
    """``imagenet`` (download), a local ``.h5`` path, or None for random weights.

    An explicit argument wins; otherwise the LOOKALIKE_WEIGHTS environment variable; otherwise
    ``imagenet``.
    """
    if weights is None:
        weights = os.environ.get(WEIGHTS_ENV) or "imagenet"
    if weights in ("imagenet", "none", "random"):
        return None if weights != "imagenet" else "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist (pass WEIGHTS=path/to/"
            "mobilenet_v2_1.0_224_no_top.weights.h5, or omit it to download ImageNet weights)"
        )
    return str(path)


def build_backbone(contract: InputContract, weights: str | None, alpha: float = 1.0) -> keras.Model:
    size = contract.input_size
    try:
        return keras.applications.MobileNetV2(
            input_shape=(size, size, 3),
            alpha=alpha,
            include_top=False,
            weights=weights,
            name=BACKBONE_NAME,
        )
    except (OSError, ValueError) as exc:  # a download that fails, or a wrong weights file
        source = "download of the ImageNet weights" if weights == "imagenet" else f"weights {weights}"
        raise WeightsError(
            f"{source} failed ({str(exc).splitlines()[0][:160]}); on a machine without internet "
            "pass WEIGHTS=path/to/mobilenet_v2_1.0_224_no_top.weights.h5"
        ) from exc


def build_model(
    contract: InputContract,
    weights: str | None = "imagenet",
    alpha: float = 1.0,
    dropout: float = 0.2,
) -> keras.Model:
    """The full model with a frozen backbone; ``weights=None`` gives random weights (tests)."""
    size = contract.input_size
    inputs = keras.Input((size, size, 3), name="image", dtype="float32")
    scale, offset = contract.model_scaling
    x = keras.layers.Rescaling(scale, offset=offset, name="mobilenet_scaling")(inputs)
    backbone = build_backbone(contract, weights, alpha)
    backbone.trainable = False
    features = backbone(x, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    embedding = keras.layers.UnitNormalization(name="embedding")(pooled)
    dropped = keras.layers.Dropout(dropout, name="dropout")(pooled)
    probabilities = keras.layers.Dense(
        contract.num_classes, activation="softmax", name="probabilities"
    )(dropped)
    return keras.Model(inputs, [probabilities, embedding], name="lookalike")
