"""Datasets: folders of class folders -> checked lists of (image path, class index).

Three ways to get a validation set:
- separate roots: train on some folders of class folders, validate on others (the default
  emoji dataset trains on the twemoji and noto styles and validates on the unseen openmoji style);
- a stratified random split of one root (``val_split``), repeatable by seed;
- a dataset root that contains style folders (each a folder of class folders) is expanded.
"""
from __future__ import annotations

import hashlib
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge.artifacts import IMAGE_SUFFIXES
from edge.contract import InputContract, prepare_image, read_rgb

DEFAULT_DATASET = Path(__file__).resolve().parents[1] / "data" / "emoji-characters"
DEFAULT_TRAIN_STYLES = ("twemoji", "noto")
DEFAULT_VAL_STYLES = ("openmoji",)


class DatasetError(ValueError):
    """A dataset a user pointed at cannot be used; the message says why and what to do."""


@dataclass
class Split:
    """Image paths with class indices, for one of train or validation."""

    files: list[Path] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(np.asarray(self.targets, dtype=np.int64), minlength=num_classes)


@dataclass
class Dataset:
    labels: tuple[str, ...]
    train: Split
    val: Split
    train_roots: list[Path]
    val_roots: list[Path]
    val_split: float | None
    skipped: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """sha256 over the relative paths, sizes and classes of every image used."""
        digest = hashlib.sha256()
        for name, split in (("train", self.train), ("val", self.val)):
            for path, target in sorted(zip(map(str, split.files), split.targets)):
                digest.update(f"{name}\t{self.labels[target]}\t{Path(path).name}\t{Path(path).stat().st_size}\n".encode())
        return digest.hexdigest()


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def class_folders(root: Path) -> dict[str, list[Path]]:
    """{class name: image files} for a folder of class folders; non-image files are skipped with a warning."""
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is not a folder of class folders")
    classes: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = []
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.is_dir():
                continue
            if path.is_symlink() and not path.exists():
                warn(f"skipping {path}: a link to a file that does not exist")
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(path)
            else:
                warn(f"skipping {path}: not an image file")
        classes[folder.name] = images
    if not classes:
        raise DatasetError(f"dataset folder {root} has no class folders (expected {root}/<class>/<image>)")
    return classes


def merge_roots(roots: Sequence[Path]) -> dict[str, list[Path]]:
    merged: dict[str, list[Path]] = {}
    for root in roots:
        for name, files in class_folders(root).items():
            merged.setdefault(name, []).extend(files)
    return merged


def expand_styles(root: Path) -> list[Path] | None:
    """If root holds style folders that each hold class folders, return them; else None."""
    if not root.is_dir():
        return None
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if subdirs and all(
        any(q.is_dir() for q in sub.iterdir()) and not any(q.suffix.lower() in IMAGE_SUFFIXES for q in sub.iterdir())
        for sub in subdirs
    ):
        return subdirs
    return None


def check_readable(files: Iterable[Path], skipped: list[str]) -> list[Path]:
    """Drop files that cannot be decoded, with one warning each naming the file."""
    good = []
    for path in files:
        try:
            read_rgb(path)
        except (ValueError, OSError):  # OSError: gone meanwhile, a dangling link, no permission
            warn(f"skipping {path}: not a readable image (corrupt, unsupported or missing)")
            skipped.append(str(path))
            continue
        good.append(path)
    return good


def stratified_split(
    classes: dict[str, list[Path]], val_split: float, seed: int
) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Per class, a seeded share of the images for validation (at least one when a class has two or more)."""
    if not 0.0 < val_split < 1.0:
        raise DatasetError(f"validation split {val_split} must be between 0 and 1")
    rng = random.Random(seed)
    train, val = {}, {}
    for name, files in classes.items():
        files = list(files)
        rng.shuffle(files)
        n_val = int(round(len(files) * val_split))
        if len(files) >= 2:
            n_val = min(max(n_val, 1), len(files) - 1)
        else:
            n_val = 0
            if files:  # an empty class is reported once, as an error, when the images are read
                warn(f"class {name!r} has a single image: it is used for training only")
        val[name] = sorted(files[:n_val])
        train[name] = sorted(files[n_val:])
    return train, val


def load_dataset(
    train_roots: Sequence[Path] | None = None,
    val_roots: Sequence[Path] | None = None,
    val_split: float | None = None,
    seed: int = 1234,
) -> Dataset:
    """Resolve roots into a checked Dataset; raise DatasetError for anything a user must fix."""
    if not train_roots:
        train_roots = [DEFAULT_DATASET / s for s in DEFAULT_TRAIN_STYLES]
        if not val_roots and val_split is None:
            val_roots = [DEFAULT_DATASET / s for s in DEFAULT_VAL_STYLES]
    train_roots = [Path(r) for r in train_roots]
    val_roots = [Path(r) for r in (val_roots or [])]
    if len(train_roots) == 1 and not val_roots:
        styles = expand_styles(train_roots[0])
        if styles:
            train_roots = styles
    train_classes = merge_roots(train_roots)
    skipped: list[str] = []
    if val_roots:
        val_classes = merge_roots(val_roots)
        if set(val_classes) != set(train_classes):
            only_train = sorted(set(train_classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(train_classes))
            raise DatasetError(
                "validation classes differ from training classes"
                + (f"; only in training: {', '.join(only_train[:5])}" if only_train else "")
                + (f"; only in validation: {', '.join(only_val[:5])}" if only_val else "")
            )
        val_split = None
    else:
        if val_split is None:
            val_split = 0.2
        train_classes, val_classes = stratified_split(train_classes, val_split, seed)

    labels = tuple(sorted(train_classes))
    if len(labels) < 2:
        raise DatasetError(f"need at least two classes, found {len(labels)} in {', '.join(map(str, train_roots))}")
    train, val = Split(), Split()
    for index, name in enumerate(labels):
        files = check_readable(train_classes[name], skipped)
        if not files:
            raise DatasetError(f"class folder {name!r} has no readable images in {', '.join(map(str, train_roots))}")
        train.files += files
        train.targets += [index] * len(files)
        vfiles = check_readable(val_classes.get(name, []), skipped)
        val.files += vfiles
        val.targets += [index] * len(vfiles)
    if not val.files:
        raise DatasetError("the validation set is empty: add a validation folder (VAL=path) or more images per class")
    warn_duplicates(labels, train, val)
    if skipped:
        warn(f"skipped {len(skipped)} unreadable file(s)")
    return Dataset(labels, train, val, train_roots, val_roots, val_split, skipped)


def warn_duplicates(labels: Sequence[str], *splits: "Split") -> int:
    """One warning per picture that appears, byte for byte, under two different classes (it teaches
    the model both answers, and may sit in training and validation at once); returns how many."""
    owner: dict[str, tuple[str, Path]] = {}
    found = 0
    for split in splits:
        for path, target in zip(split.files, split.targets):
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            seen = owner.setdefault(digest, (labels[target], Path(path)))
            if seen[0] != labels[target]:
                warn(f"{path} (class {labels[target]!r}) is the same picture as {seen[1]} (class {seen[0]!r}): "
                     "remove one of them")
                found += 1
    return found


def load_images(files: Sequence[Path], contract: InputContract) -> np.ndarray:
    """Model inputs (N, S, S, 3) uint8 RGB, through the contract's preprocessing."""
    size = contract.input_size
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        out[i] = prepare_image(read_rgb(path), contract)
    return out



@dataclass
class Styles:
    """The same classes drawn in several art styles, one Split per style (for leave-one-style-out)."""

    labels: tuple[str, ...]
    roots: list[Path]
    splits: list[Split]
    skipped: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [root.name for root in self.roots]


def check_loso_args(val: Sequence[str | Path], val_split: float | None) -> None:
    """The arguments --protocol loso cannot take; DatasetError with one line."""
    if val:
        raise DatasetError("--val does not apply to --protocol loso: every style is tested in turn "
                           "(--val-split sets the share of each training style held out for early stopping)")
    if val_split is not None and not 0.0 < val_split < 1.0:
        raise DatasetError(f"validation split {val_split} must be between 0 and 1 (the share of each training style "
                           "held out for early stopping)")


def load_styles(roots: Sequence[Path] | None = None, minimum: int = 3) -> Styles:
    """Style folders (each a folder of class folders), every class in every style; DatasetError otherwise.

    No roots: the embedded emoji dataset's styles. One root: its style folders. Several: one style each."""
    roots = [Path(r) for r in (roots or [DEFAULT_DATASET])]
    if len(roots) == 1:
        if not roots[0].is_dir():
            raise DatasetError(f"dataset folder {roots[0]} does not exist")
        styles = expand_styles(roots[0])
        if styles is None:
            raise DatasetError(f"{roots[0]} is not a folder of style folders (expected {roots[0]}/<style>/<class>/<image>); "
                               f"leave-one-style-out needs at least {minimum} styles")
        roots = styles
    if len(roots) < minimum:
        raise DatasetError(f"leave-one-style-out needs at least {minimum} styles, found {len(roots)} "
                           f"({', '.join(r.name for r in roots)}): add style folders of the same classes")
    per_style = [class_folders(root) for root in roots]
    labels = tuple(sorted(set().union(*per_style)))
    if len(labels) < 2:
        raise DatasetError(f"need at least two classes, found {len(labels)} in {', '.join(map(str, roots))}")
    skipped: list[str] = []
    splits = []
    for root, classes in zip(roots, per_style):
        split = Split()
        missing = []
        for index, name in enumerate(labels):
            files = check_readable(classes.get(name, []), skipped)
            if not files:
                missing.append(name)
            split.files += files
            split.targets += [index] * len(files)
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DatasetError(f"style {root.name!r} has no pictures of class {', '.join(map(repr, missing[:3]))}{more}: "
                               "leave-one-style-out needs every class in every style")
        splits.append(split)
    warn_duplicates(labels, *splits)
    if skipped:
        warn(f"skipped {len(skipped)} unreadable file(s)")
    return Styles(labels, roots, splits, skipped)


SKIN_TONES = ("1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff")  # emoji skin tone modifiers, in file names


def has_skin_tone(file_name: str) -> bool:
    """Is the picture an emoji drawn with a skin tone modifier (its code points name one)?"""
    return any(tone in file_name.lower() for tone in SKIN_TONES)


def picture_group(path: Path) -> str:
    """The picture's name without emoji skin-tone modifiers: its tone variants are one group."""
    parts = [p for p in path.stem.lower().split("-") if p not in SKIN_TONES]
    return f"{path.parent.name}/{'-'.join(parts)}"


def held_out_rows(targets: np.ndarray, groups: list[str], share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): per class a seeded share of its picture groups is held out
    (one at least when the class has two groups or more, never all)."""
    rng = random.Random(seed)
    held: list[int] = []
    for c in np.unique(targets):
        rows = np.flatnonzero(targets == c)
        names = sorted({groups[r] for r in rows})
        rng.shuffle(names)
        n_held = min(max(int(round(len(names) * share)), 1), len(names) - 1) if len(names) >= 2 else 0
        chosen = set(names[:n_held])
        held += [int(r) for r in rows if groups[r] in chosen]
    held_rows = np.array(sorted(held), dtype=np.int64)
    return np.setdiff1d(np.arange(len(targets)), held_rows), held_rows
