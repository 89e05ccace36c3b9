"""Take the int8 variant's average error out of its pooled features, in its float head.

Rounding activations to int8 errs at random, but clipping them (``convert.ranges`` trims the rare
extreme values of each tensor) and rounding near a ReLU6's zero do not average out: after the
blocks and the global pooling, each pooled feature of the int8 model is off from the float model's
by an amount that is partly the same for every picture. The head that reads the pooled features
is float in the default recipe, and its first op subtracts the domain mean (the
``domain_standardisation`` layer of ``train.model``): ``correct`` measures each feature's mean
error on the representative images (the int8 model against the float calibrated one, the same
graph) and adds it to the mean that op subtracts, then quantizes again, so the float head starts
from the float model's average. What it gained on each held-out style: README "The int8 variant".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from convert import tf_private
from convert.interpreters import every_tensor_interpreter, invoke_each

# train.model's layer name (kept here, so converting needs no Keras import): the SUB whose constant
# is the domain mean. tests/test_convert.py builds the model with train.model and fails if they part.
STANDARDISATION = "domain_standardisation"


@dataclass(frozen=True)
class Correction:
    features: int  # pooled features corrected
    rms_shift: float  # RMS of the mean error taken out, in pooled-feature units
    rms_error_before: float  # RMS error of the pooled features on the representative images, before
    rms_error_after: float  # and after (what is left is the part that differs from picture to picture)


def standardisation_sub(model) -> tuple[int, int] | None:
    """(pooled-features tensor, domain-mean constant tensor) of the head's float SUB, or None when
    the model has none (no domain statistics, or a quantized head)."""
    schema = tf_private.flatbuffer_schema()
    graph = model.subgraphs[0]
    for op in graph.operators:
        if tf_private.builtin_operator(model, op) != schema.BuiltinOperator.SUB or len(op.inputs) != 2:
            continue
        if STANDARDISATION not in tf_private.tensor_name(graph.tensors[op.outputs[0]]):
            continue
        features, constant = (int(i) for i in op.inputs)
        tensor = graph.tensors[constant]
        if model.buffers[tensor.buffer].data is not None and tensor.type == schema.TensorType.FLOAT32 \
                and graph.tensors[features].type == schema.TensorType.FLOAT32:
            return features, constant
    return None


def pooled_features(model_bytes: bytes, tensor: int, images: np.ndarray) -> np.ndarray:
    """The values of ``tensor`` (the pooled features) for each image, with every tensor kept."""
    interpreter = every_tensor_interpreter(model_bytes)
    return np.stack([np.asarray(interpreter.get_tensor(tensor), np.float64).reshape(-1) for _ in invoke_each(interpreter, images)])


def correct(calibrated: bytes, quantize: Callable[[bytes], bytes], images: np.ndarray) -> tuple[bytes, Correction | None]:
    """``quantize(calibrated)``, corrected: quantized once to measure the pooled features' mean int8
    error on ``images`` against ``calibrated`` (the float model with the same graph), then again
    with the head's domain mean moved by it (the integer part comes out the same: nothing it was
    quantized from changed). Unchanged, with None, when the model has no float standardisation op."""
    first = quantize(calibrated)
    model = tf_private.read_flatbuffer(calibrated)
    found, found_quantized = standardisation_sub(model), standardisation_sub(tf_private.read_flatbuffer(first))
    if found is None or found_quantized is None:
        return first, None
    features, constant = found
    error = pooled_features(first, found_quantized[0], images) - pooled_features(calibrated, features, images)
    shift = error.mean(axis=0)
    tensor = model.subgraphs[0].tensors[constant]
    mean = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32)
    if mean.size != shift.size:
        return first, None
    # a buffer of its own: the old one may be shared with another constant
    tensor.buffer = tf_private.add_buffer(model, (mean + shift).astype(np.float32))
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    return quantize(tf_private.write_flatbuffer(model)), Correction(shift.size, rms(shift), rms(error), rms(error - shift))
