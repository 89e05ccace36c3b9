"""The face tracker: IoU pairing, template following, dropping lost faces."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.tracking import FaceTracker, TrackerSettings, iou


def textured_frame(offset: tuple[int, int] = (0, 0), size=(180, 240)) -> tuple[np.ndarray, tuple]:
    """A gray frame with a textured 40x40 'face' at (100, 60) + offset."""
    rng = np.random.default_rng(1)
    frame = np.full(size, 120, np.uint8)
    patch = cv2.GaussianBlur(rng.integers(0, 255, (40, 40), dtype=np.uint8), (5, 5), 0)
    x, y = 100 + offset[0], 60 + offset[1]
    frame[y : y + 40, x : x + 40] = patch
    return frame, (float(x), float(y), 40.0, 40.0)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_follows_a_moving_face_between_detections():
    tracker = FaceTracker()
    frame, box = textured_frame()
    tracker.update([box], frame)
    for step in range(1, 6):
        frame, truth = textured_frame((3 * step, 2 * step))
        assert tracker.follow(frame)
        assert iou(tracker.tracks[0].box, truth) > 0.9


def test_a_face_that_leaves_is_lost():
    tracker = FaceTracker()
    frame, box = textured_frame()
    tracker.update([box], frame)
    empty = np.full_like(frame, 120)
    assert not tracker.follow(empty)
    assert tracker.tracks == []


def test_detections_pair_with_tracks_and_new_faces_start_tracks():
    tracker = FaceTracker()
    frame, box = textured_frame()
    tracker.update([box], frame)
    first_id = tracker.tracks[0].track_id
    tracker.update([(box[0] + 2, box[1] + 1, 40, 40), (10, 10, 30, 30)], frame)
    assert [t.track_id for t in tracker.tracks] == [first_id, first_id + 1]


def test_unconfirmed_tracks_are_dropped_after_max_missed_rounds():
    tracker = FaceTracker(TrackerSettings(max_missed=1))
    frame, box = textured_frame()
    tracker.update([box], frame)
    tracker.update([], frame)
    assert len(tracker.tracks) == 1
    tracker.update([], frame)
    assert tracker.tracks == []


def test_at_most_max_faces_tracks():
    tracker = FaceTracker(TrackerSettings(max_faces=2))
    frame, _ = textured_frame()
    tracker.update([(0, 0, 20, 20), (50, 0, 20, 20), (100, 0, 20, 20)], frame)
    assert len(tracker.tracks) == 2
