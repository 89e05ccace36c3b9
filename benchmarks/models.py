"""Which models there are to benchmark, checked before any measuring starts.

Everything a user can get wrong (no models yet, a sidecar from another conversion, a reference file
that is not TFLite) is found here, before minutes of measuring, and raised as one
``BenchmarkError`` line that says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import BenchmarkError
from edge.artifacts import KERAS_FILE, MODEL_CARD_FILE
from edge.contract import InputContract
from edge.model_card import ModelCard, read_model_card
from edge.quiet import native_stderr_silenced
from edge.runtime import VARIANTS, LookalikeModel, ModelError, interpreter_class, model_path

KERAS = "keras"
REFERENCE = "reference"


@dataclass(frozen=True)
class ModelEntry:
    """One row of the report: the Keras model, a TFLite variant, or the reference file."""

    name: str  # "keras", a TFLite variant ("float32", "float16", "dynamic", "int8") or "reference"
    kind: str  # "keras" | "tflite" | "reference"
    path: Path

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": str(self.path)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelEntry":
        return cls(data["name"], data["kind"], Path(data["path"]))


@dataclass
class ModelSet:
    """The models found in one models folder, with the contract they share."""

    models_dir: Path
    tflite: list[ModelEntry]
    contract: InputContract
    keras: ModelEntry | None = None
    reference: ModelEntry | None = None
    card: ModelCard | None = None  # None where there is none (on the device)
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.contract.labels

    def entries(self) -> list[ModelEntry]:
        """Report order: Keras, the TFLite variants from widest to narrowest, the reference."""
        rows = [self.keras] if self.keras else []
        rows += self.tflite
        rows += [self.reference] if self.reference else []
        return rows


def find_models(models_dir: str | Path, reference: str | Path | None = None) -> ModelSet:
    """Find and check every model in ``models_dir``; raise BenchmarkError on anything unusable."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise BenchmarkError(f"models folder {models_dir} does not exist: run 'make convert' first")
    tflite = [ModelEntry(v, "tflite", model_path(models_dir, v)) for v in VARIANTS]
    tflite = [entry for entry in tflite if entry.path.is_file()]
    if not tflite:
        raise BenchmarkError(
            f"no TFLite models in {models_dir} (expected lookalike_<variant>.tflite): run 'make convert' first"
        )
    contract = _shared_contract(tflite)
    models = ModelSet(models_dir, tflite, contract)
    missing = [v for v in VARIANTS if v not in {entry.name for entry in tflite}]
    if missing:
        models.notes.append(f"variants not found in {models_dir}: {', '.join(missing)}")
    models.card = read_card(models_dir, contract)
    keras_path = models_dir / KERAS_FILE
    if keras_path.is_file():
        models.keras = ModelEntry(KERAS, KERAS, keras_path)
    else:
        models.notes.append(f"{keras_path} not found: no Keras row (normal on the device)")
    if reference is not None:
        models.reference, shape = check_reference(reference)
        size = contract.input_size
        if tuple(shape[1:3]) != (size, size):
            models.notes.append(
                f"the reference takes {shape[1]}x{shape[2]} images, our models {size}x{size}: "
                "latency ratios to it compare different amounts of work"
            )
    return models


def _shared_contract(entries: list[ModelEntry]) -> InputContract:
    """Load each variant once (checks sidecar, sha256, shapes) and require one shared contract."""
    contracts = {}
    for entry in entries:
        try:
            contracts[entry.name] = LookalikeModel(entry.path, num_threads=1).contract
        except ModelError as exc:
            raise BenchmarkError(str(exc)) from exc
    first_name, first = next(iter(contracts.items()))
    for name, contract in contracts.items():
        if contract.labels != first.labels or contract.input_size != first.input_size:
            raise BenchmarkError(
                f"lookalike_{name} and lookalike_{first_name} disagree on classes or input size "
                "(they come from different conversions): run 'make convert' again"
            )
    return first


def read_card(models_dir: Path, contract: InputContract) -> ModelCard | None:
    """The model card, if present (it names the validation split); None on the device."""
    if not (models_dir / MODEL_CARD_FILE).is_file():
        return None
    card = read_model_card(models_dir, BenchmarkError)
    if card.labels != contract.labels:
        raise BenchmarkError(
            f"{card.path} names other classes than the TFLite sidecars (models from different runs): "
            "run 'make convert' again"
        )
    return card


def check_reference(path: str | Path) -> tuple[ModelEntry, tuple[int, ...]]:
    """A TFLite file to time beside ours (no sidecar, no labels), and its input shape; raise if it
    does not load."""
    path = Path(path)
    hint = "pass a readable .tflite file with --reference, or leave it out"
    if not path.is_file():
        raise BenchmarkError(f"reference model {path} does not exist: {hint}")
    try:
        cls, _ = interpreter_class()
        with native_stderr_silenced():  # the runtime's INFO line would sit beside our one-line error
            interpreter = cls(model_path=str(path), num_threads=1)
            interpreter.allocate_tensors()
        shape = tuple(int(v) for v in interpreter.get_input_details()[0]["shape"])
    except ModelError as exc:
        raise BenchmarkError(str(exc)) from exc
    except (ValueError, RuntimeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise BenchmarkError(f"reference model {path} is not a valid TFLite file ({reason}): {hint}") from exc
    if len(shape) != 4 or shape[0] != 1:
        raise BenchmarkError(f"reference model {path} takes input {shape}, not one image (1, h, w, c): {hint}")
    return ModelEntry(REFERENCE, REFERENCE, path), shape
