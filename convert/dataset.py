"""Which images calibrate the int8 model (training images only) and which check every variant (validation).

For each split: the folders given on the command line (``--rep-data`` / ``--val``), else the exact
file lists training recorded in the model card (``data.train_files`` / ``data.val_files``, found
through ``ModelCard.resolve``). A card without them comes from a tool older than those lists and is
refused, never guessed at. Validation images never calibrate: calibrating on them would make the
agreement check look better than the model will do on new faces.
"""
from __future__ import annotations

import random
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from convert import ConvertError
from edge.artifacts import IMAGE_SUFFIXES
from edge.contract import InputContract, prepare_image, read_rgb
from edge.model_card import ModelCard


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


def resolve_splits(card: ModelCard, rep_dirs: Sequence[Path] = (), val_dirs: Sequence[Path] = ()) -> Splits:
    """Training images (for calibration) and validation images, from flags or the model card."""
    if rep_dirs:
        train = ImageList(tuple(images_in_all(rep_dirs, "representative-data")), "--rep-data " + " ".join(map(str, rep_dirs)))
    else:
        train = card_split(card, "train", "--rep-data DIR (a folder of class folders of training images)")
    if val_dirs:
        val = ImageList(tuple(images_in_all(val_dirs, "validation")), "--val " + " ".join(map(str, val_dirs)))
    else:
        val = card_split(card, "val", "--val DIR (a folder of class folders)")
    for image_list, what in ((train, "representative (training)"), (val, "validation")):
        missing = [f for f in image_list.files if not f.is_file()]
        if missing:
            raise ConvertError(
                f"{len(missing)} {what} image(s) from {image_list.source} are missing, e.g. {missing[0]}: "
                "the dataset moved since training; pass --rep-data DIR and --val DIR"
            )
    return Splits(train, val)


def card_split(card: ModelCard, split: str, flag: str) -> ImageList:
    """The card's file list of ``split``; ConvertError when it records none or an empty one."""
    files = card.image_files(split)
    if files is None:
        raise ConvertError(
            f"{card.path} records no data.{split}_files (it was written by an older tool): "
            "pass --rep-data DIR and --val DIR, or run 'make train' again"
        )
    if not files:
        raise ConvertError(f"{card.path} lists no {'training' if split == 'train' else 'validation'} images "
                           f"(data.{split}_files is empty): pass {flag}")
    return ImageList(files, f"model_card data.{split}_files")


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
