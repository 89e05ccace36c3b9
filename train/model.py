"""The lookalike model: MobileNetV2 features, domain standardisation, softmax over the characters.

Input: RGB pixels 0..255 (the fixed blur and the MobileNetV2 scaling are the first layers). Outputs, in order:
``probabilities`` (softmax over the classes) and ``embedding`` (the pooled backbone features,
standardised by the training styles' statistics (the prior; the device re-standardises, see
``edge.style_domain``) and divided by sqrt(D), so about unit length;
consumers L2-normalise it exactly, in float: an int8 L2 normalisation inside the model loses the
sum of squares to rounding).

Features are pooled from two places in MobileNetV2 and concatenated (``block_12_add``, 96 channels
at 1/16 resolution, and ``out_relu``, 1280 channels at 1/32; one backbone pass, D = 1376). The middle
of the network describes shapes, parts and colours, which carry across art styles; the last layer
adds what the top blocks learnt. Measured leave-one-style-out (``python -m train --protocol loso``,
the device-adapted mean top-1, with the blur below): 0.474 from ``block_12_add`` alone, 0.532 from
both; the shipped-prior figure 0.334 -> 0.407. Earlier, under the old protocol, ``out_relu`` alone gave
0.34 against 0.51 for ``block_12_add``: the last layer is worth having beside the middle, not instead
of it. It costs the last third of the backbone's multiply-adds.

Before the scaling, a fixed 3x3 Gaussian blur (``input_smoothing``, weights 1/4 1/2 1/4 along each
axis, not trained) smooths the pixels. 71% of an emoji's pixels are pure white, and +-1 level of
pixel noise there lit up texture channels of the backbone: a shift of several standardised units
along almost one direction. Measured by leave-one-style-out with five head seeds (before drawings
were cut to their figure): the share of answers unchanged under +-1 level noise rose from 0.86 to
0.96, top-1 unchanged within the seed spread (0.272 against 0.277).
"""
from __future__ import annotations

import math
import weakref

import keras
import numpy as np

from edge.contract import InputContract
from train import DEFAULT_FEATURE_LAYER
from train.weights import WeightsError

BACKBONE_NAME = "backbone"
LOGIT_SCALE = 10.0  # the head sees embedding * LOGIT_SCALE: a fixed temperature for a unit-scale input
SMOOTHING_LAYER = "input_smoothing"
# What smooths the pixels before the backbone; recorded with the trait head, which reads the same
# backbone and is refused when it was trained on pictures smoothed otherwise.
INPUT_SMOOTHING = "gaussian3"


def smoothing_kernel(name: str = INPUT_SMOOTHING) -> np.ndarray | None:
    """The (k, k) kernel of a named input smoothing; None for ``"none"``."""
    if name == "none":
        return None
    if name == "gaussian3":
        along = np.array([0.25, 0.5, 0.25], np.float32)
        return np.outer(along, along)
    raise ValueError(f"unknown input smoothing {name!r}")


def model_input(inputs, contract: InputContract, smoothing: str = INPUT_SMOOTHING):
    """Keras tensors: pixels 0..255 -> the fixed input smoothing -> MobileNetV2's scaling ([-1, 1])."""
    x = inputs
    kernel = smoothing_kernel(smoothing)
    if kernel is not None:
        channels = int(inputs.shape[-1])
        layer = keras.layers.DepthwiseConv2D(kernel.shape[0], padding="same", use_bias=False, trainable=False,
                                             name=SMOOTHING_LAYER)
        x = layer(x)
        layer.set_weights([np.repeat(kernel[:, :, None, None], channels, axis=2)])
    scale, offset = contract.model_scaling
    return keras.layers.Rescaling(scale, offset=offset, name="mobilenet_scaling")(x)


class FeatureLayerError(ValueError):
    """Feature layers that MobileNetV2 does not have, or a malformed list of them."""


def feature_layers(spec: str) -> list[str]:
    """The backbone layers the features are pooled from: "block_12_add+out_relu" -> both, in that order."""
    names = [name.strip() for name in spec.split("+")]
    if not all(names) or len(set(names)) != len(names):
        raise FeatureLayerError(f"feature layers {spec!r}: give distinct layer names joined by '+'")
    return names


def backbone_features(backbone, x) -> list:
    """Keras tensors: the backbone's outputs for ``x`` as a list (one per feature layer, then the trait
    tap when ``build_model`` added one: its callers unpack it)."""
    outputs = backbone(x, training=False)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def pool_features(maps: list):
    """Keras tensor: each feature map averaged over its positions, concatenated in order (layer ``pool``)."""
    if len(maps) == 1:
        return keras.layers.GlobalAveragePooling2D(name="pool")(maps[0])
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{i}")(m) for i, m in enumerate(maps)]
    return keras.layers.Concatenate(name="pool")(pooled)


def build_backbone(
    contract: InputContract, weights: str | None, alpha: float = 1.0, feature_layer: str = DEFAULT_FEATURE_LAYER
) -> keras.Model:
    """MobileNetV2 from its input to ``feature_layer`` (frozen); for layers joined by "+", one output per layer."""
    size = contract.input_size
    try:
        full = keras.applications.MobileNetV2(
            input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=weights, name="mobilenetv2"
        )
    except (OSError, ValueError) as exc:  # a download that fails, or a wrong weights file
        source = "download of the ImageNet weights" if weights == "imagenet" else f"weights {weights}"
        raise WeightsError(
            f"{source} failed ({str(exc).splitlines()[0][:160]}); on a machine without internet "
            "pass WEIGHTS=path/to/mobilenet_v2_1.0_224_no_top.weights.h5"
        ) from exc
    outputs = []
    for name in feature_layers(feature_layer):
        try:
            outputs.append(full.get_layer(name).output)
        except ValueError as exc:
            raise FeatureLayerError(f"MobileNetV2 has no layer {name!r} (--features)") from exc
    backbone = keras.Model(full.input, outputs if len(outputs) > 1 else outputs[0], name=BACKBONE_NAME)
    backbone.trainable = False
    return backbone


def build_model(
    contract: InputContract,
    weights: str | None = "imagenet",
    alpha: float = 1.0,
    feature_layer: str = DEFAULT_FEATURE_LAYER,
    dropout: float = 0.3,
    backbone: keras.Model | None = None,
    domain: tuple[np.ndarray, np.ndarray] | None = None,
    trait_head=None,
) -> keras.Model:
    """The full model. ``domain`` is the target domain's feature (mean, std), baked in as
    constants (identity when None); the head starts untrained and ``train.pipeline`` sets it.
    ``trait_head`` (a ``train.traits.TraitHead``) adds the third output ``traits``, read from a
    tensor inside the same backbone pass. ``weights=None`` gives random weights (tests)."""
    size = contract.input_size
    inputs = keras.Input((size, size, 3), name="image", dtype="float32")
    x = model_input(inputs, contract)
    backbone = backbone or build_backbone(contract, weights, alpha, feature_layer)
    tap = None
    if trait_head is not None:
        # One backbone with two outputs (its last layer, and the tensor the trait head reads): a second
        # model sharing the backbone's layers would not load back from a .keras file.
        from train.traits import tap_layer

        backbone = keras.Model(backbone.input, [*backbone.outputs, tap_layer(backbone, trait_head.feature_layer)],
                               name=BACKBONE_NAME)
        *maps, tap = backbone_features(backbone, x)
    else:
        maps = backbone_features(backbone, x)
    pooled = pool_features(maps)
    dim = int(pooled.shape[-1])
    mean, std = domain if domain is not None else (np.zeros(dim), np.ones(dim))
    standardised = keras.layers.Normalization(
        mean=np.asarray(mean, np.float32), variance=np.square(np.asarray(std, np.float32)), name="domain_standardisation"
    )(pooled)
    embedding = keras.layers.Rescaling(1.0 / math.sqrt(dim), name="embedding")(standardised)
    dropped = keras.layers.Dropout(dropout, name="dropout")(embedding)
    probabilities = keras.layers.Dense(contract.num_classes, activation="softmax", name="probabilities")(dropped)
    outputs = [probabilities, embedding]
    if trait_head is not None:
        from train.traits import trait_branch

        outputs.append(trait_branch(tap, trait_head))
    return keras.Model(inputs, outputs, name="lookalike")


_GRAPH_CALLS: "weakref.WeakKeyDictionary[keras.Model, object]" = weakref.WeakKeyDictionary()


def batched_call(model: keras.Model, images: np.ndarray, batch: int) -> np.ndarray:
    """``model``'s (single) output for ``images``, ``batch`` at a time, run as one TensorFlow graph
    (traced once per model and kept): the training feature passes spend most of ``make train`` here,
    and a graph runs MobileNetV2 in 40 ms a picture against 71 ms called eagerly (2-core VM, batch
    32, the same features to 1e-5)."""
    import tensorflow as tf

    run = _GRAPH_CALLS.get(model)
    if run is None:
        weak = weakref.ref(model)  # the cached graph must not keep its model (the cache's key) alive
        run = _GRAPH_CALLS[model] = tf.function(lambda x: weak()(x, training=False), reduce_retracing=True)
    out = [np.asarray(run(images[start : start + batch].astype(np.float32))) for start in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, *model.output.shape[1:]), np.float32)


def embedding_dim(model: keras.Model) -> int:
    return int(model.get_layer("embedding").output.shape[-1])


def classifier_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's last layer as ``gallery.npz`` ships it for the device's adaptive classifier
    (``edge.style_domain.ClassifierHead``): ``head_kernel`` (D, C), the logit scale folded in, and ``head_bias`` (C,)."""
    kernel, bias = model.get_layer("probabilities").get_weights()
    return {"head_kernel": np.asarray(kernel, np.float32), "head_bias": np.asarray(bias, np.float32)}
