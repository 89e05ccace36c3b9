"""What make train left in models/: the Keras model, its card and labels, checked before any work."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from convert import ConvertError
from edge.artifacts import KERAS_FILE, LABELS_FILE
from edge.contract import InputContract
from edge.model_card import ModelCard, read_model_card


@dataclass(frozen=True)
class SourceModel:
    """The trained model and everything about it that conversion needs."""

    models_dir: Path
    keras_path: Path
    card: ModelCard

    @property
    def contract(self) -> InputContract:
        return self.card.contract

    @property
    def labels(self) -> tuple[str, ...]:
        return self.contract.labels


def read_labels_file(path: Path) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def check_labels_agree(contract: InputContract, labels_file: tuple[str, ...] | None, models_dir: Path) -> None:
    """labels.txt must name the contract's classes in the same order (the card's own labels are
    checked against its contract when the card is read)."""
    if labels_file is not None and labels_file != contract.labels:
        raise ConvertError(
            f"{models_dir}: {LABELS_FILE} ({len(labels_file)} classes) does not match the model's contract "
            f"({contract.num_classes} classes): the files come from different trainings, run 'make train' again"
        )


def read_source(models_dir: Path) -> SourceModel:
    """Check the models folder holds a complete trained model; raise ConvertError saying what is missing."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ConvertError(f"models folder {models_dir} does not exist: run 'make train' first")
    keras_path = models_dir / KERAS_FILE
    if not keras_path.is_file():
        raise ConvertError(f"no trained model at {keras_path}: run 'make train' first")
    card = read_model_card(models_dir, ConvertError)
    check_labels_agree(card.contract, read_labels_file(models_dir / LABELS_FILE), models_dir)
    return SourceModel(models_dir, keras_path, card)


def load_keras_model(source: SourceModel):
    """Load the Keras model and check its input size and class count against the contract."""
    import keras  # heavy: only once the cheap checks have passed

    try:
        model = keras.saving.load_model(source.keras_path, compile=False)
    except Exception as exc:  # Keras raises many types for a corrupt or foreign file
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConvertError(f"cannot load {source.keras_path} ({first_line}): run 'make train' again") from exc
    check_model_matches(model, source)
    return model


def check_model_matches(model, source: SourceModel) -> None:
    contract = source.contract
    size = contract.input_size
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    if input_shape != (size, size, 3):
        raise ConvertError(
            f"{source.keras_path} takes input {input_shape}, the model card says {size}x{size}x3: run 'make train' again"
        )
    if len(model.outputs) != len(contract.outputs):
        raise ConvertError(
            f"{source.keras_path} has {len(model.outputs)} outputs, its model card names {len(contract.outputs)} "
            f"({', '.join(contract.outputs)}): run 'make train' again"
        )
    if contract.has_traits and int(model.outputs[2].shape[-1]) != len(contract.traits):
        raise ConvertError(
            f"{source.keras_path} reads {int(model.outputs[2].shape[-1])} traits, its model card names "
            f"{len(contract.traits)}: run 'make train' again"
        )
    classes = int(model.outputs[0].shape[-1])
    if classes != contract.num_classes:
        raise ConvertError(
            f"{source.keras_path} predicts {classes} classes but its labels name {contract.num_classes}: "
            "the model and labels come from different trainings, run 'make train' again"
        )
    dim = int(model.outputs[1].shape[-1])
    if dim != contract.embedding_dim:
        raise ConvertError(
            f"{source.keras_path} has a {dim}-d embedding, the model card says {contract.embedding_dim}: run 'make train' again"
        )
