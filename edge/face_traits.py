"""Visible traits of real faces, as the trait head reads them and as labelled face folders give them.

The trait head (trained by ``python -m train.traits`` on faces labelled in CelebA's format) gives
each face a calibrated probability for each of ``FACE_TRAITS``. Labelled folders use CelebA's own
attribute names; ``CELEBA_ATTRIBUTES`` says which attribute (or its negation) each trait is.

A labelled face folder (CelebA's format): the pictures (directly or in ``images/``) and
``list_attr_celeba.txt``: line 1 the number of rows, line 2 the attribute names, then one row per
picture, its file name and one value per attribute, ``1`` (has it) or ``-1`` (has not).

The split of such a folder into train, validation and test is a rule on the picture's number,
written here once so that training, tuning and the benchmark agree and no test face is ever
trained or tuned on: the last digit of the number, 0-5 train, 6-7 validation, 8-9 test.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.faces import find_faces
from edge.contract import InputContract, crop_face, read_rgb

ATTRIBUTE_FILE = "list_attr_celeba.txt"
# trait -> (CelebA attribute, True when the trait is that attribute's negation)
CELEBA_ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "glasses": ("Eyeglasses", False),
    "hat": ("Wearing_Hat", False),
    "bald": ("Bald", False),
    "white_hair": ("Gray_Hair", False),
    "blond_hair": ("Blond_Hair", False),
    "beard": ("No_Beard", True),  # any facial hair
    "goatee": ("Goatee", False),
    "mustache": ("Mustache", False),
    "male": ("Male", False),
    "young": ("Young", False),
}
FACE_TRAITS = tuple(CELEBA_ATTRIBUTES)
SPLITS = ("train", "val", "test")
SPLIT_RULE = "last digit of the picture's number: 0-5 train, 6-7 val, 8-9 test"


class FaceTraitsError(ValueError):
    """A labelled face folder that cannot be used; the message names the file."""


def split_of(file_name: str) -> str:
    """train, val or test for a picture, from the last digit of the number in its name."""
    digits = re.findall(r"\d", Path(file_name).stem)
    if not digits:
        raise FaceTraitsError(f"{file_name}: a labelled picture's name must contain its number")
    last = int(digits[-1])
    return "train" if last <= 5 else ("val" if last <= 7 else "test")


@dataclass
class LabelledFaces:
    """Pictures with their traits (True/False per ``FACE_TRAITS``), in file order."""

    folder: Path
    files: list[Path]
    labels: np.ndarray  # (N, len(FACE_TRAITS)) bool

    def subset(self, split: str) -> "LabelledFaces":
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}")
        rows = [i for i, f in enumerate(self.files) if split_of(f.name) == split]
        return LabelledFaces(self.folder, [self.files[i] for i in rows], self.labels[rows])

    def column(self, trait: str) -> np.ndarray:
        return self.labels[:, FACE_TRAITS.index(trait)]

    def __len__(self) -> int:
        return len(self.files)


def is_labelled_folder(folder: Path) -> bool:
    return (Path(folder) / ATTRIBUTE_FILE).is_file()


def read_labelled_faces(folder: str | Path) -> LabelledFaces:
    """Read a folder in CelebA's format; one clear error for anything that does not fit."""
    folder = Path(folder)
    path = folder / ATTRIBUTE_FILE
    if not folder.is_dir():
        raise FaceTraitsError(f"face folder {folder} does not exist")
    if not path.is_file():
        raise FaceTraitsError(f"{folder} has no {ATTRIBUTE_FILE} (a labelled face folder in CelebA's format)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FaceTraitsError(f"{path} cannot be read: {exc}") from exc
    if len(lines) < 3:
        raise FaceTraitsError(f"{path}: expected a count, the attribute names and at least one row")
    names = lines[1].split()
    missing = sorted({attr for attr, _ in CELEBA_ATTRIBUTES.values()} - set(names))
    if missing:
        raise FaceTraitsError(f"{path}: attribute(s) {', '.join(missing)} are missing from line 2")
    columns = [(names.index(attr), negate) for attr, negate in CELEBA_ATTRIBUTES.values()]
    images = folder / "images" if (folder / "images").is_dir() else folder
    files, rows, absent = [], [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise FaceTraitsError(f"{path} line {number}: expected a file name and {len(names)} values of 1 or -1")
        picture = images / parts[0]
        if not picture.is_file():
            absent.append(parts[0])
            continue
        values = [parts[1 + i] == "1" for i, _ in columns]
        rows.append([value != negate for value, (_, negate) in zip(values, columns)])
        files.append(picture)
    if absent:
        raise FaceTraitsError(f"{path} names {len(absent)} picture(s) that are not in {images}, e.g. {absent[0]}")
    if not files:
        raise FaceTraitsError(f"{path} lists no pictures")
    for name in (f.name for f in files):
        split_of(name)
    return LabelledFaces(folder, files, np.asarray(rows, dtype=bool))


def face_crops(faces: LabelledFaces, detectors, contract: InputContract, log) -> tuple[np.ndarray, np.ndarray]:
    """Crops of every picture as each detector frames it, found as the device finds faces in a still
    picture (``edge.faces.find_faces``): (crops, row of ``faces`` per crop)."""
    crops, rows, unreadable = [], [], 0
    for row, path in enumerate(faces.files):
        try:
            rgb = read_rgb(path)
        except ValueError:
            unreadable += 1
            continue
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for detector in detectors:
            boxes = find_faces(bgr, detector)
            if boxes:
                crops.append(crop_face(rgb, boxes[0], contract))
                rows.append(row)
    if unreadable:
        log(f"warning: {unreadable} picture(s) could not be read and were skipped")
    if not crops:
        raise FaceTraitsError(f"no faces found in the pictures of {faces.folder}")
    return np.stack(crops), np.asarray(rows)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when a class is absent."""
    y = np.asarray(y, bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = np.asarray(score)[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))
