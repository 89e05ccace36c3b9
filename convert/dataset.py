"""Which images calibrate the int8 model (training images only) and which check every variant (validation).

Preference order for each split: a folder given on the command line, then the exact file lists the
model card records (``train_files`` / ``val_files``), then the card's folders of class folders
(``data.train`` / ``data.val``), and for a random split (``val_split``) the same seeded split that
training made (``train.data.load_dataset``). Validation images never calibrate: calibrating on them
would make the agreement check look better than the model will do on new faces.
"""
from __future__ import annotations

import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from convert import ConvertError
from edge.artifacts import IMAGE_SUFFIXES
from edge.contract import InputContract, prepare_image, read_rgb



@dataclass(frozen=True)
class ImageList:
    """Image files and where the list came from (for the report)."""

    files: tuple[Path, ...]
    source: str

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class Splits:
    train: ImageList
    val: ImageList


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def class_name(path: Path) -> str:
    """Images live in <root>/<class>/<file>: the class is the parent folder's name."""
    return Path(path).parent.name


def images_in(root: Path, what: str) -> list[Path]:
    """All images in a folder of class folders; ConvertError if the folder is missing or has none."""
    root = Path(root)
    if not root.is_dir():
        raise ConvertError(f"{what} folder {root} does not exist (expected a folder of class folders)")
    files = sorted(
        path
        for folder in root.iterdir()
        if folder.is_dir() and not folder.name.startswith(".")
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
    if not files:
        raise ConvertError(f"{what} folder {root} has no images (expected {root}/<class>/<image>.png)")
    return files


def images_in_all(roots: Sequence[Path], what: str) -> list[Path]:
    return [path for root in roots for path in images_in(Path(root), what)]


def listed_files(data: dict[str, Any], key: str) -> list[Path] | None:
    files = data.get(key)
    if not files:
        return None
    return [Path(f) for f in files]


def card_folders(data: dict[str, Any], key: str) -> list[Path]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    return [Path(v) for v in value]


def split_like_training(data: dict[str, Any]) -> tuple[list[Path], list[Path]]:
    """Redo training's seeded stratified split, for a card without file lists."""
    try:
        from train.data import DatasetError, load_dataset
    except ImportError as exc:
        raise ConvertError(
            "the model card records a random validation split but not its files, and train.data is not "
            "importable to redo it: pass --val DIR and --rep-data DIR"
        ) from exc
    try:
        dataset = load_dataset(card_folders(data, "train"), [], data.get("val_split"), int(data.get("seed", 1234)))
    except DatasetError as exc:
        raise ConvertError(f"cannot redo training's validation split: {exc}") from exc
    return list(dataset.train.files), list(dataset.val.files)


def resolve_splits(card_data: dict[str, Any], rep_dirs: Sequence[Path] = (), val_dirs: Sequence[Path] = ()) -> Splits:
    """Training images (for calibration) and validation images, from flags or the model card."""
    train = val = None
    if rep_dirs:
        train = ImageList(tuple(images_in_all(rep_dirs, "representative-data")), "--rep-data " + " ".join(map(str, rep_dirs)))
    if val_dirs:
        val = ImageList(tuple(images_in_all(val_dirs, "validation")), "--val " + " ".join(map(str, val_dirs)))
    if train is None:
        train = card_split(card_data, "train", "representative-data (training)")
    if val is None:
        val = card_split(card_data, "val", "validation")
    if train is None or val is None:
        if card_data.get("val_split"):
            train_files, val_files = split_like_training(card_data)
            train = train or ImageList(tuple(train_files), "training's seeded split of model_card data.train")
            val = val or ImageList(tuple(val_files), "training's seeded split of model_card data.train")
    if train is None:
        raise ConvertError(
            "the model card names no training images to calibrate with (no 'data.train_files' or 'data.train'): "
            "pass --rep-data DIR (a folder of class folders of training images)"
        )
    if val is None:
        raise ConvertError(
            "the model card names no validation images (no 'data.val_files' or 'data.val'): "
            "pass --val DIR (a folder of class folders)"
        )
    for image_list, what in ((train, "representative (training)"), (val, "validation")):
        if not image_list.files:
            raise ConvertError(f"the {what} image list from {image_list.source} is empty")
        missing = [f for f in image_list.files if not f.is_file()]
        if missing:
            raise ConvertError(
                f"{len(missing)} {what} image(s) from {image_list.source} are missing, e.g. {missing[0]}: "
                "the dataset moved since training; pass --rep-data DIR and --val DIR"
            )
    return Splits(train, val)


def card_split(data: dict[str, Any], split: str, what: str) -> ImageList | None:
    files = listed_files(data, f"{split}_files")
    if files is not None:
        return ImageList(tuple(files), f"model_card data.{split}_files")
    folders = card_folders(data, split)
    if folders:
        return ImageList(tuple(images_in_all(folders, what)), f"model_card data.{split} " + " ".join(map(str, folders)))
    return None


def balanced_sample(files: Sequence[Path], size: int, seed: int) -> list[Path]:
    """Up to ``size`` files, taken round-robin over the classes so each class is equally represented."""
    by_class: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        by_class[class_name(path)].append(Path(path))
    rng = random.Random(seed)
    queues = []
    for name in sorted(by_class):
        members = sorted(by_class[name])
        rng.shuffle(members)
        queues.append(members)
    chosen: list[Path] = []
    depth = 0
    while len(chosen) < size and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < size:
                chosen.append(queue[depth])
        depth += 1
    return chosen


def load_model_inputs(files: Sequence[Path], contract: InputContract, what: str) -> tuple[np.ndarray, list[Path]]:
    """Model inputs (N, S, S, 3) uint8 RGB through the training preprocessing; unreadable files are skipped."""
    size = contract.input_size
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    kept: list[Path] = []
    for path in files:
        try:
            images[len(kept)] = prepare_image(read_rgb(path), contract)
        except (ValueError, OSError) as exc:
            warn(f"skipping {what} image {path}: {exc}")
            continue
        kept.append(Path(path))
    if not kept:
        raise ConvertError(f"none of the {len(files)} {what} images could be read")
    return images[: len(kept)], kept


def targets_for(files: Sequence[Path], labels: Sequence[str], what: str) -> np.ndarray:
    """Class index of each image from its folder name; ConvertError for classes the model does not know."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted({class_name(f) for f in files} - set(index))
    if unknown:
        raise ConvertError(
            f"{what} images are in class folders the model does not know ({', '.join(unknown[:5])}"
            f"{', ...' if len(unknown) > 5 else ''}): point --val at the classes the model was trained on"
        )
    return np.array([index[class_name(f)] for f in files], dtype=np.int64)


def ensure_full_pixel_range(images: np.ndarray) -> bool:
    """Make the calibration images contain pixel values 0 and 255 (in place); True if it had to.

    The int8 input scale is calibrated from the smallest and largest input value seen. Only when
    they are exactly 0 and 255 does the uint8 input come out as scale 1.0 / zero point 0, so camera
    pixels go into the model unchanged. Setting one pixel of one image is far too little to move
    any other layer's calibration.
    """
    changed = False
    if images.min() > 0:
        images[0, 0, 0, :] = 0
        changed = True
    if images.max() < 255:
        images[0, 0, 1, :] = 255
        changed = True
    return changed
