"""Follow faces from frame to frame so that detection need not run on every frame.

A track is one face over time. Between detections a track follows its face by template
matching in a small window around its last position (a fraction of a millisecond on the
downscaled gray frame); every few frames, or as soon as a template match fails, the detector
runs again and its boxes are paired with the tracks by overlap (IoU). Each track keeps its own
smoothed lookalike scores, so the answer for a face does not flicker from frame to frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x, y, w, h


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax1, bx1) - max(a[0], b[0])
    ih = min(ay1, by1) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@dataclass(frozen=True)
class TrackerSettings:
    match_iou: float = 0.3  # a detection this close to a track is the same face
    max_missed: int = 2  # detection rounds a track may go unconfirmed before it is dropped
    search_margin: float = 0.5  # template search window: the box grown by this much per side
    min_correlation: float = 0.5  # below this normalised correlation the face is lost
    max_faces: int = 4


@dataclass
class Track:
    track_id: int
    box: Box  # in the tracking image's pixels
    template: np.ndarray | None = None
    missed: int = 0
    lost: bool = False
    # Filled in by the pipeline: smoothed scores, when and where this face was last classified.
    scores: Any = None
    classified_frame: int | None = None
    classified_box: Box | None = None
    crop: np.ndarray | None = None
    classifications: int = 0
    extra: dict = field(default_factory=dict)


class FaceTracker:
    """A simple IoU tracker with template-matching follow-up between detections."""

    def __init__(self, settings: TrackerSettings = TrackerSettings()):
        self.settings = settings
        self.tracks: list[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        self.tracks = []

    def follow(self, gray: np.ndarray) -> bool:
        """Move every track to its best template match in ``gray``; False if any face was lost."""
        all_found = True
        for track in self.tracks:
            moved = self._match_template(gray, track)
            if moved is None:
                track.lost = True
                all_found = False
            else:
                track.box = moved
        self.tracks = [t for t in self.tracks if not t.lost]
        return all_found

    def update(self, detections: Sequence[Box], gray: np.ndarray) -> None:
        """Pair fresh detections with tracks by IoU; start tracks for new faces, drop stale ones."""
        pairs = self._pair(detections)
        matched_tracks = {id(track) for track, _ in pairs}
        matched_boxes = {index for _, index in pairs}
        for track, index in pairs:
            track.box = tuple(detections[index])
            track.missed = 0
            track.template = _template(gray, track.box)
        kept = []
        for track in self.tracks:
            if id(track) not in matched_tracks:
                track.missed += 1
            if track.missed <= self.settings.max_missed:
                kept.append(track)
        self.tracks = kept
        for index, box in enumerate(detections):
            if index in matched_boxes or len(self.tracks) >= self.settings.max_faces:
                continue
            self.tracks.append(Track(self._next_id, tuple(box), _template(gray, box)))
            self._next_id += 1

    def _pair(self, detections: Sequence[Box]) -> list[tuple[Track, int]]:
        candidates = [
            (iou(track.box, box), t_index, d_index)
            for t_index, track in enumerate(self.tracks)
            for d_index, box in enumerate(detections)
        ]
        candidates.sort(reverse=True)
        used_tracks, used_boxes, pairs = set(), set(), []
        for overlap, t_index, d_index in candidates:
            if overlap < self.settings.match_iou:
                break
            if t_index in used_tracks or d_index in used_boxes:
                continue
            used_tracks.add(t_index)
            used_boxes.add(d_index)
            pairs.append((self.tracks[t_index], d_index))
        return pairs

    def _match_template(self, gray: np.ndarray, track: Track) -> Box | None:
        template = track.template
        if template is None:
            return track.box
        x, y, w, h = track.box
        margin = self.settings.search_margin * max(w, h)
        height, width = gray.shape[:2]
        x0, y0 = max(0, int(x - margin)), max(0, int(y - margin))
        x1, y1 = min(width, int(x + w + margin) + 1), min(height, int(y + h + margin) + 1)
        th, tw = template.shape[:2]
        if x1 - x0 < tw or y1 - y0 < th:
            return None  # the face has left the frame
        result = cv2.matchTemplate(gray[y0:y1, x0:x1], template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (dx, dy) = cv2.minMaxLoc(result)
        if not np.isfinite(best) or best < self.settings.min_correlation:
            return None
        return (float(x0 + dx), float(y0 + dy), float(w), float(h))


def _template(gray: np.ndarray, box: Box) -> np.ndarray | None:
    x, y, w, h = (int(round(v)) for v in box)
    height, width = gray.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None  # too small to follow reliably: the track waits for the next detection
    return gray[y0:y1, x0:x1].copy()
