"""Enrolled characters and the state folder: ``python -m edge enroll``, --state, --reset-state."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.live import RunOptions, make_matcher
from edge.matcher import FaceDomain
from edge.overlay import CharacterPictures
from edge.pipeline import PipelineOptions
from edge.runtime import LookalikeModel, model_path
from edge.sources import Frame, FrameSource
from edge.state import ENROLLED_PREFIX, StateFolder, StateKeeper, check_name
from edge.style_domain import StyleStatistics
from edge_helpers import one_error_line, read_jsonl, run_cli


def enroll(args: list, capsys) -> tuple[int, str, str]:
    return run_cli(["enroll", *args], capsys)


def one_error(result: tuple[int, str, str]) -> str:
    code, _, err = result
    return one_error_line(code, err)


@pytest.fixture
def drawings(tmp_path: Path) -> list[Path]:
    """Three pictures of a new character (a drawn robot, in three colours)."""
    paths = []
    for i, colour in enumerate([(40, 40, 200), (40, 160, 220), (60, 60, 160)]):
        image = np.full((120, 120, 3), 255, np.uint8)
        cv2.rectangle(image, (30, 20), (90, 100), colour, -1)
        cv2.circle(image, (45 + i, 50), 8, (255, 255, 255), -1)
        cv2.circle(image, (75 - i, 50), 8, (255, 255, 255), -1)
        path = tmp_path / f"robot{i}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_enrolled_character_is_matched_listed_and_removed(tiny_models, drawings, private_state, capsys, tmp_path):
    code, out, err = enroll(["Robot", *drawings, "--models", tiny_models], capsys)
    assert code == 0, err
    assert "enrolled Robot from 3 pictures" in out and "closest trained characters" in out
    assert len(list((private_state / "enrolled" / "Robot").glob("*.png"))) == 3
    code, out, _ = enroll(["--list"], capsys)
    assert code == 0 and "Robot: 3 pictures" in out

    results = tmp_path / "out.jsonl"
    code, _, err = run_cli([drawings[0], "--models", tiny_models, "--full-frame", "--no-window", "--json", results],
                           capsys)
    assert code == 0, err
    face = read_jsonl(results)[0]["faces"][0]
    assert face["method"] == "gallery"  # the classifier cannot name an enrolled character
    assert face["top"][0]["label"] == "Robot" and face["picture"].startswith(ENROLLED_PREFIX + "Robot/")
    # The card and the overlay show the enrolled picture itself.
    shown = CharacterPictures(tiny_models / "characters", private_state / "enrolled").picture("Robot", 64, face["picture"])
    stored = cv2.imread(str(private_state / "enrolled" / face["picture"][len(ENROLLED_PREFIX):]))
    assert shown is not None and np.abs(shown.astype(int) - cv2.resize(stored, (64, 64), interpolation=cv2.INTER_AREA)).max() <= 1
    card = tmp_path / "card.png"
    code, _, err = run_cli([drawings[0], "--models", tiny_models, "--full-frame", "--no-window", "--card", card], capsys)
    assert code == 0 and cv2.imread(str(card)) is not None, err

    code, out, _ = enroll(["--remove", "Robot"], capsys)
    assert code == 0 and not (private_state / "enrolled" / "Robot").exists()
    code, _, err = run_cli([drawings[0], "--models", tiny_models, "--full-frame", "--no-window", "--json", results],
                           capsys)
    face = read_jsonl(results)[0]["faces"][0]
    assert code == 0 and face["method"] == "classifier" and face["top"][0]["label"] != "Robot"
    assert "not enrolled" in one_error(enroll(["--remove", "Robot"], capsys))


def test_a_trained_name_needs_replace(tiny_models, drawings, capsys):
    line = one_error(enroll(["vampire", *drawings, "--models", tiny_models], capsys))
    assert "trained character" in line and "--replace" in line
    code, _, err = enroll(["vampire", *drawings, "--models", tiny_models, "--replace"], capsys)
    assert code == 0, err
    model = LookalikeModel(model_path(tiny_models, "int8"))
    matcher, enrolled = make_matcher(model, RunOptions(models=tiny_models), StateFolder())
    assert matcher.gallery.labels.count("vampire") == 1 and enrolled.names == ("vampire",)
    owners = matcher.gallery.pictures.owners[[f.startswith(ENROLLED_PREFIX) for f in matcher.gallery.pictures.files]]
    assert set(owners) == {matcher.gallery.labels.index("vampire")}
    # the trained vampire's own pictures are gone with its row
    assert not any(f.startswith("vampire/") for f in matcher.gallery.pictures.files)


def test_enrolling_the_same_name_twice_needs_replace(tiny_models, drawings, private_state, capsys):
    assert enroll(["Robot", *drawings, "--models", tiny_models], capsys)[0] == 0
    assert "already enrolled" in one_error(enroll(["Robot", drawings[0], "--models", tiny_models], capsys))
    assert enroll(["Robot", drawings[0], "--models", tiny_models, "--replace"], capsys)[0] == 0
    assert len(list((private_state / "enrolled" / "Robot").glob("*.png"))) == 1  # the old pictures went


@pytest.mark.parametrize("name", ["../evil", "a/b", "back\\slash", ".hidden", "", "x" * 80])
def test_names_with_path_characters_are_refused(tiny_models, drawings, name, capsys):
    line = one_error(enroll([name, *drawings, "--models", tiny_models], capsys))
    assert "name" in line


def test_names_in_any_script_are_accepted():
    assert check_name("Zoë") == "Zoë" and check_name("孫悟空") == "孫悟空" and check_name("Mr. Bean (2)") == "Mr. Bean (2)"


def test_pictures_that_are_not_images(tiny_models, tmp_path, drawings, capsys, private_state):
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    line = one_error(enroll(["Robot", junk, "--models", tiny_models], capsys))
    assert "none of the 1 pictures" in line
    assert not (private_state / "enrolled.json").exists()
    code, out, err = enroll(["Robot", junk, drawings[0], "--models", tiny_models], capsys)
    assert code == 0 and "skipped" in err and "from 1 picture " in out
    assert "does not exist" in one_error(enroll(["Robot2", tmp_path / "nowhere.png", "--models", tiny_models], capsys))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no pictures" in one_error(enroll(["Robot3", empty, "--models", tiny_models], capsys))


def test_unknown_trait_is_refused(tiny_models, drawings, capsys):
    assert "unknown trait" in one_error(enroll(["Robot", *drawings, "--traits", "wings", "--models", tiny_models],
                                               capsys))


def test_state_folder_that_cannot_be_written(tiny_models, drawings, tmp_path, capsys):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert "not a folder" in one_error(enroll(["Robot", *drawings, "--state", afile, "--models", tiny_models], capsys))
    # /proc refuses new folders even to root: the check does not rely on permission bits
    line = one_error(enroll(["Robot", *drawings, "--state", "/proc/lookalike-state", "--models", tiny_models], capsys))
    assert "/proc/lookalike-state" in line
    line = one_error(run_cli([drawings[0], "--models", tiny_models, "--no-window", "--full-frame",
                              "--state", "/proc/lookalike-state", "--reset-state"], capsys))
    assert "--state" in line


def test_damaged_index_warns_at_run_and_stops_enrolment(tiny_models, drawings, private_state, capsys):
    assert enroll(["Robot", *drawings, "--models", tiny_models], capsys)[0] == 0
    (private_state / "enrolled.json").write_text('{"version": 1, "characters": [{"name": ')
    code, out, err = run_cli([drawings[0], "--models", tiny_models, "--no-window", "--full-frame"], capsys)
    assert code == 0 and "enrolled.json is damaged" in err and "Robot" not in out
    line = one_error(enroll(["Other", drawings[0], "--models", tiny_models], capsys))
    assert "damaged" in line
    assert (private_state / "enrolled.json").read_text().startswith('{"version": 1, "characters": [{"name": ')


def test_reset_state_forgets_everything(tiny_models, drawings, private_state, capsys):
    assert enroll(["Robot", *drawings, "--models", tiny_models], capsys)[0] == 0
    learned = ("face_mean.json", "style_faces.json", "style_drawings.json")
    for name in learned:
        (private_state / name).write_text("{}")
    code, _, err = run_cli([drawings[0], "--models", tiny_models, "--no-window", "--full-frame", "--reset-state"], capsys)
    assert code == 0 and "state reset" in err and "style_drawings.json" in err
    assert not (private_state / "enrolled.json").exists()
    assert not any((private_state / name).exists() for name in learned)
    assert not (private_state / "enrolled").exists()


def test_a_running_loop_picks_up_a_new_enrolment(tiny_models, drawings, capsys):
    model = LookalikeModel(model_path(tiny_models, "int8"))
    state = StateFolder()
    options = RunOptions(models=tiny_models, pipeline=PipelineOptions(full_frame=True))
    matcher, enrolled = make_matcher(model, options, state)
    assert enrolled.names == () and matcher.primary == "classifier"
    enrolled.interval_s = 0.0
    assert enrolled.refresh(matcher.gallery) is None  # nothing changed
    assert enroll(["Robot", *drawings, "--models", tiny_models], capsys)[0] == 0
    refreshed = enrolled.refresh(matcher.gallery)
    assert refreshed is not None and refreshed.labels[-1] == "Robot" and len(refreshed.labels) == len(model.labels) + 1
    assert refreshed.pictures.characters == len(refreshed.labels)


# --- the face mean a camera learns ------------------------------------------------------------


def test_face_mean_survives_a_restart(private_state):
    shipped = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    domain = FaceDomain(shipped)
    keeper = StateKeeper(StateFolder(), model="abc")
    assert keeper.keep_face_mean(domain) == 0
    for vector in ([0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]):
        assert domain.observe(np.array(vector, np.float32))
    keeper.maybe_save()  # within the save interval: not yet
    assert not (private_state / "face_mean.json").exists()
    keeper.maybe_save(force=True)
    saved = json.loads((private_state / "face_mean.json").read_text())
    assert saved["count"] == 2 and saved["model"] == "abc"

    again = FaceDomain(shipped)
    assert StateKeeper(StateFolder(), model="abc").keep_face_mean(again) == 2
    assert again.count == 2 and np.allclose(again.mean, domain.mean, atol=1e-6)


def test_face_mean_of_another_model_or_damaged_gives_the_shipped_one(private_state, capsys):
    shipped = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    domain = FaceDomain(shipped)
    domain.observe(np.array([0.0, 1.0, 0.0, 0.0], np.float32))
    StateFolder().save_face_mean(domain.mean, domain.count, "old-model")
    fresh = FaceDomain(shipped)
    StateKeeper(StateFolder(), model="new-model").keep_face_mean(fresh)
    assert fresh.count == 0 and np.array_equal(fresh.mean, shipped)
    assert "another model" in capsys.readouterr().err
    for damage in ("{not json", '{"version": 1, "model": "m", "count": 1, "mean": [1, 2]}', '{"version": 7}'):
        (private_state / "face_mean.json").write_text(damage)
        fresh = FaceDomain(shipped)
        StateKeeper(StateFolder(), model="m").keep_face_mean(fresh)
        assert fresh.count == 0 and np.array_equal(fresh.mean, shipped)
        assert "damaged" in capsys.readouterr().err


# --- the classifier's statistics a camera learns -------------------------------------------------


def _pictures_seen(count: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    """Features of ``count`` different pictures of one style (shifted and stretched from the prior)."""
    return np.random.default_rng(seed).normal(2.0, 3.0, (count, dim))


def test_style_statistics_survive_a_restart(private_state):
    statistics = StyleStatistics(4, prior=5)
    keeper = StateKeeper(StateFolder(), model="abc")
    assert keeper.keep_style(statistics, "faces") == 0
    for z in _pictures_seen(6):
        assert statistics.observe(z)
    keeper.maybe_save()  # within the save interval: not yet
    assert not (private_state / "style_faces.json").exists()
    keeper.maybe_save(force=True)
    saved = json.loads((private_state / "style_faces.json").read_text())
    assert saved["count"] == 6 and saved["model"] == "abc" and saved["version"] == 1
    (private_state / "style_faces.json").unlink()
    keeper.maybe_save(force=True)  # nothing new counted since: nothing written
    assert not (private_state / "style_faces.json").exists()
    assert statistics.observe(_pictures_seen(1, seed=5)[0])
    keeper.maybe_save(force=True)
    saved = json.loads((private_state / "style_faces.json").read_text())
    assert saved["count"] == 7

    again = StyleStatistics(4, prior=5)
    assert StateKeeper(StateFolder(), model="abc").keep_style(again, "faces") == 7
    assert again.count == 7 and np.array_equal(again.mean, statistics.mean)
    assert np.array_equal(again.second, statistics.second)
    picture = np.array([1.0, -1.0, 4.0, 0.0])
    np.testing.assert_array_equal(again.standardise(picture), statistics.standardise(picture))


def test_one_keeper_keeps_the_face_mean_and_the_statistics(private_state):
    domain = FaceDomain(np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    statistics = StyleStatistics(4, prior=5)
    keeper = StateKeeper(StateFolder(), model="abc")
    keeper.keep_face_mean(domain)
    keeper.keep_style(statistics, "faces")
    statistics.observe(_pictures_seen(1)[0])  # only the statistics counted something: only they are written
    keeper.maybe_save(force=True)
    assert (private_state / "style_faces.json").exists() and not (private_state / "face_mean.json").exists()
    domain.observe(np.array([0.0, 1.0, 0.0, 0.0], np.float32))
    keeper.maybe_save(force=True)
    assert json.loads((private_state / "face_mean.json").read_text())["count"] == 1


def test_style_statistics_of_another_model_or_damaged_give_the_prior(private_state, capsys):
    learnt = StyleStatistics(4)
    for z in _pictures_seen(3):
        learnt.observe(z)
    StateFolder().save_style_statistics(learnt, "faces", "old-model")
    fresh = StyleStatistics(4)
    assert StateKeeper(StateFolder(), model="new-model").keep_style(fresh, "faces") == 0
    assert fresh.count == 0 and np.array_equal(fresh.mean, np.zeros(4)) and np.array_equal(fresh.second, np.ones(4))
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "another model" in err and "style_faces.json" in err
    good = '"model": "m", "count": 3, "mean": [0, 0, 0, 0], "second": [1, 1, 1, 1]'
    for damage in ("{not json", "[1, 2]", '{"version": 7}', '{"version": 1, "model": "m", "count": 3}',
                   '{"version": 1, ' + good.replace("[0, 0, 0, 0]", "[0, 0]") + "}",
                   '{"version": 1, ' + good.replace("[0, 0, 0, 0]", "[0, NaN, 0, 0]") + "}",
                   '{"version": 1, ' + good.replace('"count": 3', '"count": -3') + "}",
                   '{"version": 1, ' + good.replace('"count": 3', '"count": "many"') + "}"):
        (private_state / "style_faces.json").write_text(damage)
        fresh = StyleStatistics(4)
        assert StateKeeper(StateFolder(), model="m").keep_style(fresh, "faces") == 0
        assert fresh.count == 0 and np.array_equal(fresh.mean, np.zeros(4)) and np.array_equal(fresh.second, np.ones(4))
        err = capsys.readouterr().err
        assert err.count("warning:") == 1 and "damaged" in err, damage
        assert (private_state / "style_faces.json").read_text() == damage  # never deleted: --reset-state does that
    (private_state / "style_faces.json").write_text('{"version": 1, ' + good + "}")  # the undamaged one is read
    assert StateKeeper(StateFolder(), model="m").keep_style(StyleStatistics(4), "faces") == 3


def test_drawings_and_faces_learn_apart(private_state, capsys):
    faces, drawings = StyleStatistics(4), StyleStatistics(4)
    StateKeeper(StateFolder(), model="m").keep_style(faces, "faces")
    for z in _pictures_seen(5, seed=1):
        faces.observe(z)
    StateFolder().save_style_statistics(faces, "faces", "m")
    keeper = StateKeeper(StateFolder(), model="m")
    assert keeper.keep_style(drawings, "drawings") == 0  # the faces seen say nothing about drawings
    for z in _pictures_seen(2, seed=2) * 10.0:
        drawings.observe(z)
    keeper.maybe_save(force=True)
    assert json.loads((private_state / "style_drawings.json").read_text())["count"] == 2
    assert json.loads((private_state / "style_faces.json").read_text())["count"] == 5  # untouched
    restored = StyleStatistics(4)
    assert StateKeeper(StateFolder(), model="m").keep_style(restored, "faces") == 5
    assert np.array_equal(restored.mean, faces.mean)
    with pytest.raises(ValueError, match="faces, drawings"):
        StateFolder().save_style_statistics(faces, "photos", "m")
    assert capsys.readouterr().err == ""


class _LiveVideo(FrameSource):
    """A recorded clip that says it is a camera (frames at the camera's pace)."""

    live = True
    name = "camera (recorded)"

    def __init__(self, path: Path):
        self._capture = cv2.VideoCapture(str(path))
        self._index = 0

    def read(self):
        ok, image = self._capture.read()
        self._index += 1
        return Frame(image, self._index) if ok else Frame(None, self._index, end=True)

    def close(self):
        self._capture.release()


def test_a_camera_run_keeps_what_it_learned_and_a_video_file_does_not(tiny_models, face_video, private_state):
    from edge.live import run

    run(RunOptions(source=str(face_video), models=tiny_models, show_window=False, quiet=True))
    assert not list(private_state.iterdir())  # a video file is not this camera's people
    run(RunOptions(models=tiny_models, show_window=False, quiet=True), source=_LiveVideo(face_video))
    saved = json.loads((private_state / "face_mean.json").read_text())
    model = LookalikeModel(model_path(tiny_models, "int8"))
    assert saved["count"] >= 1 and saved["model"] == model.sidecar.tflite_sha256
    matcher, _ = make_matcher(model, RunOptions(models=tiny_models))
    assert not np.allclose(saved["mean"], matcher.gallery.face_mean, atol=1e-4)  # it learned something
    style = json.loads((private_state / "style_faces.json").read_text())
    assert style["count"] >= 1 and style["model"] == model.sidecar.tflite_sha256
    assert not (private_state / "style_drawings.json").exists()

    # The next camera run starts where this one stopped, and goes on counting.
    run(RunOptions(models=tiny_models, show_window=False, quiet=True, max_frames=20), source=_LiveVideo(face_video))
    assert json.loads((private_state / "style_faces.json").read_text())["count"] > style["count"]
