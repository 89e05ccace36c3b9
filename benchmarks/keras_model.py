"""The Keras float model, for the reference row. TensorFlow is imported lazily and only here.

On the device TensorFlow is absent: ``import_tensorflow`` returns None and the Keras row is
skipped with a note, the rest of the benchmark runs as usual.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

BATCH_SIZE = 32


def import_tensorflow() -> Any | None:
    """TensorFlow if it is installed (workstation), else None (device)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def load_keras_model(path: str | Path) -> Any:
    import keras

    return keras.models.load_model(str(path), compile=False)


def probabilities_index(model: Any, num_classes: int) -> int:
    """Which of the model's outputs is the softmax (by layer name, else by width)."""
    outputs = list(model.outputs)
    names = list(getattr(model, "output_names", None) or [])
    if "probabilities" in names:
        return names.index("probabilities")
    widths = [int(tensor.shape[-1]) for tensor in outputs]
    if num_classes in widths:
        return widths.index(num_classes)
    raise ValueError(f"the Keras model has no output with {num_classes} classes (outputs: {widths})")


def predict_keras(
    model: Any, images: np.ndarray, num_classes: int, progress: Callable[[int], None] | None = None
) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, C) probabilities, in batches (the float model's best case).

    The forward pass is traced once with ``tf.function``: eager calls re-dispatch every layer in
    Python and are several times slower, which would say nothing about the model.
    """
    tf = import_tensorflow()
    index = probabilities_index(model, num_classes)
    size = images.shape[1]
    signature = [tf.TensorSpec((None, size, size, 3), tf.float32)]
    forward = tf.function(lambda x: model(x, training=False)[index], input_signature=signature)
    out = np.empty((len(images), num_classes), dtype=np.float32)
    for start in range(0, len(images), BATCH_SIZE):
        batch = images[start : start + BATCH_SIZE].astype(np.float32)
        out[start : start + len(batch)] = forward(tf.constant(batch)).numpy()
        if progress:
            progress(len(batch))
    return out


def single_image_runner(model: Any, image: np.ndarray) -> Callable[[], None]:
    """One image through a traced ``tf.function``: what serving a Keras model on a CPU costs.

    Eager calls would add Python dispatch per layer and make Keras look slower than it needs to be.
    """
    tf = import_tensorflow()
    size = image.shape[0]
    signature = [tf.TensorSpec((1, size, size, 3), tf.float32)]
    forward = tf.function(lambda x: model(x, training=False), input_signature=signature)
    batch = image[None].astype(np.float32)

    def run() -> None:
        outputs = forward(tf.constant(batch))
        for tensor in outputs:
            tensor.numpy()

    return run


def set_threads(threads: int) -> None:
    """Limit TensorFlow to ``threads`` cores; must run before the first op in the process."""
    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
