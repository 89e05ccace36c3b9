"""``models/model_card.json``, read and checked once: what make train recorded about the model.

Training writes the card (``train.pipeline``); conversion and the benchmarks read it only through
``ModelCard``. Every field a reader needs is checked here, and one that is missing or of the wrong
type is refused with one line that says to run 'make train' again, never filled in from a default
in this code. Fields that later versions of make train added without a new ``format_version``
(``face_domain``) are ``None`` on a card without them: "not recorded", which the reader handles.

The card also owns how its file lists become paths (``ModelCard.resolve``), so conversion and the
benchmarks find the same images.

Device side: no TensorFlow here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.artifacts import MODEL_CARD_FILE
from edge.contract import InputContract
from edge.runtime import read_json_object

CARD_VERSION = 1
PROJECT_ROOT = Path(__file__).resolve().parents[1]
AGAIN = "run 'make train' again"


class ModelCardError(ValueError):
    """A missing or malformed model card (the default error type; callers may pass their own)."""


@dataclass(frozen=True)
class CardData:
    """The images the model was trained and validated on, as training recorded them (strings,
    relative paths as training saw them: turn them into paths with ``ModelCard.resolve``)."""

    train_roots: tuple[str, ...]  # folders of class folders
    val_roots: tuple[str, ...]  # empty when validation was split off the training folders
    val_split: float | None  # the share split off for validation, or None
    seed: int
    # The exact files of each split. None: the card does not record them (written by a tool older
    # than the file lists); an empty tuple: training had no such images.
    train_files: tuple[str, ...] | None
    val_files: tuple[str, ...] | None


@dataclass(frozen=True)
class FaceDomain:
    """Where the gallery's real-face mean came from (the arrays themselves live in gallery.npz)."""

    source: str | None  # a folder, a description of scikit-image's faces, or None when no face was found
    faces: int


@dataclass(frozen=True)
class ModelCard:
    path: Path
    format_version: int
    contract: InputContract
    labels: tuple[str, ...]  # the same as the contract's, checked
    data: CardData
    face_domain: FaceDomain | None  # None: not recorded (a card from before make train measured faces)

    @property
    def models_dir(self) -> Path:
        return self.path.parent

    @classmethod
    def from_dict(cls, data: Any, path: str | Path, error: type[Exception] = ModelCardError) -> "ModelCard":
        path = Path(path)

        def fail(what: str) -> Exception:
            return error(f"{path}: {what}: {AGAIN}")

        if not isinstance(data, dict):
            raise fail("not a JSON object")
        version = data.get("format_version")
        if type(version) is not int or version != CARD_VERSION:
            raise fail(f"format version {version!r} is not {CARD_VERSION} (written by another version of make train)")
        if "contract" not in data:
            raise fail("no 'contract' section")
        try:
            contract = InputContract.from_dict(data["contract"])
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"bad input contract ({exc})") from exc
        labels = _strings(data.get("labels"), "labels", fail)
        if labels != contract.labels:
            raise fail(f"labels ({len(labels)} classes) do not match its input contract ({contract.num_classes} classes)")
        return cls(path, version, contract, labels, _card_data(data.get("data"), fail),
                   _face_domain(data.get("face_domain"), fail))

    def resolve(self, name: str) -> Path:
        """A path from the card as a path here. Training records paths as it was given them, so a
        relative one is relative to the folder training ran in: it is looked for in the current
        folder, the project folder, the folder holding models/ and models/ itself, in that order;
        one found nowhere is returned relative to the current folder (for the error message)."""
        candidate = Path(name)
        if candidate.is_absolute():
            return candidate
        models_dir = self.models_dir.resolve()
        for base in (Path.cwd(), PROJECT_ROOT, models_dir.parent, models_dir):
            if (base / candidate).exists():
                return base / candidate
        return Path.cwd() / candidate

    def image_files(self, split: str) -> tuple[Path, ...] | None:
        """The card's list of ``split`` ("train" or "val") images as paths, or None when the card
        does not record one."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        names = self.data.train_files if split == "train" else self.data.val_files
        return None if names is None else tuple(self.resolve(name) for name in names)


def read_model_card(models_dir: str | Path, error: type[Exception] = ModelCardError) -> ModelCard:
    """``models_dir/model_card.json``, checked; ``error`` (one line) when it is missing or malformed."""
    path = Path(models_dir) / MODEL_CARD_FILE
    if not path.is_file():
        raise error(f"{path} is missing (make train writes it beside the model): run 'make train' first")
    return ModelCard.from_dict(read_json_object(path, error, AGAIN), path, error)


def _strings(value: Any, key: str, fail) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise fail(f"{key} must be a list, got {'nothing' if value is None else type(value).__name__}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise fail(f"{key} holds {item!r}, not a name")
    return tuple(value)


def _card_data(data: Any, fail) -> CardData:
    if not isinstance(data, dict):
        raise fail("no 'data' section")
    for key in ("train", "val", "val_split", "seed"):
        if key not in data:
            raise fail(f"no data.{key}")
    val_split = data["val_split"]
    if val_split is not None and (isinstance(val_split, bool) or not isinstance(val_split, (int, float))
                                  or not 0 < val_split < 1):
        raise fail(f"data.val_split must be a share between 0 and 1 or null, got {val_split!r}")
    seed = data["seed"]
    if type(seed) is not int:
        raise fail(f"data.seed must be a whole number, got {seed!r}")
    files = {key: None if data.get(key) is None else _strings(data[key], f"data.{key}", fail)
             for key in ("train_files", "val_files")}
    return CardData(_strings(data["train"], "data.train", fail), _strings(data["val"], "data.val", fail),
                    None if val_split is None else float(val_split), seed, files["train_files"], files["val_files"])


def _face_domain(value: Any, fail) -> FaceDomain | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "source" not in value or "faces" not in value:
        raise fail("face_domain must be an object with 'source' and 'faces'")
    source, faces = value["source"], value["faces"]
    if source is not None and not isinstance(source, str):
        raise fail(f"face_domain.source must be text or null, got {source!r}")
    if type(faces) is not int or faces < 0:
        raise fail(f"face_domain.faces must be a count, got {faces!r}")
    return FaceDomain(source, faces)
