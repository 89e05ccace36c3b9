"""Which pretrained backbone weights a training uses, decided without importing TensorFlow (so that a
wrong path fails in a second, not after TensorFlow has loaded)."""
from __future__ import annotations

import os
from pathlib import Path

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
    if weights in ("none", "random"):
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist (pass WEIGHTS=path/to/"
            "mobilenet_v2_1.0_224_no_top.weights.h5, or omit it to download ImageNet weights)"
        )
    return str(path)
