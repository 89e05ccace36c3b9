"""Run a converted lookalike model with a TFLite interpreter, no TensorFlow needed.

The interpreter is chosen at run time: LiteRT (``ai_edge_litert``), else ``tflite_runtime``; never
TensorFlow, even where it is installed. Everything the model needs (labels, input contract, which
output is which, quantization) comes from the sidecar JSON that ``make convert`` writes beside the
``.tflite`` file, never from constants here.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.artifacts import VARIANTS, model_path, sidecar_path  # noqa: F401 - their home is edge.artifacts
from edge.contract import InputContract
from edge.quiet import native_stderr_silenced

SIDECAR_VERSION = 1
# Never TensorFlow's own tf.lite: the device side must run, and be tested, without TensorFlow.
INTERPRETER_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


class ModelError(RuntimeError):
    """A missing, corrupt or mismatched model file; the message says which and what to do."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def interpreter_class() -> tuple[type, str]:
    """The first TFLite interpreter that imports: (class, module name)."""
    for name in INTERPRETER_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.Interpreter, name
    raise ModelError(
        "no TFLite interpreter is installed: pip install -r edge/requirements.txt (ai-edge-litert)"
    )


def read_json_object(path: str | Path, error: type[Exception], advice: str) -> dict[str, Any]:
    """A JSON file that must hold an object; anything else raises ``error`` naming the file and ``advice``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path} is not valid JSON ({exc}): {advice}") from exc
    if not isinstance(data, dict):
        raise error(f"{path} is not a JSON object: {advice}")
    return data


@dataclass(frozen=True)
class Sidecar:
    """The sidecar JSON beside a converted model, read and checked once; the device reads it only
    through these fields. A field it needs that is missing is an error, never a default."""

    path: Path
    variant: str
    tflite_sha256: str
    source_model_sha256: str  # the Keras model it was converted from (gallery.npz carries the same)
    contract: InputContract
    outputs: dict[str, int]  # output name -> position in the interpreter's output details
    gallery: str | None = None  # file names in the same folder
    characters: str | None = None
    matching: dict[str, Any] = field(default_factory=dict)  # optional overrides of the gallery's parameters

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path) -> "Sidecar":
        def fail(what: str) -> ModelError:
            return ModelError(f"{path}: {what}: run 'make convert' again")

        if data.get("format_version") != SIDECAR_VERSION:
            raise fail(f"format version {data.get('format_version')!r} is not {SIDECAR_VERSION}")
        for key in ("variant", "tflite_sha256", "source_model_sha256"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise fail(f"no {key}")
        try:
            contract = InputContract.from_dict(data["contract"])
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"bad input contract ({exc})") from exc
        outputs = data.get("outputs")
        if not isinstance(outputs, dict) or any(name not in outputs for name in contract.outputs):
            raise fail("the output map does not name every output of the contract")
        try:
            outputs = {str(name): int(index) for name, index in outputs.items()}
        except (TypeError, ValueError) as exc:
            raise fail("the output map does not fit the model") from exc
        files = {}
        for key in ("gallery", "characters"):
            name = data.get(key)
            if name is not None and (not isinstance(name, str) or Path(name).name != name or name in ("", ".", "..")):
                raise fail(f"{key} must name a file beside it, got {name!r}")
            files[key] = name
        matching = data.get("matching") or {}
        if not isinstance(matching, dict):
            raise fail("matching must be an object")
        return cls(path, data["variant"], data["tflite_sha256"], data["source_model_sha256"], contract, outputs,
                   files["gallery"], files["characters"], matching)

    def beside(self, name: str) -> Path:
        """A file the sidecar names, in the sidecar's folder."""
        return self.path.parent / name


def read_sidecar(tflite_path: str | Path) -> Sidecar:
    path = sidecar_path(tflite_path)
    if not path.is_file():
        raise ModelError(f"{path} is missing (it travels with {Path(tflite_path).name}): run 'make convert'")
    return Sidecar.from_dict(read_json_object(path, ModelError, "run 'make convert' again"), path)


@dataclass
class Prediction:
    probabilities: np.ndarray  # (C,) float32
    embedding: np.ndarray  # (D,) float32, L2-normalised
    traits: np.ndarray | None = None  # (T,) float32 probabilities of the contract's traits, when the model reads them
    # (D,) float32, the embedding output as it came (standardised features / sqrt(D), not renormalised):
    # what the adaptive classifier re-standardises (edge.style_domain)
    features: np.ndarray | None = None


def output_value(interpreter, detail: dict) -> np.ndarray:
    """An output of the last ``invoke`` (batch of one, ``detail`` from ``get_output_details``) as float32:
    dequantized by its scale and zero point when the model gives it as integers."""
    value = interpreter.get_tensor(detail["index"])[0]
    scale, zero_point = detail["quantization"]
    if np.issubdtype(value.dtype, np.integer):
        value = (value.astype(np.float32) - zero_point) * scale
    return value.astype(np.float32)


class LookalikeModel:
    """One converted variant, loaded and checked against its sidecar."""

    def __init__(self, tflite_path: str | Path, num_threads: int | None = 1, verify_sha256: bool = True):
        self.path = Path(tflite_path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist: run 'make convert' first")
        self.sidecar = read_sidecar(self.path)
        if verify_sha256 and self.sidecar.tflite_sha256 != sha256_file(self.path):
            raise ModelError(
                f"{self.path} does not match its sidecar {sidecar_path(self.path).name} "
                "(sha256 differs): the files come from different conversions, run 'make convert' again"
            )
        self.contract = self.sidecar.contract
        self.variant = self.sidecar.variant
        cls, self.interpreter_module = interpreter_class()
        try:
            with native_stderr_silenced():  # the runtime's INFO lines would bury our messages
                self.interpreter = cls(model_path=str(self.path), num_threads=num_threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path} is not a valid TFLite model ({exc}): run 'make convert' again") from exc
        self._input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        try:
            self._outputs = {name: outputs[self.sidecar.outputs[name]] for name in self.contract.outputs}
        except (KeyError, IndexError) as exc:
            raise ModelError(f"{sidecar_path(self.path)}: output map does not fit the model: run 'make convert' again") from exc
        self._check_shapes()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.contract.labels

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def _check_shapes(self) -> None:
        size = self.contract.input_size
        shape = tuple(int(v) for v in self._input["shape"])
        if shape[1:] != (size, size, 3):
            raise ModelError(f"{self.path} takes input {shape}, its sidecar says {size}x{size}x3: run 'make convert' again")
        classes = int(self._outputs["probabilities"]["shape"][-1])
        if classes != self.contract.num_classes:
            raise ModelError(
                f"{self.path} has {classes} outputs but its labels name {self.contract.num_classes} classes: run 'make convert' again"
            )
        if self.contract.has_traits and int(self._outputs["traits"]["shape"][-1]) != len(self.contract.traits):
            raise ModelError(f"{self.path} reads {int(self._outputs['traits']['shape'][-1])} traits, its sidecar names "
                             f"{len(self.contract.traits)}: run 'make convert' again")

    def _quantize_input(self, image: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype == np.float32:
            return image.astype(np.float32)
        scale, zero_point = self._input["quantization"]
        if scale == 1.0 and zero_point == 0 and dtype == np.uint8:
            return image  # pixels are already the quantized values: no float work on the device
        info = np.iinfo(dtype)
        q = np.round(image.astype(np.float32) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _read_output(self, detail: dict) -> np.ndarray:
        return output_value(self.interpreter, detail)

    def predict(self, image: np.ndarray) -> Prediction:
        """One model input (S x S x 3 uint8 RGB, from ``edge.contract``) -> probabilities, embedding."""
        size = self.contract.input_size
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected a {size}x{size}x3 uint8 RGB image, got {image.shape} {image.dtype}")
        self.interpreter.set_tensor(self._input["index"], self._quantize_input(image)[None])
        self.interpreter.invoke()
        features = self._read_output(self._outputs["embedding"])
        norm = float(np.linalg.norm(features))
        embedding = features / norm if norm > 0 else features  # quantization leaves it a little off unit length
        traits = self._read_output(self._outputs["traits"]) if self.contract.has_traits else None
        return Prediction(self._read_output(self._outputs["probabilities"]), embedding, traits, features)

    def predict_mirrored(self, image: np.ndarray) -> Prediction:
        """The average of an image and its mirror image: an answer that does not depend on which
        way a face is turned, and steadier against small changes (two inferences)."""
        first = self.predict(image)
        second = self.predict(np.ascontiguousarray(image[:, ::-1]))
        embedding = first.embedding + second.embedding
        norm = float(np.linalg.norm(embedding))
        if norm > 0:
            embedding = embedding / norm
        traits = None if first.traits is None else (first.traits + second.traits) / 2.0
        return Prediction((first.probabilities + second.probabilities) / 2.0, embedding, traits,
                          (first.features + second.features) / 2.0)
