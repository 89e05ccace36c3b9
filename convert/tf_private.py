"""Every private or experimental TensorFlow / TFLite API the conversion uses, in one place.

Checked with tensorflow-cpu 2.21.0 (the converter) and ai-edge-litert 2.3.0 (the interpreter; TF
2.21's ``tf.lite.Interpreter`` has the same two private methods). None of these is covered by
TensorFlow's compatibility promise: after an upgrade, this is the file to check, and
``tests/test_convert.py`` exercises each function (``test_private_tensorflow_api_is_still_there``
fails first, naming what went missing).

- ``calibrate_only``: ``TFLiteConverter._experimental_calibrate_only = True`` makes ``convert()``
  stop after calibration and return a float model carrying the value range of every tensor. The
  int8 recipe needs that intermediate to quantize with chosen ops kept float; TF's own
  ``QuantizationDebugger`` sets the same attribute.
- ``mlir_quantize``: ``tensorflow.lite.python.convert.mlir_quantize`` quantizes such a calibrated
  model with ``denylisted_nodes`` (op output names kept float). ``TFLiteConverter`` has no public
  switch for keeping chosen ops float; this is the route the ``QuantizationDebugger`` takes.
- ``ops_details``: ``Interpreter._get_ops_details()`` lists the ops in execution order with their
  input and output tensor indices (no public API does): the recipe finds the head and the layers to
  keep float with it, the report counts integer ops, ``convert.quant_debug`` lists the blocks.
- ``signature_outputs``: ``Interpreter._get_full_signature_list()`` gives each signature output's
  tensor index (the public ``get_signature_list()`` gives only names): the sidecar's output map is
  read off the file by name rather than guessed from shapes.
- ``read_flatbuffer`` / ``write_flatbuffer``: a TFLite model as TensorFlow's generated flatbuffer
  object API (``tensorflow.lite.python.schema_py_generated``, not public, ``flatbuffer_schema``) and
  back; the int8 recipe rewrites the calibrated activation ranges there (``convert.ranges``) before
  quantizing, and the float head's domain mean after (``convert.bias_correction``).
- ``quantization_debugger``: ``tf.lite.experimental.QuantizationDebugger`` (public but experimental)
  for ``python -m convert.quant_debug``'s per-layer error statistics.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

TENSORFLOW_CHECKED = "2.21.0"
LITERT_CHECKED = "2.3.0"


def calibrate_only(converter) -> None:
    """Make ``converter.convert()`` return the calibrated float model instead of a quantized one."""
    converter._experimental_calibrate_only = True  # pylint: disable=protected-access


def mlir_quantize(calibrated: bytes, input_type, output_type, float_nodes: Sequence[str] | None) -> bytes:
    """Quantize a calibrated model; ops whose output tensor is named in ``float_nodes`` stay float."""
    from tensorflow.lite.python import convert as tflite_convert

    return bytes(
        tflite_convert.mlir_quantize(
            calibrated,
            input_data_type=input_type,
            output_data_type=output_type,
            denylisted_nodes=list(float_nodes) if float_nodes else None,
        )
    )


def ops_details(interpreter) -> list[dict[str, Any]]:
    """The model's ops in execution order: ``op_name``, ``inputs`` and ``outputs`` tensor indices.
    Raises AttributeError on an interpreter without the (private) listing."""
    return interpreter._get_ops_details()  # pylint: disable=protected-access


def signature_outputs(interpreter, signature_key: str) -> dict[str, int]:
    """Output name -> tensor index for one signature. Raises AttributeError, KeyError or TypeError
    when the interpreter or the model does not say."""
    signatures = interpreter._get_full_signature_list()  # pylint: disable=protected-access
    return {str(name): int(index) for name, index in signatures[signature_key]["outputs"].items()}


def flatbuffer_schema():
    """TensorFlow's generated TFLite schema module (``ModelT``, ``BufferT``, ``BuiltinOperator``, ...)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def read_flatbuffer(model_bytes: bytes):
    """The model as an editable ``ModelT`` (tensors, buffers, their quantization parameters)."""
    schema = flatbuffer_schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_bytes, 0))


def tensor_name(tensor) -> str:
    """A ``ModelT`` tensor's name as text (the object API gives bytes)."""
    name = tensor.name
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


def builtin_operator(model, op) -> int:
    """A ``ModelT`` op's builtin operator code: the larger of the two schema fields (codes above 127
    are only in ``builtinCode``; older files set only ``deprecatedBuiltinCode``)."""
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def add_buffer(model, values: np.ndarray) -> int:
    """Append a buffer holding ``values``' bytes to a ``ModelT``; its index, for a tensor's ``buffer``."""
    buffer = flatbuffer_schema().BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def write_flatbuffer(model) -> bytes:
    """A ``ModelT`` serialised back into TFLite bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantization_debugger(converter, debug_dataset: Callable[[], Iterator[list[np.ndarray]]]):
    """TF's per-layer quantization debugger for ``converter`` (call ``.run()``, then the dumps)."""
    import tensorflow as tf

    return tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_dataset)
