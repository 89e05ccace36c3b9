"""benchmarks/faces.py: variety and stability of the lookalike answers for real faces.

Fast: the metrics on hand-made answers whose result is known, the committed tiny fixture
(tests/fixtures/tiny_models) for the report plumbing, the photos in ../shared/faces. The fixture's
numbers are not asserted (it is a random-weight model and may be regenerated), and no test asserts
that a goal is met: those are measurements for the report.
"""
from __future__ import annotations

import importlib.util

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.faces import (
    JITTER, PERTURBATIONS, FacesConfig, FaceSample, change_brightness, detect_faces, faces_from_folder,
    faces_section, goals, in_sample_note, lfw_sample, perturbed_inputs, shift_box, stability, stability_summary,
    variety,
)
from cli_checks import assert_one_line_error, run_cli
from edge.contract import InputContract, crop_face
from edge.faces import make_face_detector
from shared_paths import PORTRAIT, write_committed_photos

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_models"
CONTRACT = InputContract(labels=("a", "b", "c"), input_size=48)


def copy_models(destination: Path) -> Path:
    models = destination / "models"
    shutil.copytree(FIXTURE, models)
    return models


def centre_gallery(models: Path) -> None:
    """Give the copied fixture's gallery a face mean and a temperature, as training writes them."""
    with np.load(models / "gallery.npz") as data:
        labels, embeddings, made_by = data["labels"], data["embeddings"], data["model_sha256"]
    dim = embeddings.shape[1]
    np.savez(models / "gallery.npz", labels=labels, embeddings=embeddings, model_sha256=made_by,
             character_mean=embeddings.mean(0),
             face_mean=np.full(dim, 1.0 / np.sqrt(dim), np.float32), temperature=np.float32(0.05))


def shared_faces_folder(tmp_path: Path, blank: bool = True, broken: bool = True) -> Path:
    """The committed photos (four faces in three photos), plus a picture with no face and a file
    that is not an image."""
    folder = tmp_path / "faces"
    folder.mkdir()
    write_committed_photos(folder)
    if blank:
        cv2.imwrite(str(folder / "wall.png"), np.full((120, 160, 3), 200, np.uint8))
    if broken:
        (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


# --- the metrics --------------------------------------------------------------------------------------

def test_variety_of_a_constant_answer_is_one_character_for_everyone():
    result = variety(["guard"] * 7, characters=60)
    assert result["faces"] == 7
    assert result["most_frequent_share"] == 1.0
    assert result["distinct"] == 1
    assert result["distinct_share"] == pytest.approx(1 / 60)
    assert result["most_frequent"] == [{"label": "guard", "count": 7, "share": 1.0}]


def test_variety_orders_answers_by_count_then_name():
    result = variety(["b", "a", "b", "c", "d", "e", "f", "g"], characters=10, shown=5)
    assert result["most_frequent_share"] == 0.25
    assert result["distinct"] == 7 and result["distinct_share"] == 0.7
    assert [m["label"] for m in result["most_frequent"]] == ["b", "a", "c", "d", "e"]
    assert result["counts"]["b"] == 2 and sum(result["counts"].values()) == 8


def test_variety_of_all_different_answers():
    result = variety(list("abcd"), characters=4)
    assert result["most_frequent_share"] == 0.25 and result["distinct_share"] == 1.0


def test_stability_of_an_identity_change_is_one():
    answers = ["a", "b", "c"]
    assert stability(answers, [[a] for a in answers]) == 1.0
    summary = stability_summary(answers, {name: [[a] for a in answers] for name in PERTURBATIONS})
    assert all(value == 1.0 for value in summary.values()) and "mean" in summary


def test_stability_counts_changed_answers_and_shares_of_several_inputs():
    original = ["a", "b", "c", "d"]
    assert stability(original, [["a"], ["x"], ["c"], ["x"]]) == 0.5
    # Two jitter directions per face: one kept of two counts half.
    assert stability(original, [["a", "a"], ["b", "x"], ["x", "x"], ["d", "d"]]) == pytest.approx(2.5 / 4)
    summary = stability_summary(original, {"flip": [["a"], ["x"], ["c"], ["x"]], "darker": [[o] for o in original]})
    assert summary["flip"] == 0.5 and summary["darker"] == 1.0 and summary["mean"] == 0.75
    with pytest.raises(ValueError):
        stability(original, [["a"]])


def test_goals_compare_each_measurement_with_its_limit():
    collapsed = {"variety": variety(["x"] * 10, 20), "stability": {"mean": 1.0}}
    varied = {"variety": variety([f"c{i}" for i in range(10)], 20), "stability": {"mean": 0.5}}
    assert [g["met"] for g in goals(collapsed)] == [False, False, True]
    assert [g["met"] for g in goals(varied)] == [True, True, False]
    assert [g["value"] for g in goals(varied)] == [0.1, 0.5, 0.5]


# --- faces and their small changes ----------------------------------------------------------------------

def test_an_lfw_crop_becomes_a_100px_picture_with_the_face_at_its_centre():
    sample = lfw_sample(3, np.linspace(0, 1, 25 * 25).reshape(25, 25))
    assert sample.name == "lfw 3"
    assert sample.rgb.shape == (100, 100, 3) and sample.rgb.dtype == np.uint8
    assert sample.box == pytest.approx((10, 10, 80, 80))


def test_small_changes_give_model_inputs_of_the_contract():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    sample = FaceSample("noise", rgb, (50.0, 30.0, 40.0, 40.0))
    crop = crop_face(rgb, sample.box, CONTRACT)
    inputs = perturbed_inputs(sample, crop, CONTRACT)
    assert set(inputs) == set(PERTURBATIONS)
    assert len(inputs["jitter"]) == 2
    for images in inputs.values():
        for image in images:
            assert image.shape == (48, 48, 3) and image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
    assert np.array_equal(inputs["flip"][0], crop[:, ::-1])
    assert not np.array_equal(inputs["jitter"][0], crop)
    assert shift_box((10, 20, 100, 50), JITTER, -JITTER) == pytest.approx((13, 18.5, 100, 50))


def test_brightness_scales_pixels_and_clips():
    image = np.array([[[0, 100, 250]]], dtype=np.uint8)
    assert change_brightness(image, 1.1).tolist() == [[[0, 110, 255]]]
    assert change_brightness(image, 0.9).tolist() == [[[0, 90, 225]]]


def test_faces_are_found_left_to_right_and_pictures_without_one_are_counted(tmp_path):
    folder = shared_faces_folder(tmp_path)
    found = faces_from_folder(folder, make_face_detector(None))
    assert found.photos == 4  # three photos and the blank wall; the broken file is not a photo
    assert found.unreadable == ["broken.jpg"]
    assert "wall.png" in found.photos_without_face
    group = [s for s in found.samples if s.name.startswith("group.jpg #")]
    assert len(group) >= 2
    xs = [s.box[0] for s in group]
    assert xs == sorted(xs)
    for sample in found.samples:
        x, y, w, h = sample.box
        height, width = sample.rgb.shape[:2]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width + 1e-6 and y + h <= height + 1e-6


def test_detection_boxes_are_in_the_full_pictures_pixels():
    photo = cv2.cvtColor(cv2.imread(str(PORTRAIT)), cv2.COLOR_BGR2RGB)
    # A copy twice the size is shrunk for detection; the box must come back in the big picture's pixels.
    big = cv2.resize(photo, (photo.shape[1] * 2, photo.shape[0] * 2))
    small_box = detect_faces(photo, make_face_detector(None))[0]
    big_box = detect_faces(big, make_face_detector(None))[0]
    assert big_box[2] == pytest.approx(2 * small_box[2], rel=0.25)


def test_without_scikit_image_and_without_faces_the_section_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # "import skimage" now raises ImportError
    section = faces_section(FacesConfig(FIXTURE, show_progress=False))
    assert "scikit-image is not installed" in section["skipped"]


@pytest.mark.parametrize("most_frequent, distinct, stability, met", [
    (0.05, 0.6, 0.9, [True, True, True]),
    (0.10, 0.5, 0.8, [True, True, True]),  # the limits themselves count as met
    (0.5, 0.2, 0.3, [False, False, False]),
    (0.05, 0.2, None, [True, False, None]),  # stability not measured: neither met nor missed
])
def test_goals_are_judged_in_the_right_direction(most_frequent, distinct, stability, met):
    from benchmarks.faces import goals

    ranking = {"variety": {"most_frequent_share": most_frequent, "distinct_share": distinct},
               "stability": {"mean": stability}}
    assert [g["met"] for g in goals(ranking)] == met


def test_in_sample_note_when_the_face_mean_came_from_the_measured_faces(tmp_path):
    card = json.loads((FIXTURE / "model_card.json").read_text())

    def write_card(face_domain):
        (tmp_path / "model_card.json").write_text(json.dumps({**card, "face_domain": face_domain}))

    write_card({"source": str(tmp_path / "faces"), "faces": 12})
    assert in_sample_note(tmp_path, tmp_path / "faces")
    assert not in_sample_note(tmp_path, None) and not in_sample_note(tmp_path, tmp_path / "other")
    write_card({"source": "scikit-image lfw_subset", "faces": 100})
    assert in_sample_note(tmp_path, None)
    assert not in_sample_note(tmp_path / "absent", None)
    write_card(None)  # a card from before make train recorded its faces: nothing to tell
    assert not in_sample_note(tmp_path, None)


# --- the report -----------------------------------------------------------------------------------------

def test_faces_only_writes_the_section_with_a_per_face_table(tmp_path, capsys):
    models = copy_models(tmp_path)
    folder = shared_faces_folder(tmp_path)
    out = tmp_path / "reports"
    code, stdout, err = run_cli(["--models", models, "--out", out, "--faces-only", "--faces", folder, "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((out / "benchmark.json").read_text())
    faces = report["faces"]
    assert report["variants"] == [] and report["settings"]["faces_only"] is True
    assert faces["model"] == "lookalike_int8.tflite" and faces["detector"] == "haar"
    assert faces["faces"] == len(faces["per_face"]) >= 4
    assert faces["photos_without_face"] == ["wall.png"] and faces["unreadable"] == ["broken.jpg"]
    assert faces["primary"] in faces["rankings"]
    classifier = faces["rankings"]["classifier"]
    assert classifier["variety"]["faces"] == faces["faces"]
    assert classifier["variety"]["characters"] == len(report["labels"])
    assert set(classifier["stability"]) == set(PERTURBATIONS) | {"mean"}
    assert all(0.0 <= v <= 1.0 for v in classifier["stability"].values())
    assert len(classifier["goals"]) == 3
    assert all(isinstance(g["met"], bool) and g["value"] is not None for g in classifier["goals"])
    first = faces["per_face"][0]
    assert len(first["classifier"]) == 3 and all(0.0 <= r["score"] <= 1.0 for r in first["classifier"])

    markdown = (out / "benchmark.md").read_text()
    assert "## Real faces: variety and stability of the answers" in markdown
    assert "Top-3 per face" in markdown and "| astronaut.jpg " in markdown
    assert "## Camera pipeline" not in markdown and "p50 ms" not in markdown
    assert "| ranking " in stdout and "most frequent top-1" in stdout
    plotted = "faces_top1.png" in {p["file"] for p in report["plots"]}
    assert plotted == (importlib.util.find_spec("matplotlib") is not None)  # drawn wherever it can be
    if plotted:
        assert (out / "faces_top1.png").read_bytes().startswith(b"\x89PNG")
        assert "(faces_top1.png)" in markdown
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_a_centred_gallery_is_also_measured_with_the_face_mean_the_device_adapts(tmp_path, capsys):
    models = copy_models(tmp_path)
    centre_gallery(models)
    folder = shared_faces_folder(tmp_path, blank=False, broken=False)
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", models, "--out", out, "--faces-only", "--faces", folder, "--no-plots",
                            "--quiet"], capsys)
    assert code == 0, err
    faces = json.loads((out / "benchmark.json").read_text())["faces"]
    assert set(faces["rankings"]) == {"classifier", "gallery", "adapted"}
    assert faces["primary"] == "adapted" and faces["gallery"]["adaptive"] is True
    assert all(len(face["adapted"]) == 3 for face in faces["per_face"])
    # The first face is scored before anyone was seen: both gallery rankings agree on it.
    assert faces["per_face"][0]["adapted"] == faces["per_face"][0]["gallery"]
    markdown = (out / "benchmark.md").read_text()
    assert "| adapted (shown)" in markdown and "face mean following the faces seen" in markdown


def test_default_faces_are_scikit_images(tmp_path, capsys):
    pytest.importorskip("skimage")
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", FIXTURE, "--out", out, "--faces-only", "--no-plots", "--quiet"], capsys)
    assert code == 0, err
    faces = json.loads((out / "benchmark.json").read_text())["faces"]
    assert faces["source"].startswith("scikit-image")
    assert faces["faces"] >= 100  # the 100 LFW crops, plus the astronaut where the detector finds her
    assert len(faces["per_face"]) == faces["faces"]
    assert "Top-3 per face" not in (out / "benchmark.md").read_text()  # too many faces for a table


def test_a_full_run_carries_the_faces_section_beside_the_models(tmp_path, capsys):
    folder = shared_faces_folder(tmp_path, blank=False, broken=False)
    out = tmp_path / "reports"
    code, stdout, err = run_cli(["--models", FIXTURE, "--out", out, "--faces", folder, "--no-pipeline", "--no-plots",
                                 "--runs", "4", "--warmup", "1", "--threads", "1", "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((out / "benchmark.json").read_text())
    assert report["faces"]["faces"] >= 4 and len(report["variants"]) == 4
    markdown = (out / "benchmark.md").read_text()
    assert markdown.index("## Camera pipeline") < markdown.index("## Real faces")
    assert stdout.startswith("| model ")


def test_a_folder_without_faces_is_reported_not_measured(tmp_path, capsys):
    folder = tmp_path / "walls"
    folder.mkdir()
    cv2.imwrite(str(folder / "wall.png"), np.full((120, 160, 3), 200, np.uint8))
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", FIXTURE, "--out", out, "--faces-only", "--faces", folder, "--quiet"], capsys)
    assert code == 0, err
    faces = json.loads((out / "benchmark.json").read_text())["faces"]
    assert "no face found" in faces["skipped"] and faces["photos_without_face"] == ["wall.png"]
    assert "Not measured: no face found" in (out / "benchmark.md").read_text()


# --- bad input: one clear line, non-zero exit, nothing written -----------------------------------------

def test_a_faces_folder_that_does_not_exist_is_refused(tmp_path, capsys):
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", FIXTURE, "--out", out, "--faces-only", "--faces", tmp_path / "absent"], capsys)
    assert_one_line_error(code, err, "absent", "does not exist", "--faces")
    assert not out.exists() or not list(out.iterdir())


def test_a_faces_folder_without_images_is_refused(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no pictures here")
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", FIXTURE, "--out", out, "--faces", folder], capsys)
    assert_one_line_error(code, err, "notes", "has no images")
    assert not (out / "benchmark.json").exists()


def test_a_missing_variant_and_compare_with_faces_only_are_refused(tmp_path, capsys):
    models = copy_models(tmp_path)
    (models / "lookalike_int8.tflite").unlink()
    (models / "lookalike_int8.json").unlink()
    code, _, err = run_cli(["--models", models, "--out", tmp_path / "r", "--faces-only"], capsys)
    assert_one_line_error(code, err, "lookalike_int8.tflite", "--variant")
    code, _, err = run_cli(["--models", FIXTURE, "--out", tmp_path / "r", "--faces-only", "--compare",
                            tmp_path / "old.json"], capsys)
    assert_one_line_error(code, err, "--faces-only", "--compare")


def test_the_adaptive_matcher_counts_the_faces_it_measures():
    from benchmarks.faces import FaceSample, FaceSet, measure_faces
    from edge.matcher import LookalikeMatcher
    from edge.runtime import LookalikeModel
    from shared_paths import ROOT

    model = LookalikeModel(ROOT / "tests/fixtures/tiny_models/lookalike_int8.tflite")
    args = (model.path, model.sidecar, model.labels, model.contract.embedding_dim)
    matcher = LookalikeMatcher.from_sidecar(*args, adapt=False)
    device = LookalikeMatcher.from_sidecar(*args, adapt=True)
    rng = np.random.default_rng(0)
    samples = [FaceSample(f"f{i}", rng.integers(0, 255, (100, 100, 3), dtype=np.uint8), (20, 20, 60, 60)) for i in range(3)]
    measure_faces(FaceSet("test", samples), model, matcher, show_progress=False, adaptive=device)
    assert device.gallery.faces.count >= 1  # the device's face mean learned from what was measured
