"""The face detector the device picks by itself: YuNet once fetched or installed, Haar otherwise.

``python -m edge detector --fetch`` is tested against a web server on this machine serving a YuNet
file (the tests have no internet): the download path is the real one, only the address differs.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import detector_store
from edge.faces import STILL_DETECT_WIDTH, DetectorError, HaarFaceDetector, YuNetFaceDetector, find_faces, make_face_detector
from edge.pipeline import LookalikePipeline, PipelineOptions
from edge_helpers import one_error_line, run_cli
from shared_paths import FACES, YUNET, need


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("LOOKALIKE_CACHE", str(folder))
    return folder


@pytest.fixture
def served(tmp_path):
    """A web server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


# --- what auto picks (without a real YuNet: a fresh clone runs these) -----------------------------------

def test_auto_is_haar_with_an_empty_cache(cache):
    detector = make_face_detector("auto")
    assert isinstance(detector, HaarFaceDetector)
    assert "--fetch" in detector_store.describe()
    assert make_face_detector(None).name == "haar"


def test_auto_chooses_the_cached_file_and_the_environment_wins(cache, monkeypatch):
    cache.mkdir()
    (cache / "face_detection_yunet_old.onnx").write_bytes(b"x")
    newest = cache / "face_detection_yunet_new.onnx"
    newest.write_bytes(b"x")
    os.utime(cache / "face_detection_yunet_old.onnx", (1, 1))
    assert detector_store.auto_choice().path == newest
    monkeypatch.setenv(detector_store.DETECTOR_ENV, "auto")
    assert detector_store.auto_choice().path == newest  # auto in the environment is auto
    monkeypatch.setenv(detector_store.DETECTOR_ENV, "haar")
    assert make_face_detector("auto").name == "haar"
    monkeypatch.setenv(detector_store.DETECTOR_ENV, str(cache / "missing.onnx"))
    with pytest.raises(DetectorError, match="missing.onnx"):
        make_face_detector("auto")


def test_each_detector_names_the_width_it_needs():
    class FakeYuNet:
        name, detect_width = "yunet", YuNetFaceDetector.detect_width

    pipeline = LookalikePipeline.__new__(LookalikePipeline)  # only the width is looked at
    for detector, width in ((FakeYuNet(), 240), (make_face_detector("haar"), 400)):
        LookalikePipeline.__init__(pipeline, model=None, detector=detector, matcher=None, options=PipelineOptions())
        assert pipeline.detect_width == width
    LookalikePipeline.__init__(pipeline, model=None, detector=make_face_detector("haar"), matcher=None,
                               options=PipelineOptions(detect_width=320))
    assert pipeline.detect_width == 320  # --detect-width wins


# --- installing and fetching ------------------------------------------------------------------------

def test_a_real_yunet_is_installed_fetched_kept_alone_and_chosen(cache, served, tmp_path, capsys):
    """With the workplace's YuNet file: --install copies it, --fetch downloads and checks it, the cache
    keeps only the last one (readable by a service running as another user), and auto runs it."""
    root, url = served
    first, second = tmp_path / "face_detection_yunet_first.onnx", root / "face_detection_yunet_second.onnx"
    shutil.copy(need(YUNET), first)
    shutil.copy(YUNET, second)
    code, out, err = run_cli(["detector", "--install", str(first)], capsys)
    assert code == 0, err
    assert cache_files(cache) == [first.name] and sha256(cache / first.name) == sha256(YUNET)
    assert str(cache / first.name) in out
    assert make_face_detector("auto").name == "yunet" and str(cache) in detector_store.describe()
    code, _, err = run_cli(["detector", "--fetch", "--url", f"{url}/{second.name}", "--sha256", sha256(YUNET)], capsys)
    assert code == 0, err
    assert cache_files(cache) == [second.name]  # the one saved last is the one auto takes
    assert detector_store.cached_yunet() == cache / second.name
    assert (cache / second.name).stat().st_mode & 0o044 == 0o044
    assert make_face_detector("haar").name == "haar"  # asked for by name, Haar it is


def test_install_refuses_a_file_that_is_not_yunet(cache, tmp_path, capsys):
    junk = tmp_path / "face_detection_yunet_fake.onnx"
    junk.write_bytes(b"not an onnx model" * 100)
    code, _, err = run_cli(["detector", "--install", str(junk)], capsys)
    assert "not a YuNet model" in one_error_line(code, err)
    assert cache_files(cache) == []  # the folder may exist, but holds nothing, not even a partial file


def test_install_of_a_missing_or_wrong_kind_of_file(cache, tmp_path, capsys):
    code, _, err = run_cli(["detector", "--install", str(tmp_path / "nowhere.onnx")], capsys)
    assert "does not exist" in one_error_line(code, err)
    other = tmp_path / "cascade.xml"
    other.write_text("<opencv_storage/>")
    code, _, err = run_cli(["detector", "--install", str(other)], capsys)
    assert "not an .onnx file" in one_error_line(code, err)


def test_fetch_refuses_bytes_with_another_hash(cache, served, capsys):
    root, url = served
    (root / "face_detection_yunet_x.onnx").write_bytes(b"some other bytes")
    code, _, err = run_cli(["detector", "--fetch", "--url", f"{url}/face_detection_yunet_x.onnx", "--sha256", "0" * 64],
                           capsys)
    assert "sha256" in one_error_line(code, err)
    assert cache_files(cache) == []
    assert make_face_detector("auto").name == "haar"


def test_the_default_download_is_checked_against_the_recorded_hash(cache, served, monkeypatch, capsys):
    """--fetch without --sha256 checks the zoo file's recorded hash: other bytes at that address are refused."""
    root, url = served
    (root / detector_store.YUNET.file).write_bytes(b"not the zoo's file")
    release = detector_store.Release(detector_store.YUNET.file, f"{url}/{detector_store.YUNET.file}",
                                     detector_store.YUNET.sha256)
    monkeypatch.setattr(detector_store, "YUNET", release)
    code, _, err = run_cli(["detector", "--fetch"], capsys)
    assert "sha256" in one_error_line(code, err)
    assert cache_files(cache) == []


def test_fetch_from_nowhere_is_one_line(cache, served, capsys):
    _, url = served
    code, _, err = run_cli(["detector", "--fetch", "--url", f"{url}/missing.onnx"], capsys)
    line = one_error_line(code, err)
    assert "cannot download" in line and "--install" in line
    assert cache_files(cache) == []


def test_a_cache_that_cannot_be_written_is_one_line(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LOOKALIKE_CACHE", str(blocker / "cache"))
    code, _, err = run_cli(["detector", "--fetch", "--url", "http://127.0.0.1:9/face_detection_yunet_x.onnx"], capsys)
    assert "LOOKALIKE_CACHE" in one_error_line(code, err)


# --- one way to find faces in a still picture ------------------------------------------------------------

def test_photo_mode_finds_the_faces_find_faces_finds(group_photo, tiny_models):
    """The device's photo mode and edge.faces.find_faces (the benchmark's and training's way) agree."""
    from edge.live import RunOptions, make_matcher
    from edge.runtime import LookalikeModel, model_path

    bgr = cv2.imread(str(group_photo))
    detector = make_face_detector("haar")
    model = LookalikeModel(model_path(tiny_models, "int8"))
    matcher, _ = make_matcher(model, RunOptions(models=tiny_models))
    pipeline = LookalikePipeline(model, detector, matcher, PipelineOptions())
    seen = sorted(face.box for face in pipeline.process(bgr, still=True).faces)
    found = sorted(tuple(int(round(v)) for v in box) for box in find_faces(bgr, detector, STILL_DETECT_WIDTH))
    assert len(found) == 2
    assert np.abs(np.array(seen) - np.array(found)).max() <= 1


# --- small faces with the default settings ---------------------------------------------------------------

def frames_with_faces(records: Path) -> tuple[int, int]:
    lines = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    return sum(1 for r in lines if r.get("faces")), len(lines)


@pytest.fixture(scope="module")
def small_face_video(tmp_path_factory) -> Path:
    """A 640x480 clip of a face about 60 px wide: a person some two metres from a webcam."""
    from edge.video import write_test_video

    return write_test_video(tmp_path_factory.mktemp("small") / "small.mp4", need(FACES / "grace_hopper.jpg"),
                            frames=120, face_height=0.14)


def test_small_faces_are_found_by_default(small_face_video, tiny_models, cache, tmp_path, capsys):
    """With the default settings, by the Haar fallback at its own 400 px width (at YuNet's 240 px it
    finds this face in about 60% of the frames), and by YuNet once cached."""
    records = tmp_path / "frames.jsonl"
    run_cli([small_face_video, "--models", tiny_models, "--no-window", "--json", records], capsys)
    found, frames = frames_with_faces(records)
    assert frames == 120 and found >= 0.95 * frames, "Haar"
    cache.mkdir()
    shutil.copy(need(YUNET), cache / YUNET.name)
    run_cli([small_face_video, "--models", tiny_models, "--no-window", "--json", records], capsys)
    found, frames = frames_with_faces(records)
    assert frames == 120 and found >= 0.95 * frames, "YuNet"
