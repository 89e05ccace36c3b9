"""LiteRT interpreters for the conversion's own measurements, and one way to feed them pictures.

The int8 recipe measures the models it builds several times (``convert.ranges``' histograms,
``convert.bias_correction``'s pooled features, ``convert.quant_debug``'s rows): each runs a model
on pictures one at a time and reads tensors after every run. ``invoke_each`` owns that loop.
"""
from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np

from edge.runtime import interpreter_class, output_value


def every_tensor_interpreter(model_bytes: bytes):
    """An interpreter (allocated) that keeps every intermediate tensor readable after ``invoke``."""
    cls, _ = interpreter_class()
    with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is meant for debugging: it is what this needs
        warnings.simplefilter("ignore")
        interpreter = cls(model_content=model_bytes, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    return interpreter


def invoke_each(interpreter, images: np.ndarray) -> Iterator[int]:
    """Run ``interpreter`` on each of ``images`` (a batch of one, cast to the input's type: uint8
    pixels for a quantized input, float otherwise), yielding the picture's index after each run,
    while its tensors can be read."""
    source = interpreter.get_input_details()[0]
    for index, image in enumerate(images):
        interpreter.set_tensor(source["index"], np.asarray(image)[None].astype(source["dtype"]))
        interpreter.invoke()
        yield index


def outputs_for(model_bytes: bytes, positions: dict[str, int], images: np.ndarray) -> dict[str, np.ndarray]:
    """Named outputs of a converted model (name -> position in ``get_output_details``, as
    ``convert.export.inspect_tflite`` maps them) for each of ``images``, as float32 (N, ...)."""
    cls, _ = interpreter_class()
    interpreter = cls(model_content=model_bytes)
    interpreter.allocate_tensors()
    details = interpreter.get_output_details()
    values: dict[str, list[np.ndarray]] = {name: [] for name in positions}
    for _ in invoke_each(interpreter, images):
        for name, position in positions.items():
            values[name].append(output_value(interpreter, details[position]))
    return {name: np.stack(rows) for name, rows in values.items()}
