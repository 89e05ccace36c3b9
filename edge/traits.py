"""Visible traits of characters and of people: what "sense" means for a lookalike.

A person with glasses should tend to get a character with glasses, a grey-haired person an older or
white-haired character, and so on. To measure that, both sides are described with the same few
words (``TRAITS``):

- characters: ``traits.csv`` beside the training data (``character,traits``, traits separated by
  spaces); training copies it beside the model as ``character_traits.csv``;
- people: a ``traits.csv`` in a folder of face photos (``photo,x,y,traits``: the face whose box
  holds the point x, y in that photo's pixels, or the only face when x and y are empty), read by
  the benchmark's real-faces section.

A person's trait is matched by a character with the same trait, and white hair and old age stand
in for each other (``MATCHED_BY``), as a grey-haired person resembles an older character.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

TRAITS = ("glasses", "white_hair", "older", "beard", "bald", "hat")
MATCHED_BY = {
    "glasses": frozenset({"glasses"}),
    "white_hair": frozenset({"white_hair", "older"}),
    "older": frozenset({"older", "white_hair"}),
    "beard": frozenset({"beard"}),
    "bald": frozenset({"bald"}),
    "hat": frozenset({"hat"}),
}
CHARACTER_TRAITS_FILE = "character_traits.csv"


class TraitsError(ValueError):
    """A traits file that cannot be used; the message names the file and the line."""


def parse_traits(text: str, where: str) -> frozenset[str]:
    words = frozenset(text.split())
    unknown = sorted(words - set(TRAITS))
    if unknown:
        raise TraitsError(f"{where}: unknown trait {unknown[0]!r} (known: {', '.join(TRAITS)})")
    return words


def read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """The rows of a small CSV file with the given header, as (line number, row)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = tuple(reader.fieldnames or ())
            if header != columns:
                raise TraitsError(f"{path}: the header must be {','.join(columns)}, found {','.join(header) or 'nothing'}")
            return [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TraitsError(f"{path} cannot be read: {exc}") from exc


def read_character_traits(path: Path, labels: Iterable[str]) -> dict[str, frozenset[str]]:
    """Traits per character; characters the file does not list have none. A character the model
    does not know is an error (a table for another dataset)."""
    known = set(labels)
    table: dict[str, frozenset[str]] = {}
    for line, row in read_rows(path, ("character", "traits")):
        name = row["character"]
        if name not in known:
            raise TraitsError(f"{path} line {line}: {name!r} is not one of the model's characters")
        if name in table:
            raise TraitsError(f"{path} line {line}: {name!r} is listed twice")
        table[name] = parse_traits(row["traits"], f"{path} line {line}")
    return table


def write_character_traits(table: dict[str, frozenset[str]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["character", "traits"])
        for name in sorted(table):
            writer.writerow([name, " ".join(t for t in TRAITS if t in table[name])])


def characters_matching(trait: str, table: dict[str, frozenset[str]]) -> frozenset[str]:
    """The characters that match a person's trait."""
    wanted = MATCHED_BY[trait]
    return frozenset(name for name, traits in table.items() if traits & wanted)
