"""Visible traits of characters and of people, and how they agree.

Characters are described by ``traits.csv`` beside the training data, per picture where a
character's pictures differ (a man and a woman variant, a blond-haired one):

    character,pictures,traits
    *,*1f469*,female                 every character's pictures whose file name holds 1f469
    beard,,beard mustache            every picture of "beard"
    princess,noto/princess/*,blond_hair   a glob with '/' matches style/class/file

A picture's traits are the union of every row that matches it (``CHARACTER_TRAITS``). Training
resolves the rows into a trait vector per shown picture (in ``gallery.npz``, read by the device)
and a per-character table ``character_traits.csv`` (``character,traits``: a trait a character has
in at least half of its pictures), which the benchmark reads. The older two-column file
(``character,traits``) is read as rows for every picture.

People: the trait head reads ``edge.face_traits.FACE_TRAITS`` from a face; labelled faces for the
sense measurement use ``PERSON_TRAITS``. ``MATCHED_BY`` says which character traits match a
person's trait (white hair and old age stand in for each other; a full beard includes a goatee and
a mustache).

``TERMS`` is the agreement the match uses: for each term, the person's side ``a`` and the picture's
value ``b`` (1 has it, 0 has not, 0.5 neutral) agree by ``a (2b - 1)``. ``a`` is the trait head's
probability measured from the trait's decision threshold: 0 at the threshold, 1 when certain it is
there, -1 when certain it is not. (Around 0.5 instead, a rare trait would push its own people away:
a calibrated 0.3 for "bald" is well above the 2.5% base rate, and above its threshold, 0.28.)
"""
from __future__ import annotations

import csv
import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from edge.artifacts import CHARACTER_TRAITS_FILE  # noqa: F401 - named in edge.artifacts, used by train

CHARACTER_TRAITS = ("glasses", "hat", "bald", "white_hair", "blond_hair", "beard", "mustache", "older", "child",
                    "male", "female")
PERSON_TRAITS = ("glasses", "hat", "bald", "white_hair", "blond_hair", "beard", "goatee", "mustache", "older")
TRAITS = PERSON_TRAITS  # the words a faces folder's traits.csv may use
MATCHED_BY = {
    "glasses": frozenset({"glasses"}),
    "hat": frozenset({"hat"}),
    "bald": frozenset({"bald"}),
    "white_hair": frozenset({"white_hair", "older"}),
    "older": frozenset({"older", "white_hair"}),
    "blond_hair": frozenset({"blond_hair"}),
    "beard": frozenset({"beard", "mustache"}),
    "goatee": frozenset({"beard"}),
    "mustache": frozenset({"mustache", "beard"}),
}
DATASET_TRAITS_FILE = "traits.csv"


class TraitsError(ValueError):
    """A traits file that cannot be used; the message names the file and the line."""


# ---------------------------------------------------------------- agreement terms


def _has(picture: dict[str, float], *names: str) -> float:
    return max(picture.get(n, 0.0) for n in names)


def _gender(picture: dict[str, float]) -> float:
    male, female = picture.get("male", 0.0), picture.get("female", 0.0)
    return 0.5 + 0.5 * (male - female)  # 1 man, 0 woman, 0.5 neither (or both)


@dataclass(frozen=True)
class Term:
    """One trait the match weighs: which face trait it reads, and how to read it off a picture."""

    name: str
    trait: str  # the face trait (``edge.face_traits.FACE_TRAITS``) it reads
    negated: bool  # the term is the trait's absence ("older" reads "young")
    picture: Callable[[dict[str, float]], float]  # picture traits (0/1) -> 0..1, 0.5 neutral


TERMS = (
    Term("glasses", "glasses", False, lambda c: _has(c, "glasses")),
    Term("hat", "hat", False, lambda c: _has(c, "hat")),
    Term("bald", "bald", False, lambda c: _has(c, "bald")),
    Term("white_hair", "white_hair", False, lambda c: _has(c, "white_hair", "older")),
    Term("blond_hair", "blond_hair", False, lambda c: _has(c, "blond_hair")),
    Term("beard", "beard", False, lambda c: _has(c, "beard", "mustache")),
    Term("older", "young", True, lambda c: _has(c, "older")),
    Term("gender", "male", False, _gender),
)
TERM_NAMES = tuple(t.name for t in TERMS)


def from_threshold(p: float, threshold: float) -> float:
    """A probability as evidence, -1..1: 0 at the decision threshold, 1 at certainty either way."""
    threshold = min(max(threshold, 1e-3), 1.0 - 1e-3)
    return (p - threshold) / (1.0 - threshold) if p >= threshold else (p - threshold) / threshold


def person_terms(probabilities: np.ndarray, names: tuple[str, ...], thresholds: tuple[float, ...]) -> np.ndarray:
    """(M,) the person's side of each term, -1..1, from the trait head's probabilities and
    thresholds in ``names`` order (a term whose trait the model does not read is 0: no evidence)."""
    found = {name: (float(p), float(t)) for name, p, t in zip(names, probabilities, thresholds)}
    values = []
    for term in TERMS:
        if term.trait not in found:
            values.append(0.0)
            continue
        evidence = from_threshold(*found[term.trait])
        values.append(-evidence if term.negated else evidence)
    return np.array(values, dtype=np.float32)


def picture_terms(traits: np.ndarray) -> np.ndarray:
    """(P, M) each picture's side of each term, from (P, len(CHARACTER_TRAITS)) 0/1 traits."""
    rows = []
    for row in np.asarray(traits, dtype=np.float32):
        c = dict(zip(CHARACTER_TRAITS, (float(v) for v in row)))
        rows.append([t.picture(c) for t in TERMS])
    return np.asarray(rows, dtype=np.float32).reshape(-1, len(TERMS))


# ---------------------------------------------------------------- tables


def parse_traits(text: str, where: str, vocabulary: tuple[str, ...] = PERSON_TRAITS) -> frozenset[str]:
    words = frozenset(text.split())
    unknown = sorted(words - set(vocabulary))
    if unknown:
        raise TraitsError(f"{where}: unknown trait {unknown[0]!r} (known: {', '.join(vocabulary)})")
    return words


def read_rows(path: Path, columns: tuple[str, ...] | tuple[tuple[str, ...], ...]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a small CSV file with the given header (or one of several), as (line number, row)."""
    allowed = columns if columns and isinstance(columns[0], tuple) else (columns,)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = tuple(reader.fieldnames or ())
            if header not in allowed:
                raise TraitsError(f"{path}: the header must be {' or '.join(','.join(c) for c in allowed)}, "
                                  f"found {','.join(header) or 'nothing'}")
            return [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TraitsError(f"{path} cannot be read: {exc}") from exc


@dataclass(frozen=True)
class TraitRule:
    character: str  # a class name or "*"
    pattern: str  # "" every picture; a glob on the file name, or on style/class/file when it holds "/"
    traits: frozenset[str]


@dataclass(frozen=True)
class TraitRules:
    """The rows of a dataset's traits.csv."""

    rules: tuple[TraitRule, ...]

    def picture(self, character: str, relative: str) -> frozenset[str]:
        """Traits of one picture; ``relative`` is style/class/file (or class/file)."""
        name = relative.rsplit("/", 1)[-1]
        found: set[str] = set()
        for rule in self.rules:
            if rule.character not in ("*", character):
                continue
            if rule.pattern and not fnmatch.fnmatch(relative if "/" in rule.pattern else name, rule.pattern):
                continue
            found |= rule.traits
        return frozenset(found)

    def characters(self, pictures: dict[str, list[str]]) -> dict[str, frozenset[str]]:
        """Per character, the traits at least half of its pictures have."""
        table = {}
        for character, files in pictures.items():
            counts: dict[str, int] = {}
            for relative in files:
                for trait in self.picture(character, relative):
                    counts[trait] = counts.get(trait, 0) + 1
            table[character] = frozenset(t for t, n in counts.items() if files and n * 2 >= len(files))
        return table


def read_trait_rules(path: Path, labels: Iterable[str]) -> TraitRules:
    """A dataset's traits.csv (``character,pictures,traits``, or the older ``character,traits``).
    A character the model does not know is an error (a table for another dataset)."""
    known = set(labels)
    rules = []
    for line, row in read_rows(path, (("character", "pictures", "traits"), ("character", "traits"))):
        name = row["character"]
        where = f"{path} line {line}"
        if name != "*" and name not in known:
            raise TraitsError(f"{where}: {name!r} is not one of the model's characters")
        rules.append(TraitRule(name, row.get("pictures", ""), parse_traits(row["traits"], where, CHARACTER_TRAITS)))
    return TraitRules(tuple(rules))


def read_character_traits(path: Path, labels: Iterable[str]) -> dict[str, frozenset[str]]:
    """The per-character table training writes beside the model (``character,traits``); characters
    it does not list have none."""
    known = set(labels)
    table: dict[str, frozenset[str]] = {}
    for line, row in read_rows(path, ("character", "traits")):
        name = row["character"]
        if name not in known:
            raise TraitsError(f"{path} line {line}: {name!r} is not one of the model's characters")
        if name in table:
            raise TraitsError(f"{path} line {line}: {name!r} is listed twice")
        table[name] = parse_traits(row["traits"], f"{path} line {line}", CHARACTER_TRAITS)
    return table


def write_character_traits(table: dict[str, frozenset[str]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["character", "traits"])
        for name in sorted(n for n in table if table[n]):  # a character without traits needs no row
            writer.writerow([name, " ".join(t for t in CHARACTER_TRAITS if t in table[name])])


def characters_matching(trait: str, table: dict[str, frozenset[str]]) -> frozenset[str]:
    """The characters that match a person's trait."""
    wanted = MATCHED_BY[trait]
    return frozenset(name for name, traits in table.items() if traits & wanted)


def trait_vector(traits: Iterable[str]) -> np.ndarray:
    have = set(traits)
    return np.array([1.0 if t in have else 0.0 for t in CHARACTER_TRAITS], dtype=np.float32)
