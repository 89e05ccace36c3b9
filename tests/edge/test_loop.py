"""The camera loop driven end to end: a video made in the test, real photos, the card."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.live import RunOptions, run
from edge.pipeline import PipelineOptions
from edge.runtime import LookalikeModel, model_path
from edge.sources import Frame, FrameSource, open_source
from edge_helpers import check_record, leftovers, read_jsonl, run_cli


@pytest.fixture(scope="session")
def labels(tiny_models: Path) -> tuple[str, ...]:
    return LookalikeModel(model_path(tiny_models, "int8")).labels


def test_video_headless_writes_annotated_video_json_and_card(face_video, tiny_models, labels, tmp_path, capsys):
    out, results, card = tmp_path / "annotated.mp4", tmp_path / "results.jsonl", tmp_path / "card.png"
    code, stdout, stderr = run_cli(
        [face_video, "--models", tiny_models, "--no-window", "--output", out, "--json", results, "--card", card], capsys
    )
    assert code == 0, stderr
    records = read_jsonl(results)
    assert [r["source"] for r in records] == list(range(66))  # the video ended cleanly, every frame recorded
    for record in records:
        check_record(record, labels, (640, 480))
    with_face = [r for r in records[:60] if r["faces"]]
    assert len(with_face) >= 55, "the moving face should be found (detected or tracked) in nearly every frame"
    assert all(len(r["faces"]) == 1 for r in with_face)
    assert all(r["faces"] == [] for r in records[-4:]), "the empty frames at the end have no face"
    # Classification runs on some frames only; the others carry smoothed scores.
    fresh = sum(face["fresh"] for r in records for face in r["faces"])
    assert 0 < fresh < len(with_face)
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 66
    ok, frame = capture.read()
    assert ok and frame.shape == (480, 640, 3)
    capture.release()
    assert cv2.imread(str(card)) is not None
    assert leftovers(tmp_path) == []
    assert "66 frames" in stderr and "FPS" in stderr


def test_tracked_face_keeps_one_identity(face_video, tiny_models, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    code, _, stderr = run_cli([face_video, "--models", tiny_models, "--no-window", "--json", results, "--max-frames", 60], capsys)
    assert code == 0, stderr
    records = read_jsonl(results)
    assert sum(len(r["faces"]) == 1 for r in records) >= 57, "the face is in every frame: found in nearly all"
    tracks = {face["track"] for r in records for face in r["faces"]}
    assert 1 <= len(tracks) <= 2, f"one face should stay one track (got {sorted(tracks)})"


def test_detector_runs_every_n_frames_and_tracks_in_between(face_video, tiny_models, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    code, _, _ = run_cli([face_video, "--models", tiny_models, "--no-window", "--json", results,
                          "--max-frames", 48, "--detect-every", 8], capsys)
    assert code == 0
    records = read_jsonl(results)
    detected = [r["source"] for r in records if r["detected"]]
    assert len(detected) <= 12, f"detection should not run on most frames: {detected}"
    assert sum(1 for r in records if r["faces"]) >= 44


def test_photos_one_record_per_picture(portrait, group_photo, tiny_models, labels, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(portrait, folder / "a_portrait.jpg")
    shutil.copy(group_photo, folder / "b_group.jpg")
    results = tmp_path / "photos.jsonl"
    code, stdout, stderr = run_cli([folder, "--models", tiny_models, "--no-window", "--json", results], capsys)
    assert code == 0, stderr
    records = read_jsonl(results)
    assert [Path(r["source"]).name for r in records] == ["a_portrait.jpg", "b_group.jpg"]
    for record in records:
        check_record(record, labels)
    assert len(records[0]["faces"]) == 1
    assert len(records[1]["faces"]) >= 2  # two people side by side
    assert all(face["fresh"] for r in records for face in r["faces"])  # photos are never smoothed
    lines = stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(folder / "a_portrait.jpg"))


def test_folder_with_undecodable_picture_skips_counts_and_goes_on(portrait, tiny_models, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    shutil.copy(portrait, folder / "b_portrait.jpg")
    results = tmp_path / "r.jsonl"
    code, _, stderr = run_cli([folder, "--models", tiny_models, "--no-window", "--json", results], capsys)
    assert code == 0
    assert "skipped" in stderr and "a_broken.jpg" in stderr
    assert "1 picture could not be read" in stderr
    records = read_jsonl(results)
    assert records[0]["faces"] == [] and "decode" in records[0]["error"]
    assert len(records[1]["faces"]) == 1


class FlakyCamera(FrameSource):
    """A live source that drops every fourth frame, like a camera on a busy USB bus."""

    def __init__(self, video: Path, stop_with: BaseException | None = None, stop_after: int | None = None):
        self._inner = open_source(str(video))
        self._reads = 0
        self._stop_with, self._stop_after = stop_with, stop_after
        self.name = "flaky camera"

    def read(self) -> Frame:
        self._reads += 1
        if self._stop_after is not None and self._reads > self._stop_after:
            raise self._stop_with
        frame = self._inner.read()
        if not frame.end and self._reads % 4 == 0:
            return Frame(None, frame.label, error="camera read failed")
        return frame

    def close(self) -> None:
        self._inner.close()


def test_dropped_frames_are_counted_and_the_loop_keeps_going(face_video, tiny_models, tmp_path):
    options = RunOptions(models=tiny_models, show_window=False, json_path=tmp_path / "r.jsonl", quiet=True)
    summary = run(options, source=FlakyCamera(face_video))
    assert summary.stopped_by == "end"
    assert summary.dropped == 16 and summary.frames == 50
    records = read_jsonl(tmp_path / "r.jsonl")
    assert sum(1 for r in records if r.get("error")) == 16
    assert summary.frames_with_faces >= 40


def test_ctrl_c_keeps_the_finished_outputs(face_video, tiny_models, tmp_path):
    options = RunOptions(models=tiny_models, show_window=False, json_path=tmp_path / "r.jsonl",
                         output=tmp_path / "a.mp4", quiet=True)
    summary = run(options, source=FlakyCamera(face_video, KeyboardInterrupt(), stop_after=12))
    assert summary.stopped_by == "interrupt"
    assert len(read_jsonl(tmp_path / "r.jsonl")) == 12  # 9 frames + 3 dropped-frame records
    assert (tmp_path / "a.mp4").is_file() and leftovers(tmp_path) == []


def test_a_bug_mid_run_leaves_no_half_written_file(face_video, tiny_models, tmp_path):
    options = RunOptions(models=tiny_models, show_window=False, json_path=tmp_path / "r.jsonl",
                         output=tmp_path / "a.mp4", quiet=True)
    with pytest.raises(ZeroDivisionError):
        run(options, source=FlakyCamera(face_video, ZeroDivisionError(), stop_after=5))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_single_photo_card(portrait, tiny_models, tmp_path, capsys):
    card = tmp_path / "card.png"
    code, stdout, stderr = run_cli([portrait, "--models", tiny_models, "--card", card, "--no-window"], capsys)
    assert code == 0, stderr
    image = cv2.imread(str(card))
    assert image is not None and image.shape[1] == 720 and image.shape[0] > 400
    assert stdout.startswith(f"{portrait}: face at")
    assert f"wrote {card}" in stderr


def test_annotated_single_photo_as_image(group_photo, tiny_models, tmp_path, capsys):
    out = tmp_path / "group_annotated.jpg"
    code, _, stderr = run_cli([group_photo, "--models", tiny_models, "--no-window", "--output", out], capsys)
    assert code == 0, stderr
    annotated, original = cv2.imread(str(out)), cv2.imread(str(group_photo))
    assert annotated.shape == original.shape
    assert np.mean(np.abs(annotated.astype(int) - original.astype(int))) > 1.0  # boxes and panels were drawn


def test_no_face_in_view_is_reported(tiny_models, tmp_path, capsys):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 128, np.uint8))
    out, results = tmp_path / "wall_annotated.png", tmp_path / "r.jsonl"
    code, stdout, _ = run_cli([blank, "--models", tiny_models, "--no-window", "--output", out, "--json", results], capsys)
    assert code == 0
    assert stdout.strip() == f"{blank}: no face found"
    assert read_jsonl(results)[0]["faces"] == []
    drawn = cv2.imread(str(out))
    assert np.any(drawn[-60:] != 128), "the 'No face in view' banner is drawn at the bottom"


def test_full_frame_classifies_the_whole_picture(portrait, tiny_models, labels, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    code, _, stderr = run_cli([portrait, "--models", tiny_models, "--no-window", "--full-frame", "--json", results], capsys)
    assert code == 0, stderr
    record = read_jsonl(results)[0]
    check_record(record, labels)
    height, width = cv2.imread(str(portrait)).shape[:2]
    assert [face["box"] for face in record["faces"]] == [[0, 0, width, height]]


@pytest.mark.parametrize("variant", ["float32", "float16", "dynamic", "int8"])
def test_every_variant_runs(variant, portrait, tiny_models, labels, tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    code, _, stderr = run_cli([portrait, "--models", tiny_models, "--variant", variant, "--no-window", "--json", results], capsys)
    assert code == 0, stderr
    record = read_jsonl(results)[0]
    check_record(record, labels)
    assert len(record["faces"]) == 1, "every variant finds and ranks the one face"


def test_astronaut_without_scikit_image_is_one_line(tiny_models, tmp_path, capsys):
    """scikit-image is a workstation extra: in the device venv one line says so (the photo itself is
    used in tests/test_workstation_extras.py)."""
    import importlib.util

    if importlib.util.find_spec("skimage") is not None:
        pytest.skip("scikit-image is installed here: tests/test_workstation_extras.py covers --astronaut")
    card = tmp_path / "card.png"
    code, stdout, stderr = run_cli(["--astronaut", "--models", tiny_models, "--card", card, "--no-window"], capsys)
    assert code == 1 and stderr.strip().startswith("error: --astronaut needs scikit-image")
    assert len(stderr.strip().splitlines()) == 1 and not card.exists()


def test_run_returns_its_summary_as_data(face_video, tiny_models):
    options = RunOptions(source=str(face_video), models=tiny_models, show_window=False, max_frames=20, quiet=True,
                         pipeline=PipelineOptions(classify_every=2))
    summary = run(options)
    assert summary.frames == 20 and summary.stopped_by == "max_frames"
    assert summary.classifications >= 5
    assert summary.mean_ms["classify"] > 0 and summary.mean_ms["total"] >= summary.mean_ms["classify"]
    assert summary.peak_rss_mb > 0 and summary.fps > 0
    assert summary.interpreter in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


class ScriptedWindow:
    """Stands in for the OpenCV window (this OpenCV may have no GUI): plays a script of keys."""

    instances: list["ScriptedWindow"] = []

    def __init__(self, keys):
        self.keys = list(keys)
        self.shown = 0
        self.waits: list[int] = []
        ScriptedWindow.instances.append(self)

    def show(self, bgr, wait_ms):
        assert bgr.ndim == 3
        self.shown += 1
        self.waits.append(wait_ms)
        return self.keys.pop(0) if self.keys else -1

    def close(self):
        pass


def test_window_keys_pause_save_and_quit(face_video, tiny_models, tmp_path, monkeypatch):
    import edge.live

    # frame 0, 1: nothing; frame 2: space (pause) -> two idle polls -> space (resume);
    # frame 3: s (card); frame 4: q.
    keys = [-1, -1, ord(" "), -1, -1, ord(" "), ord("s"), ord("q")]
    monkeypatch.setattr(edge.live, "Window", lambda: ScriptedWindow(keys))
    card = tmp_path / "card.png"
    options = RunOptions(source=str(face_video), models=tiny_models, show_window=True, card=card, quiet=True)
    summary = run(options)
    window = ScriptedWindow.instances[-1]
    assert summary.stopped_by == "user" and summary.frames == 5
    assert window.shown == 8  # five frames + two idle polls while paused + the resume key
    assert window.waits[3:5] == [50, 50]  # paused: poll for keys, do not read frames
    assert card.is_file()


def test_window_waits_for_a_key_on_each_photo(portrait, group_photo, tiny_models, tmp_path, monkeypatch):
    import edge.live

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(portrait, folder / "a.jpg")
    shutil.copy(group_photo, folder / "b.jpg")
    monkeypatch.setattr(edge.live, "Window", lambda: ScriptedWindow([ord("n"), ord("n")]))
    summary = run(RunOptions(source=str(folder), models=tiny_models, quiet=True))
    window = ScriptedWindow.instances[-1]
    assert summary.frames == 2 and summary.stopped_by == "end"
    assert window.waits == [0, 0]  # a photo stays until a key is pressed


def test_truncated_video_finishes_cleanly_with_what_it_could_read(portrait, tiny_models, tmp_path, capsys):
    """A half-copied file: the frames that are there are processed, the missing ones counted."""
    from edge.video import write_test_video

    whole = write_test_video(tmp_path / "whole.avi", portrait, frames=30)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    results = tmp_path / "r.jsonl"
    code, _, stderr = run_cli([cut, "--models", tiny_models, "--no-window", "--json", results], capsys)
    assert code == 0, stderr
    records = read_jsonl(results)
    read = [r for r in records if "error" not in r]
    assert 10 <= len(read) < 30
    assert "could not be read and were skipped" in stderr
