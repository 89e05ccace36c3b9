"""Tests for lines a mutation check found unguarded: each test here failed with that line broken
(a crop shifted down, integer outputs without their zero point, the smallest face first, camera
failures that add up across good frames, odd-sized video frames dropped, a picture name leaving its
folder, the card about the smallest face, a dual-homed host taken for loopback, enrolled rows not
centred, "young" not arguing against "older") and passes with the code as it is."""
from __future__ import annotations

import socket

import cv2
import numpy as np

from edge.card import main_face
from edge.contract import InputContract, face_crop_box
from edge.enrolment import EnrolledRows, extend_gallery
from edge.faces import HaarFaceDetector
from edge.matcher import Lookalike, LookalikeMatcher, unit_rows
from edge.outputs import VideoOutput
from edge.overlay import CharacterPictures
from edge.pipeline import FaceResult
from edge.runtime import LookalikeModel
from edge.serve import is_loopback
from edge.sources import CaptureSource
from edge.traits import CHARACTER_TRAITS, TERM_NAMES, person_terms
from test_sources import ScriptedCapture


def test_contract_face_crop_is_shifted_up():
    left, top, side = face_crop_box((100, 100, 50, 60), InputContract(labels=("a", "b"), input_size=64))
    assert top + side / 2 < 130  # the centre moves up (hair in frame), not down


def test_intermittent_camera_failures_never_add_up():
    source = CaptureSource(ScriptedCapture([True, False] * 40, frame_count=0), "camera 0", live=True)
    frames = [source.read() for _ in range(80)]
    assert sum(f.image is not None for f in frames) == 40


def _face(box, track):
    return FaceResult(box, track, Lookalike([], [], [], "classifier"), True, None)


def test_card_is_about_the_largest_face():
    small, big = _face((0, 0, 10, 10), 0), _face((20, 20, 50, 50), 1)
    assert main_face([small, big]) is big and main_face([big, small]) is big


def test_video_frames_of_another_size_are_kept(tmp_path):
    out = VideoOutput(tmp_path / "v.avi", 10.0)
    out.write(np.full((240, 320, 3), 100, np.uint8))
    out.write(np.full((120, 160, 3), 100, np.uint8))
    out.write(np.full((240, 320, 3), 100, np.uint8))
    capture = cv2.VideoCapture(str(out.commit()))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 3


def test_picture_names_cannot_leave_the_folder(models_copy):
    cv2.imwrite(str(models_copy / "secret.png"), np.zeros((8, 8, 3), np.uint8))
    pictures = CharacterPictures(models_copy / "characters")
    assert pictures.picture("x", 32, "../secret.png") is None


class FakeCascade:
    def detectMultiScale(self, gray, **kwargs):  # noqa: N802
        return np.array([[0, 0, 40, 40], [100, 100, 80, 80], [50, 0, 60, 60]])


def test_detector_returns_the_largest_face_first():
    detector = HaarFaceDetector()
    detector._cascade = FakeCascade()
    boxes = detector.detect(np.zeros((240, 320, 3), np.uint8))
    assert [b[2] for b in boxes] == [80, 60, 40]


def test_enrolled_rows_are_centred_like_the_trained_ones(tiny_models):
    import dataclasses

    model = LookalikeModel(tiny_models / "lookalike_int8.tflite")
    base = LookalikeMatcher.from_sidecar(model.path, model.sidecar, model.labels, model.contract.embedding_dim).gallery
    base = dataclasses.replace(base, character_mean=np.full(model.contract.embedding_dim, 0.1, np.float32))  # the tiny fixture's is all zeros
    emb = unit_rows(np.random.default_rng(0).normal(size=(1, model.contract.embedding_dim)).astype(np.float32))
    rows = EnrolledRows(("New",), emb, (False,), ("enrolled:New/a.png",), np.array([0]), emb,
                        np.zeros((1, len(CHARACTER_TRAITS)), np.float32), np.ones(1, np.float32))
    gallery = extend_gallery(base, rows)
    assert np.allclose(gallery.embeddings[-1], unit_rows(emb - base.character_mean[None, :])[0], atol=1e-5)


def test_a_host_that_is_also_reachable_from_outside_is_not_loopback(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.1.5", 0))])
    assert not is_loopback("dual-homed")


def test_a_young_face_argues_against_older_pictures():
    terms = person_terms(np.array([0.95], np.float32), ("young",), (0.5,))
    assert terms[TERM_NAMES.index("older")] < 0


def test_integer_outputs_are_dequantized_with_their_zero_point(tiny_models, monkeypatch):
    model = LookalikeModel(tiny_models / "lookalike_int8.tflite")
    monkeypatch.setattr(model.interpreter, "get_tensor", lambda index: np.array([[12, 10]], np.uint8))
    assert model._read_output({"index": 0, "quantization": (0.5, 10)}).tolist() == [1.0, 0.0]
