"""Sense of the answers for real faces: do visible traits pull toward the characters that have them?

Needs two tables (see ``edge.traits``): the characters' traits (``character_traits.csv``, written
by training beside the model) and the people's (a ``traits.csv`` in the ``--faces`` folder, or
``--face-traits FILE``): ``photo,x,y,traits``, the face whose box holds the point (x, y), or the
photo's only face when x and y are empty.

For each trait and each ranking: among the labelled faces that have the trait, the share whose
top-3 holds a character with it (``with``), the same share among the labelled faces without the
trait (``without``: how often chance alone gives such a character), and their ratio (``lift``).
Sense means ``with`` clearly above ``without``; a lift near 1 is the collapse the issue describes,
"no more likely to get a matching character than anyone else". Faces without a row in the file
are left out of these numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmarks import BenchmarkError
from edge.traits import TRAITS, TraitsError, characters_matching, parse_traits, read_rows

FACE_TRAITS_FILE = "traits.csv"


@dataclass(frozen=True)
class FaceLabel:
    photo: str
    point: tuple[float, float] | None  # None: the photo's only face
    traits: frozenset[str]
    line: int


def read_face_traits(path: Path) -> list[FaceLabel]:
    """The rows of a faces folder's traits file; BenchmarkError (one line) when it cannot be used."""
    labels = []
    try:
        for line, row in read_rows(path, ("photo", "x", "y", "traits")):
            where = f"{path} line {line}"
            if not row["photo"]:
                raise TraitsError(f"{where}: no photo named")
            if bool(row["x"]) != bool(row["y"]):
                raise TraitsError(f"{where}: give both x and y, or neither")
            point = None
            if row["x"]:
                try:
                    point = (float(row["x"]), float(row["y"]))
                except ValueError as exc:
                    raise TraitsError(f"{where}: x and y must be numbers (pixels), got {row['x']!r}, {row['y']!r}") from exc
            labels.append(FaceLabel(row["photo"], point, parse_traits(row["traits"], where), line))
    except TraitsError as exc:
        raise BenchmarkError(str(exc)) from exc
    return labels


def _holds(box: Sequence[float], point: tuple[float, float]) -> bool:
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def label_faces(faces: Sequence[tuple[str, Sequence[float]]], labels: Sequence[FaceLabel],
                ) -> tuple[list[frozenset[str] | None], list[str]]:
    """Each face (photo name, box) gets the traits of the row that points at it, or None; plus notes
    on rows that point at no face, or at a face another row already labelled."""
    assigned: list[frozenset[str] | None] = [None] * len(faces)
    notes = []
    for label in labels:
        in_photo = [i for i, (photo, _) in enumerate(faces) if photo == label.photo]
        if label.point is None:
            chosen = in_photo if len(in_photo) == 1 else []
            reason = f"{len(in_photo)} faces were found in {label.photo}: give x and y" if in_photo else None
        else:
            chosen = [i for i in in_photo if _holds(faces[i][1], label.point)]
            chosen = sorted(chosen, key=lambda i: faces[i][1][2] * faces[i][1][3])[:1]  # the smallest box that holds it
            reason = None
        if not chosen:
            notes.append(f"traits line {label.line} ({label.photo}) matches no detected face"
                         + (f": {reason}" if reason else ""))
            continue
        if assigned[chosen[0]] is not None:
            notes.append(f"traits line {label.line} ({label.photo}) labels a face already labelled: ignored")
            continue
        assigned[chosen[0]] = label.traits
    return assigned, notes


def trait_hits(top: Sequence[Sequence[str]], face_traits: Sequence[frozenset[str] | None],
               characters: dict[str, frozenset[str]]) -> list[dict[str, Any]]:
    """Per trait: how often a matching character is in the top-k of faces with and without it."""
    rows = []
    labelled = [i for i, t in enumerate(face_traits) if t is not None]
    depth = max((len(t) for t in top), default=0)  # the k of the top-k
    for trait in TRAITS:
        matching = characters_matching(trait, characters)
        with_trait = [i for i in labelled if trait in face_traits[i]]
        if not with_trait:
            continue
        without = [i for i in labelled if trait not in face_traits[i]]

        def share(faces: list[int], depth: int) -> float | None:
            if not faces:
                return None
            return sum(1 for i in faces if set(top[i][:depth]) & matching) / len(faces)

        hit, chance = share(with_trait, depth), share(without, depth)
        rows.append({
            "trait": trait,
            "characters": sorted(matching),
            "faces_with": len(with_trait),
            "faces_without": len(without),
            "with": hit,
            "without": chance,
            "lift": None if hit is None or not chance else hit / chance,
            "top1_with": share(with_trait, 1),
            "top1_without": share(without, 1),
        })
    return rows


def sense_section(per_face: Sequence[dict[str, Any]], rankings: Sequence[str],
                  face_traits: Sequence[frozenset[str] | None], characters: dict[str, frozenset[str]],
                  source: str) -> dict[str, Any]:
    """The ``faces.sense`` block of the report."""
    labelled = sum(1 for t in face_traits if t is not None)
    result: dict[str, Any] = {"source": source, "labelled_faces": labelled, "rankings": {}}
    for ranking in rankings:
        top = [[r["label"] for r in face.get(ranking) or []] for face in per_face]
        if any(top):
            result["rankings"][ranking] = trait_hits(top, face_traits, characters)
    return result
