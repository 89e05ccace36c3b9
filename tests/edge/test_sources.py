"""Frame sources: what a source spec opens, and how a video's bad frames and end are told apart."""
from __future__ import annotations

import shutil
import sys

import cv2
import numpy as np
import pytest

from edge.sources import CaptureSource, ImageListSource, SourceError, open_source
from edge.video import write_test_video


class ScriptedCapture:
    """Stands in for cv2.VideoCapture: plays a script of reads (True: a frame, False: a failure)."""

    def __init__(self, script, frame_count):
        self.script = list(script)
        self.position = 0
        self.frame_count = frame_count

    def read(self):
        ok = self.script.pop(0) if self.script else False
        self.position += 1
        return (True, np.zeros((4, 4, 3), np.uint8)) if ok else (False, None)

    def get(self, prop):
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.frame_count)
        if prop == cv2.CAP_PROP_POS_FRAMES:
            return float(self.position)
        return 0.0

    def release(self):
        pass


def test_a_video_frame_that_fails_to_decode_is_dropped_not_the_end():
    source = CaptureSource(ScriptedCapture([True, False, True, True], frame_count=4), "clip.mp4", live=False)
    frames = [source.read() for _ in range(5)]
    assert [f.image is not None for f in frames[:4]] == [True, False, True, True]
    assert not frames[1].end and frames[1].error
    assert frames[4].end


def test_a_video_that_keeps_failing_ends():
    source = CaptureSource(ScriptedCapture([True] + [False] * 10, frame_count=100), "clip.mp4", live=False)
    frames = [source.read() for _ in range(8)]
    assert any(f.end for f in frames), "a run of failures before the last frame ends the video instead of hanging"


def test_a_camera_that_stops_delivering_raises_after_a_while():
    source = CaptureSource(ScriptedCapture([True] + [False] * 100, frame_count=0), "camera 0", live=True)
    assert source.read().image is not None
    dropped = 0
    with pytest.raises(SourceError, match="stopped delivering frames"):
        while True:
            frame = source.read()
            assert frame.image is None and not frame.end
            dropped += 1
    assert dropped >= 10


def test_source_specs(tmp_path, portrait):
    video = write_test_video(tmp_path / "clip.avi", portrait, frames=3)
    with open_source(str(video)) as source:
        assert isinstance(source, CaptureSource) and not source.still
        assert source.read().image.shape == (480, 640, 3)
        assert source.fps == pytest.approx(30.0)
    with open_source(str(portrait)) as source:
        assert isinstance(source, ImageListSource) and source.still and source.picture_count == 1
        frame = source.read()
        assert frame.label == str(portrait) and frame.image.ndim == 3
        assert source.read().end
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in ("b.png", "a.jpg"):
        shutil.copy(portrait, folder / name)
    (folder / "notes.txt").write_text("not a picture")
    with open_source(str(folder)) as source:
        assert source.picture_count == 2
        assert [source.read().label for _ in range(2)] == [str(folder / "a.jpg"), str(folder / "b.png")]


def test_images_are_handed_out_in_bgr(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    with open_source(str(path)) as source:
        assert tuple(source.read().image[0, 0]) == (0, 0, 255)


class FakePicamera2:
    """Just enough of picamera2.Picamera2 to drive PicameraSource without a Raspberry Pi."""

    def __init__(self):
        self.config = None
        self.started = self.closed = False
        self.frames = 0

    def create_preview_configuration(self, main):
        return {"main": main}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self):
        self.frames += 1
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), np.uint8)
        frame[..., 0] = 200  # "RGB888" arrives in B, G, R order: this is blue
        return frame

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


def test_picamera_source_hands_out_bgr_frames(monkeypatch):
    import types

    cameras = []
    fake = types.ModuleType("picamera2")
    fake.Picamera2 = lambda: cameras.append(FakePicamera2()) or cameras[-1]
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    with open_source("picamera", (320, 240)) as source:
        assert source.live and not source.still
        frame = source.read()
        assert frame.image.shape == (240, 320, 3) and tuple(frame.image[0, 0]) == (200, 0, 0)
        assert cameras[0].config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cameras[0].closed


def test_picamera_built_for_another_numpy(monkeypatch):
    import types

    class Broken(types.ModuleType):
        def __getattr__(self, name):
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")

    monkeypatch.setitem(sys.modules, "picamera2", Broken("picamera2"))
    with pytest.raises(SourceError, match="force-reinstall simplejpeg"):
        open_source("picamera")
