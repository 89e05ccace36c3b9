"""Trait-aware matching on the device: the characters' trait tables, agreement, the variant shown,
what a face record says, and the switches (--no-traits, --full-frame)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.face_traits import FACE_TRAITS
from edge.matcher import LookalikeMatcher, PictureSet, traits_read
from edge.traits import CHARACTER_TRAITS, TraitsError, characters_matching, read_trait_rules
from edge_helpers import LABELS, answer, matcher, person, scoring

ROOT = Path(__file__).resolve().parents[2]
DATASET_TRAITS = ROOT / "data" / "emoji-characters" / "traits.csv"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_picture_rules_union_globs_and_the_per_character_majority(tmp_path):
    rules = read_trait_rules(write(tmp_path / "traits.csv", "character,pictures,traits\n"
                                   "*,*1f469*,female\n"
                                   "sage,,white_hair\n"
                                   "sage,noto/sage/*,glasses\n"), ["sage", "kid"])
    assert rules.picture("sage", "twemoji/sage/1f469-1f3fb.png") == {"female", "white_hair"}
    assert rules.picture("sage", "noto/sage/1f468.png") == {"white_hair", "glasses"}
    assert rules.picture("kid", "noto/kid/1f469.png") == {"female"}
    table = rules.characters({"sage": ["twemoji/sage/a.png", "noto/sage/b.png", "noto/sage/c.png"], "kid": ["x/kid/d.png"]})
    assert table == {"sage": {"white_hair", "glasses"}, "kid": frozenset()}  # glasses on 2 of 3 pictures


def test_the_older_two_column_table_still_reads(tmp_path):
    rules = read_trait_rules(write(tmp_path / "traits.csv", "character,traits\nsage,glasses\n"), ["sage"])
    assert rules.picture("sage", "any/sage/file.png") == {"glasses"}


@pytest.mark.parametrize("text, words", [
    ("character,pictures,traits\nnobody,,hat\n", "'nobody' is not one of the model's characters"),
    ("character,pictures,traits\nsage,,wings\n", "unknown trait 'wings'"),
    ("name,traits\nsage,hat\n", "the header must be"),
])
def test_bad_trait_tables_name_the_problem(tmp_path, text, words):
    with pytest.raises(TraitsError, match=words):
        read_trait_rules(write(tmp_path / "traits.csv", text), ["sage"])


def test_the_shipped_table_describes_the_emoji_characters():
    labels = [p.name for p in (ROOT / "data" / "emoji-characters" / "twemoji").iterdir() if p.is_dir()]
    rules = read_trait_rules(DATASET_TRAITS, labels)
    by_character = {label: [f"{style}/{label}/{p.name}" for style in ("twemoji", "noto", "openmoji")
                            for p in sorted((ROOT / "data" / "emoji-characters" / style / label).glob("*.png"))]
                    for label in labels}
    table = rules.characters(by_character)
    assert {"nerd_glasses", "sunglasses", "monocle", "scientist"} <= characters_matching("glasses", table)
    assert {"white_hair", "older_man", "older_woman", "santa_claus"} <= characters_matching("white_hair", table)
    assert {"beard", "santa_claus"} <= characters_matching("goatee", table)
    assert "blond_hair" in characters_matching("blond_hair", table) and "bald" in characters_matching("bald", table)
    assert "cowboy" in characters_matching("hat", table) and "cowboy" not in characters_matching("glasses", table)
    assert table["princess"] >= {"female"} and table["prince"] >= {"male"}
    # Variants differ per picture: a woman's picture of a three-gender class is female, the man's male.
    assert "female" in rules.picture("astronaut", "twemoji/astronaut/1f469-1f3fb-200d-1f680.png")
    assert "male" in rules.picture("astronaut", "twemoji/astronaut/1f468-1f3fb-200d-1f680.png")


# ---------------------------------------------------------------- the match

def test_glasses_pull_toward_the_bespectacled_character_and_a_beard_toward_the_bearded():
    m = matcher()
    assert answer(m, person(glasses=0.95)).best.label == "specs"
    assert answer(m, person(beard=0.95, male=0.9)).best.label == "bearded"
    assert answer(m, person()).best.label == "plain"  # neither: the character without either


def test_without_weights_the_traits_change_nothing():
    m = matcher(weights=0.0)
    scores = [answer(m, person(**kw)).top[0].score for kw in ({}, {"glasses": 0.95}, {"beard": 0.95})]
    assert scores == pytest.approx([1 / 3] * 3, abs=1e-6)


def test_the_picture_shown_is_the_persons_variant_and_the_card_says_why():
    m = matcher()
    man = answer(m, person(glasses=0.95, male=0.97))
    woman = answer(m, person(glasses=0.95, male=0.03))
    assert (man.best.label, man.best.picture) == ("specs", "specs/man.png")
    assert (woman.best.label, woman.best.picture) == ("specs", "specs/woman.png")
    assert man.why == ["glasses"] and "glasses" in man.traits
    assert man.trait_scores["glasses"] == pytest.approx(0.95, abs=1e-3)


def test_traits_read_use_each_threshold_and_say_older_when_not_young():
    names = ("glasses", "white_hair", "young")
    assert traits_read(np.array([0.6, 0.2, 0.9]), names, (0.5, 0.3, 0.5)) == ["glasses"]
    assert traits_read(np.array([0.4, 0.35, 0.1]), names, (0.5, 0.3, 0.5)) == ["white_hair", "older"]


def test_a_matcher_without_traits_ignores_the_traits_output():
    m = LookalikeMatcher(LABELS, scoring(), "gallery")  # no trait names: --no-traits
    result = answer(m, person(glasses=0.95))
    assert result.traits == [] and result.why == [] and result.top[0].score == pytest.approx(1 / 3, abs=1e-6)


# ---------------------------------------------------------------- through the device


def run_json(tmp_path, photo, *extra) -> list[dict]:
    from edge.cli import main

    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}.jsonl"
    assert main([str(photo), "--models", str(ROOT / "tests" / "fixtures" / "tiny_models"), "--no-window", "--quiet",
                 "--json", str(out), *extra]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_each_face_names_its_picture_and_the_traits_read(tmp_path, portrait):
    face = run_json(tmp_path, portrait)[0]["faces"][0]
    characters = ROOT / "tests" / "fixtures" / "tiny_models" / "characters"
    assert face["picture"] and (characters / face["picture"]).is_file()
    assert face["picture"].split("/")[0] == face["top"][0]["label"]
    assert set(face["trait_scores"]) == set(FACE_TRAITS)
    assert isinstance(face["traits"], list) and set(face["why"]) <= set(face["traits"])


def test_no_traits_switches_them_off(tmp_path, portrait):
    face = run_json(tmp_path, portrait, "--no-traits")[0]["faces"][0]
    assert face["traits"] == [] and face["trait_scores"] == {} and face["why"] == []


def test_a_whole_picture_is_ranked_by_the_classifier(tmp_path):
    drawing = sorted((ROOT / "data" / "emoji-characters" / "openmoji" / "vampire").glob("*.png"))[0]
    face = run_json(tmp_path, drawing, "--full-frame")[0]["faces"][0]
    assert face["method"] == "classifier" and face["top"] == face["classifier"]
    gallery = run_json(tmp_path, drawing, "--full-frame", "--match", "gallery")[0]["faces"][0]
    assert gallery["method"] == "gallery"


def test_character_traits_vocabulary_is_what_the_terms_read():
    assert {"glasses", "hat", "bald", "white_hair", "blond_hair", "beard", "male", "female"} <= set(CHARACTER_TRAITS)


def test_among_equal_pictures_the_one_without_a_skin_tone_is_shown():
    gallery = scoring()
    toned = np.array([1.0, 0.0, 1.0, 1.0], np.float32)  # the man's picture of "specs" is drawn with a skin tone
    gallery.pictures = PictureSet(gallery.pictures.files, gallery.pictures.owners, 3,
                                  gallery.pictures.embeddings, gallery.pictures.traits, plain=toned)
    m = LookalikeMatcher(LABELS, gallery, "gallery", FACE_TRAITS, (0.5,) * len(FACE_TRAITS))
    undecided = answer(m, person(glasses=0.95, male=0.5))
    assert undecided.best.picture == "specs/woman.png"  # gender says nothing: the plain picture
    assert answer(m, person(glasses=0.95, male=0.99)).best.picture == "specs/man.png"  # gender wins over plainness


def test_mirror_averaging_averages_the_traits_too(tiny_models):
    from edge.runtime import LookalikeModel, model_path

    model = LookalikeModel(model_path(tiny_models, "float32"))
    drawing = sorted((ROOT / "data" / "emoji-characters" / "noto" / "vampire").glob("*.png"))[3]
    from edge.contract import prepare_image, read_rgb

    image = prepare_image(read_rgb(drawing), model.contract)
    left, right = model.predict(image).traits, model.predict(np.ascontiguousarray(image[:, ::-1])).traits
    assert not np.allclose(left, right, atol=1e-4)  # the tiny model's traits do depend on the side
    np.testing.assert_allclose(model.predict_mirrored(image).traits, (left + right) / 2, atol=1e-6)


def test_trait_weights_of_the_wrong_length_are_refused(models_copy):
    from edge.runtime import LookalikeModel, ModelError, model_path

    with np.load(models_copy / "gallery.npz") as data:
        arrays = {key: data[key] for key in data.files}
    np.savez(models_copy / "gallery.npz", **(arrays | {"trait_weights": arrays["trait_weights"][:3]}))
    model = LookalikeModel(model_path(models_copy, "int8"))
    with pytest.raises(ModelError, match="trait_weights must be 8 numbers"):
        LookalikeMatcher.from_sidecar(model.path, model.sidecar, model.labels, model.contract.embedding_dim)


def test_json_naming_a_folder_is_one_line_before_the_run(tmp_path, portrait, capsys):
    from edge_helpers import run_cli

    code, _, err = run_cli([portrait, "--models", ROOT / "tests" / "fixtures" / "tiny_models", "--no-window",
                            "--json", tmp_path], capsys)
    assert code == 1 and err.count("\n") == 1 and "is a folder" in err
    assert not list(tmp_path.iterdir())  # no .partial left behind
