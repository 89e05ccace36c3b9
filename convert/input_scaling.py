"""Fold MobileNetV2's input scaling into its first convolution, for the int8 variant.

The model's first layer maps camera pixels p (0..255) to p / 127.5 - 1. In an integer graph that
is two ops (MUL, ADD) whose int8 outputs cannot hold every pixel: p / 127.5 - 1 lies halfway
between two steps of any int8 grid spanning [-1, 1], and the MUL's calibrated grid is coarser still.
Measured on the shipped model (openmoji validation style): the input the first convolution sees is
off by 0.50 pixel levels RMS, +0.45 on average (white backgrounds round the same way everywhere),
and that alone moves Keras' own top-1 on 1.6% of the pictures.

Folded, the uint8 pixels enter ``Conv1`` as they are: its kernel is multiplied by the scale and
the offset moves into ``bn_Conv1``'s moving mean (conv(s x + o) = s conv(x) + o sum(kernel) inside
the image). ``Conv1``'s 'same' padding added zeros of the *scaled* input, i.e. pixels of value
-o/s (127.5), so the folded graph pads with that value explicitly and convolves without padding;
the int8 graph stores the pad value as 127 or 128 (the only rounding left, on one border row and
column). In float the folded model computes the same function (checked in the tests).

Whatever comes before the scaling (the model's fixed 3x3 blur on the pixels) stays where it is: the
blurred pixels, still on the 0..255 scale, enter the padding and the folded ``Conv1``. Only the
scaling layer, the backbone and its first two layers are looked up by name; every other layer of
the model is reused as it is.
"""
from __future__ import annotations

import numpy as np

from convert import ConvertError

SCALING_LAYER = "mobilenet_scaling"
BACKBONE_LAYER = "backbone"
FIRST_CONV = "Conv1"
FIRST_NORM = "bn_Conv1"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) that Keras' 'same' padding adds along one axis of ``size``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def fold_input_scaling(model):
    """A new Keras model computing what ``model`` does, with the input scaling folded into ``Conv1``.

    ``model`` is left unchanged (its other layers are shared, unmodified). Raises ConvertError for a
    model without the layout ``train.model.build_model`` gives it.
    """
    import keras

    try:
        scaling = model.get_layer(SCALING_LAYER)
        backbone = model.get_layer(BACKBONE_LAYER)
        conv, norm = backbone.get_layer(FIRST_CONV), backbone.get_layer(FIRST_NORM)
    except ValueError as exc:
        raise ConvertError(f"cannot fold the input scaling into the first convolution: {exc}") from exc
    if conv.use_bias or conv.padding != "same" or conv.dilation_rate != (1, 1) or backbone.layers[1] is not conv:
        raise ConvertError(f"cannot fold the input scaling: {FIRST_CONV} is not the first layer, or not an unbiased 'same' convolution")
    scale, offset = float(scaling.scale), float(scaling.offset)
    (kernel,) = conv.get_weights()
    gamma, beta, mean, variance = norm.get_weights()
    size = int(model.input.shape[1])
    pads = [same_padding(size, k, s) for k, s in zip(conv.kernel_size, conv.strides)]

    folded_conv = keras.layers.Conv2D(
        conv.filters, conv.kernel_size, strides=conv.strides, padding="valid", use_bias=False, name=FIRST_CONV
    )
    folded_norm = keras.layers.BatchNormalization.from_config(norm.get_config())

    def replace(layer):
        return {FIRST_CONV: folded_conv, FIRST_NORM: folded_norm}.get(layer.name, layer)

    padded_size = (size + sum(pads[0]), size + sum(pads[1]))
    new_backbone = keras.models.clone_model(
        backbone, input_tensors=keras.Input((*padded_size, 3)), clone_function=replace
    )
    folded_conv.set_weights([kernel * scale])
    folded_norm.set_weights([gamma, beta, mean - offset * kernel.sum(axis=(0, 1, 2)), variance])

    pad_value = -offset / scale  # the pixel value that scales to 0
    paddings = [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]
    pixels = keras.Input(backbone.input.shape[1:], name="pixels")
    padded = keras.layers.Lambda(
        lambda x: keras.ops.pad(x, paddings, constant_values=pad_value), name="pad_as_scaled_zero"
    )(pixels)
    # The new backbone takes the pixels (unscaled) at the old one's input size; everything around it is
    # the model's own layers, re-called in the same graph, whatever the head behind the backbone is.
    folded_backbone = keras.Model(pixels, new_backbone(padded), name="padded_backbone")
    swaps = {SCALING_LAYER: keras.layers.Identity(name="scaling_folded_into_conv1"), BACKBONE_LAYER: folded_backbone}
    folded = keras.models.clone_model(model, clone_function=lambda layer: swaps.get(layer.name, layer))
    if len(folded.outputs) != len(model.outputs):
        raise ConvertError(f"cannot fold the input scaling: the model has {len(model.outputs)} outputs, the folded one {len(folded.outputs)}")
    return folded


def largest_output_difference(model, folded, images: np.ndarray) -> float:
    """Largest absolute difference between two models' outputs on ``images`` (uint8)."""
    batch = images.astype(np.float32)
    return max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(model.predict_on_batch(batch), folded.predict_on_batch(batch))
    )


FOLD_TOLERANCE = 1e-3  # the folded model's float32 rounding moves the outputs by about 1e-5


def checked_fold(model, images: np.ndarray):
    """``fold_input_scaling(model)``, checked against ``model`` on a few of ``images`` (uint8): the
    fold must not change what the model computes."""
    folded = fold_input_scaling(model)
    difference = largest_output_difference(model, folded, images[:4])
    if not difference <= FOLD_TOLERANCE:
        raise ConvertError(f"folding the input scaling changed the model's outputs by {difference:.2g}: "
                           "convert with --int8-input-scaling quantized, and report this")
    return folded
