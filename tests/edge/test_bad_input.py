"""Every mistake a user can make ends in one clear line on stderr and a non-zero exit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.runtime import sha256_file
from edge_helpers import leftovers, one_error_line, run_cli
from shared_paths import ROOT


def error_line(args: list, capsys) -> str:
    code, _, stderr = run_cli(args, capsys)
    return one_error_line(code, stderr)


def rewrite_sidecar(models: Path, change) -> None:
    path = models / "lookalike_int8.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- model files --------------------------------------------------------------------------


def test_missing_models_folder(tmp_path, portrait, capsys):
    line = error_line([portrait, "--models", tmp_path / "nowhere", "--no-window"], capsys)
    assert "lookalike_int8.tflite" in line and "make convert" in line


def test_missing_sidecar(models_copy, portrait, capsys):
    (models_copy / "lookalike_int8.json").unlink()
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "lookalike_int8.json" in line and "make convert" in line


def test_sidecar_that_is_not_json(models_copy, portrait, capsys):
    (models_copy / "lookalike_int8.json").write_text("{ not json")
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "lookalike_int8.json" in line and "make convert" in line


@pytest.mark.parametrize("change, says", [
    (lambda d: d.pop("variant"), "no variant"),
    (lambda d: d.pop("source_model_sha256"), "no source_model_sha256"),
    (lambda d: d.update(format_version=0), "format version 0"),
    (lambda d: d["outputs"].pop("embedding"), "output map"),
    (lambda d: d.update(gallery="../elsewhere/gallery.npz"), "gallery must name a file beside it"),
    (lambda d: d.update(characters="/etc"), "characters must name a file beside it"),
    (lambda d: d.update(matching=[1, 2]), "matching must be an object"),
])
def test_sidecar_fields_are_checked_once_and_never_defaulted(models_copy, portrait, capsys, change, says):
    rewrite_sidecar(models_copy, change)
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "lookalike_int8.json" in line and says in line and "make convert" in line


def test_model_that_does_not_match_its_sidecar(models_copy, portrait, capsys):
    with open(models_copy / "lookalike_int8.tflite", "ab") as handle:
        handle.write(b"\0")  # a different file than the one the sidecar describes
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "lookalike_int8.tflite" in line and "sha256" in line and "make convert" in line


def test_corrupt_model_file(models_copy, portrait, capsys):
    model = models_copy / "lookalike_int8.tflite"
    model.write_bytes(b"this is not a flatbuffer" * 100)
    rewrite_sidecar(models_copy, lambda d: d.update(tflite_sha256=sha256_file(model)))
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "lookalike_int8.tflite" in line and "not a valid TFLite model" in line and "make convert" in line


def test_labels_that_do_not_fit_the_model(models_copy, portrait, capsys):
    rewrite_sidecar(models_copy, lambda d: d["contract"].update(labels=d["contract"]["labels"] + ["extra"]))
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "lookalike_int8.tflite" in line and "make convert" in line


def test_missing_gallery(models_copy, portrait, capsys):
    (models_copy / "gallery.npz").unlink()
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "gallery.npz" in line and "make" in line


def _source_sha(models: Path) -> str:
    return json.loads((models / "lookalike_int8.json").read_text())["source_model_sha256"]


def test_gallery_from_another_model(models_copy, portrait, capsys):
    np.savez(models_copy / "gallery.npz", labels=np.array(["a", "b"]), embeddings=np.ones((2, 7), np.float32),
             model_sha256=np.array(_source_sha(models_copy)))
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "gallery.npz" in line and "another model" in line


def _rewrite_gallery(models: Path, **changes) -> None:
    with np.load(models / "gallery.npz") as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(changes)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(models / "gallery.npz", **arrays)


def test_retrained_without_converting(models_copy, portrait, capsys):
    """make train replaced gallery.npz; the .tflite files are still the previous run's."""
    _rewrite_gallery(models_copy, model_sha256=np.array("f" * 64))
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "another training run" in line and "make convert" in line and "lookalike_int8.tflite" in line


def test_gallery_that_does_not_say_its_training_run(models_copy, portrait, capsys):
    _rewrite_gallery(models_copy, model_sha256=None)
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "gallery.npz" in line and "make train" in line


def test_corrupt_gallery(models_copy, portrait, capsys):
    (models_copy / "gallery.npz").write_bytes(b"PK\x03\x04 broken zip")
    line = error_line([portrait, "--models", models_copy, "--no-window"], capsys)
    assert "gallery.npz" in line


# --- sources ------------------------------------------------------------------------------


def test_camera_that_does_not_exist_says_which_exist(tiny_models, capsys):
    line = error_line(["--source", "7", "--models", tiny_models, "--no-window"], capsys)
    assert "camera 7" in line and "--source" in line and "picamera" in line
    devices = sorted(str(p) for p in Path("/dev").glob("video*"))
    assert all(device in line for device in devices) if devices else "no /dev/video* camera found" in line


def test_missing_input_file(tiny_models, tmp_path, capsys):
    line = error_line([tmp_path / "clip.mp4", "--models", tiny_models, "--no-window"], capsys)
    assert "clip.mp4 does not exist" in line


def test_video_that_cannot_be_opened(tiny_models, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 4096)
    line = error_line([broken, "--models", tiny_models, "--no-window"], capsys)
    assert "broken.mp4" in line and "cannot open" in line


def test_single_picture_that_cannot_be_decoded(tiny_models, tmp_path, capsys):
    broken = tmp_path / "photo.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    code, _, stderr = run_cli([broken, "--models", tiny_models, "--no-window", "--json", tmp_path / "r.jsonl"], capsys)
    assert code == 1
    assert stderr.splitlines()[-1].startswith("error: no picture in") and "photo.jpg" in stderr
    assert not (tmp_path / "r.jsonl").exists() and leftovers(tmp_path) == []


def test_empty_folder(tiny_models, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    line = error_line([tmp_path / "empty", "--models", tiny_models, "--no-window"], capsys)
    assert "has no images" in line


def test_camera_that_cannot_be_opened_asks_whether_it_is_busy(tiny_models, capsys):
    # /dev/null exists but is no camera: OpenCV cannot open it, as with a camera another program holds
    line = error_line(["--source", "/dev/null", "--models", tiny_models, "--no-window"], capsys)
    assert "cannot open camera /dev/null" in line and "another program" in line and "fuser /dev/null" in line


def test_picamera_without_picamera2(tiny_models, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail, as on a laptop
    line = error_line(["--source", "picamera", "--models", tiny_models, "--no-window"], capsys)
    assert "picamera2" in line and "apt install" in line


def test_astronaut_without_scikit_image(tiny_models, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "skimage", None)
    line = error_line(["--astronaut", "--models", tiny_models, "--no-window"], capsys)
    assert "scikit-image" in line


# --- detector, window, outputs ------------------------------------------------------------


def test_missing_detector_file(tiny_models, portrait, tmp_path, capsys):
    line = error_line([portrait, "--models", tiny_models, "--no-window",
                                    "--detector", tmp_path / "yunet.onnx"], capsys)
    assert "yunet.onnx" in line and "does not exist" in line


def test_detector_file_that_is_not_a_model(tiny_models, portrait, tmp_path, capsys):
    fake = tmp_path / "yunet.onnx"
    fake.write_bytes(b"not onnx at all")
    line = error_line([portrait, "--models", tiny_models, "--no-window", "--detector", fake], capsys)
    assert "yunet.onnx" in line


@pytest.mark.parametrize("name, content, says", [
    ("cascade.xml", b"junk, not XML", "not a valid Haar cascade file"),
    ("cascade.xml", b"<?xml version='1.0'?><opencv_storage></opencv_storage>", "not a valid Haar cascade file"),
    ("detector.tflite", b"TFL3", "YuNet .onnx file or a Haar cascade .xml"),
    ("folder", None, "is a folder"),
])
def test_detector_that_is_junk_a_tflite_or_a_folder(tiny_models, portrait, tmp_path, capsys, name, content, says):
    path = tmp_path / name
    if content is None:
        path.mkdir()
        (path / "face_detection_yunet_2023mar.onnx").write_bytes(b"x")
    else:
        path.write_bytes(content)
    line = error_line([portrait, "--models", tiny_models, "--no-window", "--detector", path], capsys)
    assert says in line and name in line
    if content is None:
        assert "face_detection_yunet_2023mar.onnx" in line  # says what to pass instead


def test_no_display_for_the_window(tiny_models, portrait, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("the DISPLAY check is Linux-only")
    line = error_line([portrait, "--models", tiny_models], capsys)
    assert "--no-window" in line


def test_output_folder_that_does_not_exist(tiny_models, portrait, tmp_path, capsys):
    line = error_line([portrait, "--models", tiny_models, "--no-window",
                                    "--json", tmp_path / "missing" / "r.jsonl"], capsys)
    assert "missing" in line and "does not exist" in line


def test_image_output_for_a_video(tiny_models, face_video, tmp_path, capsys):
    line = error_line([face_video, "--models", tiny_models, "--no-window", "--output", tmp_path / "a.png"], capsys)
    assert "a.png" in line and ".mp4" in line


def test_card_without_a_face(tiny_models, tmp_path, capsys):
    blank = tmp_path / "wall.png"
    import cv2

    cv2.imwrite(str(blank), np.full((200, 200, 3), 90, np.uint8))
    code, stdout, stderr = run_cli([blank, "--models", tiny_models, "--no-window", "--card", tmp_path / "card.png"], capsys)
    line = one_error_line(code, stderr)
    assert "no face found" in line and "--full-frame" in line
    assert not (tmp_path / "card.png").exists()


def test_command_line_exit_code_and_message(tiny_models, tmp_path):
    """The real command: exit status 1 and a single line, native library chatter included."""
    result = subprocess.run(
        [sys.executable, "-m", "edge", str(tmp_path / "nothing.jpg"), "--models", str(tiny_models), "--no-window"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nothing.jpg'} does not exist; pass a camera "
                                                  "index (0), a video, an image or a folder"]


def test_card_in_a_folder_that_does_not_exist_fails_before_the_run(tiny_models, face_video, tmp_path, capsys):
    line = error_line([face_video, "--models", tiny_models, "--no-window", "--card", tmp_path / "nope" / "card.png"], capsys)
    assert "nope" in line and "does not exist" in line


def test_card_with_an_unknown_image_type(tiny_models, portrait, tmp_path, capsys):
    line = error_line([portrait, "--models", tiny_models, "--no-window", "--card", tmp_path / "card.pdf"], capsys)
    assert "card.pdf" in line and ".png" in line
