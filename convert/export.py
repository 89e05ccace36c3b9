"""Keras model -> TFLite bytes, one function per variant (the Ultralytics pattern).

Keras 3 with TF 2.21: the model is exported once to a SavedModel with an explicit serving
signature (``keras.export.ExportArchive``) that names both outputs, and each variant is converted
from it with ``TFLiteConverter.from_saved_model``. ``from_keras_model`` also works on this stack,
but it leaves the outputs named ``output_0``/``output_1`` in an order of the converter's choosing;
with named signature outputs the sidecar's output map is read off the file, never guessed.

The batch size is fixed at 1: that is how the device runs the model, and it keeps dynamic-shape
ops out of the graph. Everything here beyond TensorFlow's public API (the int8 recipe's calibrate-
only conversion and MLIR quantizer, the interpreter's op and signature listings) goes through
``convert.tf_private``, which says what each is for and which versions it was checked with.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from convert import ConvertError, bias_correction, float16_weights, ranges, tf_private
from edge.contract import OUTPUT_NAMES, InputContract
from edge.quiet import fds_redirected
from edge.runtime import interpreter_class

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"


class ConversionFailed(ConvertError):
    """The TFLite converter refused the model; the message carries the end of its log."""


@contextlib.contextmanager
def native_output_captured() -> Iterator[Callable[[], str]]:
    """Send the converter's C++ log (stdout and stderr file descriptors) to a temporary file.

    The converter prints hundreds of lines nobody needs when it works; when it fails, the caller
    asks for the tail of the log to put in the error message. The redirection itself is
    ``edge.quiet.fds_redirected``, the project's one owner of file-descriptor redirection.
    """
    with tempfile.TemporaryFile(mode="w+b") as log:

        def tail(lines: int = 3) -> str:
            log.seek(0)
            text = log.read().decode(errors="replace").strip().splitlines()
            interesting = [line for line in text if "error" in line.lower()] or text
            return " | ".join(interesting[-lines:])

        with fds_redirected(log, fds=(1, 2)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield tail


def export_saved_model(model, contract: InputContract, directory: Path) -> Path:
    """Write the model as a SavedModel whose serving signature returns named outputs."""
    import keras
    import tensorflow as tf

    size = contract.input_size
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image):
        return dict(zip(contract.outputs, model(image, training=False)))

    archive.add_endpoint(
        SIGNATURE_KEY, serve, input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name=INPUT_NAME)]
    )
    with native_output_captured() as log_tail:
        try:
            archive.write_out(str(directory), verbose=False)
        except Exception as exc:
            raise ConversionFailed(f"exporting the Keras model to a SavedModel failed: {exc} ({log_tail()})") from exc
    return Path(directory)


def saved_model_converter(saved_model: Path):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE_KEY])


def _run(converter, variant: str) -> bytes:
    with native_output_captured() as log_tail:
        try:
            return bytes(converter.convert())
        except Exception as exc:  # the converter raises ConverterError, RuntimeError, ValueError...
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConversionFailed(f"converting the {variant} variant failed: {message} ({log_tail()})") from exc


ACTIVATION_RANGE_MEANING = {
    "mse": "least quantization error on the representative images",
    "minmax": "minimum and maximum on the representative images",
}
ACTIVATION_RANGES = tuple(ACTIVATION_RANGE_MEANING)


@dataclass(frozen=True)
class Int8Recipe:
    """Which parts of the int8 variant stay float.

    Measured on the model ``make train`` built then (ImageNet MobileNetV2 1.0/224 up to block_12_add,
    per-domain standardised head; 758 validation images of the unseen openmoji style; Keras top-1
    45.5%), top-1 agreement with Keras / top-1: every op integer 54.7% / 35.4%; head float
    56.1% / 36.0%; head and the first four bottleneck blocks float (this default) 92.7% / 44.3%.
    ``python -m convert.quant_debug`` sweeps the blocks one at a time: the error starts in the
    narrow 16- and 24-channel tensors of ``expanded_conv`` .. ``block_3`` (112x112 and 56x56),
    whose channels' ranges differ too much for one per-tensor int8 scale; each later block adds
    little. Latency, 1 thread on the 2-core x86 dev machine, median: 3.4 ms every op integer,
    3.9 ms this default, 4.2 ms float32.

    On today's robust model (blurred input, two feature layers; README "The int8 variant"), openmoji
    agreement: every op integer 96.7%, head float 96.6%, the head and ``expanded_conv`` .. ``block_3``
    float 98.0%; at 1 thread on the same machine all three run within 2% of float32. ``Conv1`` is
    float too (and with it the blur and padding before it, ``float_node_names``), so the blurred pixels
    are not rounded to whole levels on their way in; what that gained on each held-out style: README
    "The int8 variant", which owns the measured numbers.
    """

    float_head: bool = True  # global pooling onwards (standardisation, scaling, classifier, softmax)
    float_layers: tuple[str, ...] = ("Conv1", "expanded_conv", "block_1", "block_2", "block_3")
    # The pixel scaling folded into the first convolution (``convert.input_scaling``), so uint8
    # pixels reach it unrounded. Measured with this default recipe (openmoji validation / held-out
    # twemoji+noto training pictures / CelebA test face crops, agreement with Keras): 93.1/98.0/92.9%
    # unfolded, 94.7/98.4/95.0% folded; every op integer: 54.1/88.7/85.7% -> 66.5/90.1/86.4%.
    fold_input_scaling: bool = True
    # Each activation's int8 range: "mse", the range with the least quantization error on the
    # representative images (``convert.ranges``); "minmax", the calibrator's minimum and maximum.
    activation_ranges: str = "mse"
    # With the head float: take the pooled features' mean int8 error (on the representative images)
    # out in the head's domain mean (``convert.bias_correction``).
    correct_bias: bool = True
    # With the head float: its weight matrices stored as float16, widened to float32 when the model
    # loads (``convert.float16_weights``).
    float16_head_weights: bool = True

    def __post_init__(self) -> None:
        if self.activation_ranges not in ACTIVATION_RANGES:
            raise ValueError(f"activation_ranges must be one of {ACTIVATION_RANGES}, not {self.activation_ranges!r}")

    @property
    def full_integer(self) -> bool:
        return not self.float_head and not self.float_layers

    def describe(self) -> dict[str, object]:
        common = {
            "input_scaling": "folded into the first convolution" if self.fold_input_scaling else "quantized",
            "activation_ranges": ACTIVATION_RANGE_MEANING[self.activation_ranges],
        }
        if self.full_integer:
            return {"mode": "full-integer", **common}
        bias = "corrected in the float head" if self.float_head and self.correct_bias else "not corrected"
        weights = "float16" if self.float_head and self.float16_head_weights else "float32"
        return {"mode": "mixed", "float_head": self.float_head, "float_layers": list(self.float_layers), **common,
                "pooled_feature_bias": bias, "head_weights": weights}


FULL_INTEGER = Int8Recipe(float_head=False, float_layers=())


@dataclass(frozen=True)
class Calibration:
    """What the variants that need data get: representative images (uint8) and the int8 recipe."""

    images: np.ndarray
    recipe: Int8Recipe = Int8Recipe()


@dataclass(frozen=True)
class Exported:
    """One variant's .tflite bytes, and what its recipe's corrections did (the conversion report's
    ``recipe_effects``; empty for a variant that has none)."""

    model_bytes: bytes
    effect: dict[str, object] = dataclasses.field(default_factory=dict)


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's calibration input: one float32 batch of one uint8 image at a time."""

    def generate():
        for image in images:
            yield [image[None].astype(np.float32)]

    return generate


def export_float32(saved_model: Path, calibration: Calibration | None = None) -> Exported:
    """Plain float32: the reference every other variant is compared with on the device."""
    return Exported(_run(saved_model_converter(saved_model), "float32"))


def export_float16(saved_model: Path, calibration: Calibration | None = None) -> Exported:
    """float16 weights (half the size); computed in float32 on CPUs, natively on GPU delegates."""
    import tensorflow as tf

    converter = saved_model_converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    return Exported(_run(converter, "float16"))


def export_dynamic(saved_model: Path, calibration: Calibration | None = None) -> Exported:
    """Dynamic-range: int8 weights, float activations quantized on the fly; no calibration data."""
    import tensorflow as tf

    converter = saved_model_converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return Exported(_run(converter, "dynamic"))


def int8_effect(tightened: Sequence[ranges.Tightened], correction: bias_correction.Correction | None,
                halved: tuple[int, int] = (0, 0)) -> dict[str, object]:
    """What the int8 recipe's corrections did: how the activation ranges moved (``convert.ranges``),
    the pooled features' mean error taken out (``convert.bias_correction``), and the head's weight
    matrices stored as float16 (``halved``: how many, bytes saved; ``convert.float16_weights``), when each ran."""
    effect: dict[str, object] = {}
    if tightened:
        width = [(t.chosen[1] - t.chosen[0]) / (t.calibrated[1] - t.calibrated[0]) for t in tightened]
        mse = [t.mse_chosen / t.mse_calibrated for t in tightened if t.mse_calibrated > 0]
        effect["activation_ranges"] = {
            "tensors": len(tightened),
            "narrowed": sum(t.chosen != t.calibrated for t in tightened),
            "median_width_ratio": round(float(np.median(width)), 4),
            "median_mse_ratio": round(float(np.median(mse)), 4) if mse else 1.0,
        }
    if correction is not None:
        effect["pooled_feature_bias"] = {k: round(v, 6) if isinstance(v, float) else v
                                         for k, v in dataclasses.asdict(correction).items()}
    if halved[0]:
        effect["float16_head_weights"] = {"matrices": halved[0], "bytes_saved": halved[1]}
    return effect


def export_int8(saved_model: Path, calibration: Calibration | None = None) -> Exported:
    """Integer model calibrated on the representative images; uint8 input.

    Input uint8, not int8: the model's input is camera pixels 0..255, and calibrated on images
    spanning exactly 0..255 the uint8 input gets scale 1.0 and zero point 0, so a uint8 camera crop
    is the quantized input as it is, with no arithmetic on the device (an int8 input would need
    every pixel shifted by -128 first). Inside, the model runs in int8 either way: the converter
    adds one cheap requantize op after the input.

    Outputs: with the default recipe the head is float, so both outputs are float32, off the
    1/256 grid of a uint8 softmax. Rounding the Keras probabilities to that grid alone ties 9 of
    758 top-1 answers for today's model (median top probability 0.40) and 43 of 758 for a flatter,
    label-smoothed head tried earlier (median 0.10). With the full-integer recipe both outputs
    are uint8, dequantized by the runtime from each output's scale and zero point.

    Each activation's range is the one with the least quantization error on the representative
    images (``convert.ranges``), unless the recipe asks for the calibrator's min/max; with the head
    float, the pooled features' mean error is taken out in the head (``convert.bias_correction``)
    and the head's weight matrices are stored as float16 (``convert.float16_weights``).
    """
    import tensorflow as tf

    if calibration is None or len(calibration.images) == 0:
        raise ConvertError("the int8 variant needs representative images to calibrate with")
    recipe = calibration.recipe
    if not recipe.full_integer or recipe.activation_ranges != "minmax":
        calibrated = calibrate(saved_model, calibration.images)
        tightened: list[ranges.Tightened] = []
        if recipe.activation_ranges == "mse":
            calibrated, tightened = ranges.tighten(calibrated, calibration.images)
        return quantize_as_recipe(calibrated, recipe, calibration.images, tightened)
    # Every op integer with the calibrator's ranges: the converter's public route, uint8 in and out.
    converter = saved_model_converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(calibration.images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return Exported(_run(converter, "int8"))


def quantize_as_recipe(calibrated: bytes, recipe: Int8Recipe, images: np.ndarray,
                       tightened: Sequence[ranges.Tightened] = ()) -> Exported:
    """A calibrated model (its ranges already chosen, ``tightened`` saying how) quantized the way the
    mixed recipe ships it: the pooled features' mean error taken out in the head and the head's
    weight matrices stored as float16, when the recipe asks (``images``: the representative ones)."""
    correction = None
    if recipe.float_head and recipe.correct_bias:
        quantized, correction = bias_correction.correct(calibrated, lambda model: quantize_calibrated(model, recipe), images)
    else:
        quantized = quantize_calibrated(calibrated, recipe)
    halved = (0, 0)
    if recipe.float_head and recipe.float16_head_weights:
        smaller, matrices = float16_weights.halve(quantized)
        quantized, halved = smaller, (matrices, len(quantized) - len(smaller))
    return Exported(quantized, int8_effect(tightened, correction, halved))


def calibrate(saved_model: Path, images: np.ndarray) -> bytes:
    """A float model carrying the value ranges seen on ``images`` (for quantizing several ways)."""
    import tensorflow as tf

    converter = saved_model_converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    tf_private.calibrate_only(converter)
    return _run(converter, "int8 (calibration)")


def quantize_calibrated(calibrated: bytes, recipe: Int8Recipe) -> bytes:
    """Quantize a calibrated model (uint8 input), keeping the recipe's parts float.

    TFLiteConverter has no public switch for keeping chosen ops float; this is the route TF's own
    QuantizationDebugger takes for its "denylisted" (kept float) nodes: a calibrate-only
    conversion, then the MLIR quantizer with a denylist of op output names (both private API,
    see ``convert.tf_private``).
    """
    import tensorflow as tf

    float_nodes = float_node_names(calibrated, recipe)
    with native_output_captured() as log_tail:
        try:
            return tf_private.mlir_quantize(calibrated, tf.uint8, tf.float32 if recipe.float_head else tf.uint8, float_nodes)
        except Exception as exc:
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConversionFailed(f"quantizing the int8 variant failed: {message} ({log_tail()})") from exc


def float_node_names(calibrated: bytes, recipe: Int8Recipe) -> list[str]:
    """Output tensor names of the ops the recipe keeps float, read from the calibrated model."""
    cls, _ = interpreter_class()
    interpreter = cls(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    ops = tf_private.ops_details(interpreter)  # no public API lists ops with their tensors
    chosen: list[str] = []
    if recipe.float_head:
        chosen += [names[i] for i in head_outputs(ops, interpreter)]
    for layer in recipe.float_layers:
        pattern = re.compile(rf"/{re.escape(layer)}_")
        found = [names[o["outputs"][0]] for o in ops if pattern.search(names[o["outputs"][0]].split(";")[0])]
        if not found:
            raise ConvertError(
                f"int8 recipe: the model has no layer named {layer!r} to keep float; "
                "pass --int8-float-layers with names from the backbone, or --int8-float-layers none"
            )
        chosen += found
    convolutions = [i for i, o in enumerate(ops) if o["op_name"] == "CONV_2D"]
    if convolutions and names[ops[convolutions[0]]["outputs"][0]] in chosen:
        # The first convolution float: what comes before it (the fixed blur, the padding) stays float
        # too, or the blurred pixels would be rounded to whole levels on the way in.
        chosen += [names[o["outputs"][0]] for o in ops[: convolutions[0]]]
    return sorted(set(chosen))


def head_outputs(ops: list[dict], interpreter) -> list[int]:
    """Output tensors of every global average pooling (one per feature layer) and every op that
    depends on them, and likewise for the trait head's grid pooling (its logistic units on 2,304
    features stay float too). A pooling left integer rounds the pooled features to an int8 grid
    (``out_relu``'s in steps of 0.04 on a model of this version)."""
    shapes = {t["index"]: tuple(t["shape"]) for t in interpreter.get_tensor_details()}
    pools = [o for o in ops if o["op_name"] == "MEAN" and len(shapes[o["inputs"][0]]) == 4 and len(shapes[o["outputs"][0]]) == 2]
    if not pools:
        raise ConvertError("int8 recipe: no global average pooling found to keep the head float after; use --int8-mode full")
    grids = [o for o in ops if o["op_name"] == "AVERAGE_POOL_2D"]
    downstream = {t for o in pools + grids for t in o["outputs"]}
    for op in ops:  # ops are listed in execution order, so one pass collects every descendant
        if any(i in downstream for i in op["inputs"]):
            downstream.update(op["outputs"])
    return sorted(downstream)


EXPORTERS: dict[str, Callable[[Path, Calibration | None], Exported]] = {
    "float32": export_float32,
    "float16": export_float16,
    "dynamic": export_dynamic,
    "int8": export_int8,
}


@dataclass(frozen=True)
class TFLiteLayout:
    """What the sidecar must say about a converted file's input and outputs."""

    outputs: dict[str, int]  # output name -> position in get_output_details()
    input: dict[str, object]  # dtype, scale, zero_point (None for float inputs)
    output_dtypes: dict[str, str]
    ops: int  # operators in the graph
    integer_ops: int  # of which compute on integer tensors


def inspect_tflite(model_bytes: bytes, contract: InputContract) -> TFLiteLayout:
    """Read the output map and input quantization from a converted model with the device's interpreter."""
    cls, _ = interpreter_class()
    interpreter = cls(model_content=model_bytes)
    details = interpreter.get_output_details()
    position = {int(d["index"]): i for i, d in enumerate(details)}
    outputs = outputs_by_signature(interpreter, position, contract.outputs) or _outputs_by_shape(details, contract)
    input_detail = interpreter.get_input_details()[0]
    dtype = np.dtype(input_detail["dtype"])
    scale, zero_point = input_detail["quantization"]
    quantized = np.issubdtype(dtype, np.integer)
    ops, integer_ops = _count_ops(interpreter)
    return TFLiteLayout(
        outputs=outputs,
        input={
            "dtype": dtype.name,
            "scale": float(scale) if quantized else None,
            "zero_point": int(zero_point) if quantized else None,
        },
        output_dtypes={name: np.dtype(details[i]["dtype"]).name for name, i in outputs.items()},
        ops=ops,
        integer_ops=integer_ops,
    )


def _count_ops(interpreter) -> tuple[int, int]:
    """(all ops, ops whose output is an integer tensor), ignoring the (de)quantize glue."""
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    try:
        ops = [o for o in tf_private.ops_details(interpreter) if o["op_name"] not in ("QUANTIZE", "DEQUANTIZE")]
    except AttributeError:  # an interpreter without the (private) op listing
        return 0, 0
    integer = [o for o in ops if o["outputs"] and np.issubdtype(dtypes[o["outputs"][0]], np.integer)]
    return len(ops), len(integer)


def outputs_by_signature(interpreter, position: dict[int, int], names=OUTPUT_NAMES) -> dict[str, int] | None:
    """The serving signature names each output tensor; map the names to output positions."""
    try:
        named = tf_private.signature_outputs(interpreter, SIGNATURE_KEY)  # public get_signature_list() omits indices
        return {name: position[named[name]] for name in names}
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _outputs_by_shape(details: list[dict], contract: InputContract) -> dict[str, int]:
    """Fallback: probabilities have C values, the embedding D (they differ for any real model)."""
    widths = [int(d["shape"][-1]) for d in details]
    if len(details) != 2 or contract.has_traits or contract.num_classes == contract.embedding_dim:
        raise ConvertError(f"cannot tell the converted model's outputs apart (widths {widths})")
    try:
        return {
            "probabilities": widths.index(contract.num_classes),
            "embedding": widths.index(contract.embedding_dim),
        }
    except ValueError as exc:
        raise ConvertError(f"converted model outputs {widths} match neither {contract.num_classes} classes nor a {contract.embedding_dim}-d embedding") from exc
