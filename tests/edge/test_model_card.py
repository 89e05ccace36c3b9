"""edge.model_card: the one reader of models/model_card.json (strict, one-line errors, path resolution).

Runs in the device-only venv too: the card reader imports no TensorFlow.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.artifacts import MODEL_CARD_FILE
from edge.model_card import CARD_VERSION, PROJECT_ROOT, FaceDomain, ModelCard, ModelCardError, read_model_card


class OtherError(RuntimeError):
    pass


@pytest.fixture
def card_dict(tiny_models: Path) -> dict:
    """The committed fixture's card, as make train writes it, to change in a test."""
    return json.loads((tiny_models / MODEL_CARD_FILE).read_text())


def refused(card: dict, tmp_path: Path) -> str:
    """Write ``card`` and read it: it must be refused with one line; that line."""
    (tmp_path / MODEL_CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelCardError) as caught:
        read_model_card(tmp_path)
    line = str(caught.value)
    assert "\n" not in line and str(tmp_path / MODEL_CARD_FILE) in line
    return line


def test_the_committed_card_reads_into_typed_fields(tiny_models):
    card = read_model_card(tiny_models)
    assert card.format_version == CARD_VERSION and card.path == tiny_models / MODEL_CARD_FILE
    assert card.labels == ("astronaut", "superhero", "vampire") == card.contract.labels
    assert card.contract.input_size == 48
    assert card.data.seed == 1234 and card.data.val_split is None
    assert len(card.data.train_files) == 108 and all(isinstance(name, str) for name in card.data.val_files)
    assert card.face_domain is None  # the fixture's card does not record one


@pytest.mark.parametrize("drop, expected", [
    ("labels", "labels must be a list, got nothing: run 'make train' again"),
    ("contract", "no 'contract' section: run 'make train' again"),
    ("data", "no 'data' section: run 'make train' again"),
    ("data.seed", "no data.seed: run 'make train' again"),
    ("data.val_split", "no data.val_split: run 'make train' again"),
    ("contract.embedding_dim", "bad input contract (input contract lacks embedding_dim"),
])
def test_a_missing_field_is_refused_not_filled_in(card_dict, tmp_path, drop, expected):
    section, _, key = drop.rpartition(".")
    del (card_dict[section] if section else card_dict)[key]
    assert expected in refused(card_dict, tmp_path)


@pytest.mark.parametrize("change, expected", [
    ({"labels": "astronaut superhero vampire"}, "labels must be a list, got str"),
    ({"labels": ["astronaut", 7, "vampire"]}, "labels holds 7, not a name"),
    ({"data.seed": "1234"}, "data.seed must be a whole number, got '1234'"),
    ({"data.seed": True}, "data.seed must be a whole number, got True"),
    ({"data.val_split": 1.5}, "data.val_split must be a share between 0 and 1 or null, got 1.5"),
    ({"data.train_files": "data/a.png"}, "data.train_files must be a list, got str"),
    ({"data.val": None}, "data.val must be a list, got nothing"),
    ({"face_domain": {"source": "faces/"}}, "face_domain must be an object with 'source' and 'faces'"),
    ({"face_domain": {"source": "faces/", "faces": "many"}}, "face_domain.faces must be a count, got 'many'"),
    ({"format_version": "1"}, "format version '1' is not 1"),
])
def test_a_field_of_the_wrong_type_is_refused(card_dict, tmp_path, change, expected):
    for dotted, value in change.items():
        section, _, key = dotted.rpartition(".")
        (card_dict[section] if section else card_dict)[key] = value
    line = refused(card_dict, tmp_path)
    assert expected in line and line.endswith("run 'make train' again")


@pytest.mark.parametrize("version", [0, CARD_VERSION + 1, None])
def test_another_format_version_is_refused(card_dict, tmp_path, version):
    if version is None:
        del card_dict["format_version"]
    else:
        card_dict["format_version"] = version
    line = refused(card_dict, tmp_path)
    assert f"format version {version!r} is not {CARD_VERSION}" in line and "run 'make train' again" in line


def test_labels_that_are_not_the_contracts_are_refused(card_dict, tmp_path):
    card_dict["labels"] = ["astronaut", "vampire", "superhero"]
    assert "labels (3 classes) do not match its input contract" in refused(card_dict, tmp_path)


def test_a_missing_or_broken_card_raises_the_callers_error(tmp_path):
    with pytest.raises(OtherError, match=r"model_card.json is missing .*run 'make train' first"):
        read_model_card(tmp_path, OtherError)
    (tmp_path / MODEL_CARD_FILE).write_text("{not json")
    with pytest.raises(OtherError, match="is not valid JSON .*run 'make train' again"):
        read_model_card(tmp_path, OtherError)
    (tmp_path / MODEL_CARD_FILE).write_text("[1, 2]")
    with pytest.raises(OtherError, match="is not a JSON object"):
        read_model_card(tmp_path, OtherError)


def test_fields_added_later_are_none_when_not_recorded(card_dict, tmp_path):
    del card_dict["data"]["train_files"], card_dict["data"]["val_files"]
    card_dict["face_domain"] = {"source": None, "faces": 0}  # make train found no face
    card = ModelCard.from_dict(card_dict, tmp_path / MODEL_CARD_FILE)
    assert card.data.train_files is None and card.image_files("train") is None and card.image_files("val") is None
    assert card.face_domain == FaceDomain(None, 0)


# --- the card's file lists as paths ------------------------------------------------------------------

def test_relative_file_lists_are_found_from_the_project_whatever_the_current_folder(tiny_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of the project here
    card = read_model_card(tiny_models)
    files = card.image_files("val")
    assert len(files) == len(card.data.val_files) == 54
    assert files[0] == PROJECT_ROOT / card.data.val_files[0] and all(path.is_file() for path in files)


def test_relative_paths_resolve_current_folder_first_then_beside_the_models_folder(card_dict, tmp_path, monkeypatch):
    project = tmp_path / "copied_project"
    (project / "pictures" / "elf").mkdir(parents=True)
    (project / "pictures" / "elf" / "1.png").write_bytes(b"png")
    here = tmp_path / "elsewhere"
    (here / "pictures" / "elf").mkdir(parents=True)
    card_dict["data"]["val_files"] = ["pictures/elf/1.png", "pictures/elf/2.png", str(tmp_path / "abs.png")]
    card = ModelCard.from_dict(card_dict, project / "models" / MODEL_CARD_FILE)
    monkeypatch.chdir(tmp_path)
    # Not in the current folder nor the project: the folder that holds models/ has it.
    assert card.resolve("pictures/elf/1.png") == project / "pictures" / "elf" / "1.png"
    (here / "pictures" / "elf" / "1.png").write_bytes(b"png")
    monkeypatch.chdir(here)
    assert card.resolve("pictures/elf/1.png") == here / "pictures" / "elf" / "1.png"  # the current folder first
    # Found nowhere: named from the current folder, for the error message; absolute paths stay as written.
    assert card.image_files("val")[1:] == (here / "pictures" / "elf" / "2.png", tmp_path / "abs.png")
