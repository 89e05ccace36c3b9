"""Store the float head's weight matrices as float16 in the int8 variant.

The default int8 recipe keeps the head float (``convert.export.Int8Recipe``), and its weight
matrices are the largest float constants of the file: the classifier's (60 x 1376) and the trait
head's (10 x 2304) are 0.42 MB of float32, 13% of the int8 model. ``halve`` stores each fully
connected layer's weights as float16 with a DEQUANTIZE op in front, the layout of the float16
variant: the runtime widens them to float32 once, when the model is loaded, and the arithmetic
stays float32. Rounding a weight to float16 moves it by at most 2^-11 of itself. What it saved and
what it cost on the shipped model: README "The int8 variant".
"""
from __future__ import annotations

import numpy as np

from convert import tf_private

MIN_ELEMENTS = 256  # a smaller weight matrix would save less than the op and tensor added cost
DEQUANTIZE_FLOAT16_VERSION = 3  # the op version TFLite's converter gives a float16 -> float32 DEQUANTIZE


def halve(model_bytes: bytes) -> tuple[bytes, int]:
    """``model_bytes`` with every float32 constant weight matrix of a FULLY_CONNECTED op (at least
    MIN_ELEMENTS values) stored as float16 behind a DEQUANTIZE op; and how many such matrices there were."""
    schema = tf_private.flatbuffer_schema()
    model = tf_private.read_flatbuffer(model_bytes)
    graph = model.subgraphs[0]
    weights: list[int] = []
    for op in graph.operators:
        if tf_private.builtin_operator(model, op) != schema.BuiltinOperator.FULLY_CONNECTED or len(op.inputs) < 2:
            continue
        tensor = graph.tensors[op.inputs[1]]
        data = model.buffers[tensor.buffer].data
        if tensor.type == schema.TensorType.FLOAT32 and data is not None and len(data) // 4 >= MIN_ELEMENTS \
                and int(op.inputs[1]) not in weights:
            weights.append(int(op.inputs[1]))
    if not weights:
        return model_bytes, 0
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
    code.version = DEQUANTIZE_FLOAT16_VERSION
    model.operatorCodes.append(code)
    dequantize = len(model.operatorCodes) - 1
    ops = []
    for index in weights:
        tensor = graph.tensors[index]
        values = np.frombuffer(bytes(model.buffers[tensor.buffer].data), np.float32)
        half = schema.TensorT()
        half.shape = np.array(tensor.shape, np.int32)
        half.type = schema.TensorType.FLOAT16
        half.buffer = tf_private.add_buffer(model, values.astype(np.float16))
        half.name = tf_private.tensor_name(tensor) + "/float16"
        graph.tensors.append(half)
        old, tensor.buffer = tensor.buffer, 0  # buffer 0 is the empty one: the float32 tensor is now what the DEQUANTIZE writes
        if not any(t.buffer == old for t in graph.tensors):
            model.buffers[old].data = None  # left empty, not removed: other buffers keep their indices
        op = schema.OperatorT()
        op.opcodeIndex = dequantize
        op.inputs = np.array([len(graph.tensors) - 1], np.int32)
        op.outputs = np.array([index], np.int32)
        ops.append(op)
    graph.operators = ops + list(graph.operators)  # their inputs are constants: first is as good as anywhere
    return tf_private.write_flatbuffer(model), len(weights)
