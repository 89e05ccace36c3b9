"""The labeled images accuracy is measured on: the model card's validation split, or ``--data DIR``.

Images go through exactly what the device does with a whole picture (``edge.contract.read_rgb``
and ``prepare_image``), so the numbers measure the model as the device feeds it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from benchmarks import BenchmarkError
from edge.artifacts import IMAGE_SUFFIXES
from edge.contract import InputContract, prepare_image, read_rgb
from edge.model_card import ModelCard

MAX_NAMES_SHOWN = 6


@dataclass
class LabeledFiles:
    """Image files with the index (into the model's labels) of each file's class."""

    paths: list[Path]
    truth: list[int]
    source: str  # where the list came from, for the report
    notes: list[str] = field(default_factory=list)


@dataclass
class LabeledImages:
    """Decoded model inputs, ready to predict: (N, S, S, 3) uint8 and (N,) class indices."""

    images: np.ndarray
    truth: np.ndarray
    source: str
    skipped: list[str] = field(default_factory=list)


def _names(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    return shown + (f" (+{len(names) - MAX_NAMES_SHOWN} more)" if len(names) > MAX_NAMES_SHOWN else "")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def files_from_folder(data_dir: str | Path, labels: tuple[str, ...]) -> LabeledFiles:
    """``DIR/<class name>/*.png``; every class folder must be one of the model's classes."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BenchmarkError(f"data folder {data_dir} does not exist: pass a folder of class folders with --data")
    classes = {
        child.name: sorted(p for p in child.iterdir() if is_image(p))
        for child in sorted(data_dir.iterdir())
        if child.is_dir() and not child.name.startswith(".")
    }
    classes = {name: files for name, files in classes.items() if files}
    if not classes:
        raise BenchmarkError(
            f"data folder {data_dir} has no class folders with images: pass a folder of "
            "<class name>/ folders named after the model's classes (e.g. data/emoji-characters/openmoji)"
        )
    unknown = set(classes) - set(labels)
    if unknown:
        raise BenchmarkError(
            f"data folder {data_dir} has classes the model does not know: {_names(unknown)}; "
            f"its class folders must be named after the model's classes (models/labels.txt)"
        )
    index = {name: i for i, name in enumerate(labels)}
    paths = [path for name in classes for path in classes[name]]
    truth = [index[name] for name in classes for _ in classes[name]]
    found = LabeledFiles(paths, truth, str(data_dir))
    absent = set(labels) - set(classes)
    if absent:
        found.notes.append(f"{len(absent)} of the model's classes have no images in {data_dir}: {_names(absent)}")
    return found


def files_from_card(card: ModelCard, labels: tuple[str, ...]) -> LabeledFiles | str:
    """The validation split the model card records; a note (str) when it is not usable here."""
    paths = card.image_files("val")
    if paths is None:
        return "the model card records no validation files (it was written by an older tool): pass --data DIR for accuracy"
    if not paths:
        return "the model card lists no validation images: pass --data DIR for accuracy"
    index = {name: i for i, name in enumerate(labels)}
    present = [p for p in paths if p.is_file()]
    if not present:
        return (f"none of the model card's {len(paths)} validation files exist here "
                f"(first: {paths[0]}): pass --data DIR for accuracy")
    unknown = {p.parent.name for p in present} - set(index)
    if unknown:
        raise BenchmarkError(
            f"model card's validation files are in folders that are not classes of the model: "
            f"{_names(unknown)}: run 'make train' again"
        )
    found = LabeledFiles(present, [index[p.parent.name] for p in present], "model card validation split")
    if len(present) < len(paths):
        found.notes.append(f"{len(paths) - len(present)} of the model card's validation files are missing here")
    return found


def load_images(
    files: LabeledFiles,
    contract: InputContract,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> LabeledImages:
    """Decode and prepare every file once (shared by all variants); unreadable files are skipped."""
    chosen = list(zip(files.paths, files.truth))
    if limit is not None and limit < len(chosen):
        # An evenly spaced subset keeps every class represented, unlike the first N files.
        picks = np.linspace(0, len(chosen) - 1, limit).round().astype(int)
        chosen = [chosen[i] for i in picks]
    size = contract.input_size
    images = np.empty((len(chosen), size, size, 3), dtype=np.uint8)
    truth, skipped = [], []
    for path, label in chosen:
        try:
            images[len(truth)] = prepare_image(read_rgb(str(path)), contract)
        except ValueError:
            skipped.append(str(path))
        else:
            truth.append(label)
        if progress:
            progress(1)
    if not truth:
        raise BenchmarkError(f"no readable images in {files.source}: check the files or pass --data DIR")
    return LabeledImages(images[: len(truth)], np.array(truth, dtype=np.int64), files.source, skipped)
