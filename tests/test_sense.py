"""Sense of the answers: the trait tables and the with / without / lift numbers of the benchmark."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import BenchmarkError
from benchmarks.sense import FaceLabel, label_faces, read_face_traits, sense_section, trait_hits
from cli_checks import assert_one_line_error, run_cli
from edge.traits import (
    TRAITS, TraitsError, characters_matching, read_character_traits, read_trait_rules, write_character_traits,
)
from shared_paths import FACES, PORTRAIT, need

ROOT = Path(__file__).resolve().parents[1]
DATASET_TRAITS = ROOT / "data" / "emoji-characters" / "traits.csv"
CHARACTERS = {"nerd": frozenset({"glasses"}), "granny": frozenset({"older", "white_hair", "glasses"}),
              "cop": frozenset({"hat"}), "kid": frozenset()}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_dataset_table_names_only_its_characters_with_known_traits():
    labels = sorted(p.name for p in (ROOT / "data" / "emoji-characters" / "twemoji").iterdir() if p.is_dir())
    rules = read_trait_rules(DATASET_TRAITS, labels)
    table = rules.characters({label: [f"{style}/{label}/{p.name}" for style in ("twemoji", "noto", "openmoji")
                                      for p in (ROOT / "data" / "emoji-characters" / style / label).glob("*.png")]
                              for label in labels})
    # Every trait the issue names has characters to pull toward.
    assert all(characters_matching(trait, table) for trait in TRAITS)
    assert {"nerd_glasses", "sunglasses", "monocle"} <= characters_matching("glasses", table)
    assert {"white_hair", "older_man", "older_woman"} <= characters_matching("white_hair", table)
    assert "bald" in characters_matching("bald", table) and "beard" in characters_matching("beard", table)


def test_white_hair_and_old_age_stand_in_for_each_other():
    assert characters_matching("white_hair", CHARACTERS) == {"granny"}
    table = {"old": frozenset({"older"}), "snowy": frozenset({"white_hair"})}
    assert characters_matching("white_hair", table) == characters_matching("older", table) == {"old", "snowy"}


def test_character_tables_round_trip_and_refuse_what_they_cannot_mean(tmp_path):
    path = tmp_path / "traits.csv"
    write_character_traits(CHARACTERS, path)
    assert read_character_traits(path, CHARACTERS) == {k: v for k, v in CHARACTERS.items() if v}  # no row: no traits
    bad = {
        "character,traits\nnerd,spectacles\n": "unknown trait 'spectacles'",
        "character,traits\nwizard,hat\n": "'wizard' is not one of the model's characters",
        "character,traits\nnerd,glasses\nnerd,hat\n": "listed twice",
        "name,traits\nnerd,glasses\n": "the header must be character,traits",
    }
    for text, message in bad.items():
        with pytest.raises(TraitsError, match=message):
            read_character_traits(write(path, text), CHARACTERS)


def test_face_tables_point_at_faces_and_refuse_bad_rows(tmp_path):
    path = write(tmp_path / "traits.csv", "photo,x,y,traits\nme.jpg,,,glasses\ngroup.jpg,55,40,hat beard\n")
    assert read_face_traits(path) == [FaceLabel("me.jpg", None, frozenset({"glasses"}), 2),
                                      FaceLabel("group.jpg", (55.0, 40.0), frozenset({"hat", "beard"}), 3)]
    bad = {
        "photo,x,y,traits\nme.jpg,10,,glasses\n": "give both x and y",
        "photo,x,y,traits\nme.jpg,left,top,glasses\n": "x and y must be numbers",
        "photo,x,y,traits\nme.jpg,,,wings\n": "unknown trait 'wings'",
        "photo,x,y,traits\n,,,glasses\n": "no photo named",
        "photo,traits\nme.jpg,glasses\n": "the header must be photo,x,y,traits",
    }
    for text, message in bad.items():
        with pytest.raises(BenchmarkError, match=message):
            read_face_traits(write(path, text))


def test_each_row_labels_the_face_whose_box_holds_its_point():
    faces = [("me.jpg", (0, 0, 50, 50)), ("group.jpg", (10, 10, 30, 30)), ("group.jpg", (50, 10, 30, 30))]
    labels = [FaceLabel("me.jpg", None, frozenset({"bald"}), 2),
              FaceLabel("group.jpg", (60, 20), frozenset({"hat"}), 3),
              FaceLabel("group.jpg", (5, 5), frozenset({"beard"}), 4),  # between the faces: none
              FaceLabel("group.jpg", None, frozenset(), 5),  # two faces there: ambiguous
              FaceLabel("group.jpg", (61, 21), frozenset(), 6)]  # the same face again
    assigned, notes = label_faces(faces, labels)
    assert assigned == [frozenset({"bald"}), None, frozenset({"hat"})]
    assert len(notes) == 3
    assert "line 4" in notes[0] and "2 faces were found in group.jpg" in notes[1] and "already labelled" in notes[2]


def test_with_without_and_lift_count_matching_characters_in_the_top_k():
    top = [["nerd", "cop", "kid"],  # glasses: a glasses character in the top-3
           ["kid", "cop", "granny"],  # glasses + white hair: granny matches both
           ["cop", "kid", "nerd"],  # no glasses, yet a glasses character: chance
           ["kid", "cop", "cop"],  # nothing
           ["nerd", "kid", "kid"]]  # not labelled: left out
    traits = [frozenset({"glasses"}), frozenset({"glasses", "white_hair"}), frozenset(), frozenset({"hat"}), None]
    rows = {r["trait"]: r for r in trait_hits(top, traits, CHARACTERS)}
    assert set(rows) == {"glasses", "white_hair", "hat"}  # traits no labelled face has are not reported
    glasses = rows["glasses"]
    assert (glasses["faces_with"], glasses["faces_without"]) == (2, 2)
    assert glasses["with"] == 1.0 and glasses["without"] == 0.5 and glasses["lift"] == 2.0
    assert glasses["top1_with"] == 0.5 and glasses["top1_without"] == 0.0
    white = rows["white_hair"]
    assert white["with"] == 1.0 and white["without"] == 0.0 and white["lift"] is None  # no chance hit: no ratio
    assert rows["hat"]["with"] == 1.0 and rows["hat"]["without"] == 1.0 and rows["hat"]["lift"] == 1.0  # no sense


def test_the_section_covers_every_ranking_with_answers():
    per_face = [{"classifier": [{"label": "cop", "score": 0.9}], "adapted": [{"label": "nerd", "score": 0.4}]}]
    sense = sense_section(per_face, ["classifier", "gallery", "adapted"], [frozenset({"glasses"})], CHARACTERS, "here")
    assert sense["labelled_faces"] == 1 and set(sense["rankings"]) == {"classifier", "adapted"}
    assert sense["rankings"]["adapted"][0]["with"] == 1.0 and sense["rankings"]["classifier"][0]["with"] == 0.0


def test_the_benchmark_measures_sense_on_the_shared_faces(tmp_path, capsys):
    """The README of ../shared/faces says who has which trait; the points are the faces' centres."""
    models = tmp_path / "models"
    shutil.copytree(ROOT / "tests" / "fixtures" / "tiny_models", models)
    labels = json.loads((models / "lookalike_int8.json").read_text())["contract"]["labels"]
    (models / "character_traits.csv").write_text(f"character,traits\n{labels[0]},glasses hat\n{labels[1]},white_hair\n")
    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("grace_hopper.jpg", "open_images_group.jpg"):
        shutil.copy(need(FACES / name), folder / name)
    write(folder / "traits.csv", "photo,x,y,traits\ngrace_hopper.jpg,,,white_hair older hat glasses\n"
                                 "open_images_group.jpg,180,147,glasses\nopen_images_group.jpg,304,112,\n")
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", models, "--out", out, "--faces-only", "--faces", folder, "--no-plots",
                            "--quiet"], capsys)
    assert code == 0, err
    faces = json.loads((out / "benchmark.json").read_text())["faces"]
    sense = faces["sense"]
    assert sense["labelled_faces"] == 3
    glasses = {r["trait"]: r for r in sense["rankings"][faces["primary"]]}["glasses"]
    assert glasses["faces_with"] == 2 and glasses["faces_without"] == 1 and glasses["characters"] == [labels[0]]
    top = {f["face"]: [r["label"] for r in f[faces["primary"]]] for f in faces["per_face"]}
    expected = sum(labels[0] in top[name] for name in ("grace_hopper.jpg", "open_images_group.jpg #2")) / 2
    assert glasses["with"] == expected
    markdown = (out / "benchmark.md").read_text()
    assert "### Sense" in markdown and "| traits " in markdown


def test_a_bad_traits_file_is_one_line_before_anything_runs(tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    shutil.copy(PORTRAIT, folder / "astronaut.jpg")
    write(folder / "traits.csv", "photo,x,y,traits\nastronaut.jpg,,,tiara\n")
    code, _, err = run_cli(["--models", ROOT / "tests" / "fixtures" / "tiny_models", "--out", tmp_path / "r",
                            "--faces-only", "--faces", folder, "--quiet"], capsys)
    assert_one_line_error(code, err, "unknown trait 'tiara'")
    code, _, err = run_cli(["--models", ROOT / "tests" / "fixtures" / "tiny_models", "--out", tmp_path / "r",
                            "--faces-only", "--faces", folder, "--face-traits", tmp_path / "none.csv", "--quiet"], capsys)
    assert_one_line_error(code, err, "does not exist")
