"""One frame in, lookalikes out: resize -> track -> detect -> crop -> classify -> match -> smooth.

The expensive steps do not run on every frame of a stream, and the timings say so:
- detection runs every ``detect_every`` frames on a frame shrunk to ``detect_width`` pixels (by
  default the width the detector needs for a 60 px face in a 640x480 frame), and
  at once whenever a face is lost or none is being followed; in between, faces are followed by
  template matching (``edge.tracking``);
- each face is classified when it first appears, then again every ``classify_every`` frames or
  sooner when its box has moved (a new crop), at most ``classify_budget`` faces per frame; the
  scores in between are the face's exponential moving average, which is also what keeps the
  answer from flickering.
Still pictures (a photo, a folder of photos) are unrelated to each other: every face is detected
and classified on every picture and nothing is smoothed.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np

from edge.contract import crop_face, prepare_image
from edge.faces import STILL_DETECT_WIDTH, YUNET_DETECT_WIDTH, FaceDetector, clip_boxes, downscale
from edge.matcher import Lookalike, LookalikeMatcher
from edge.runtime import LookalikeModel
from edge.tracking import Box, FaceTracker, Track, TrackerSettings, iou

# Per-frame timings, in the order the work happens; every frame reports every stage (0 if skipped).
STAGES = ("read", "resize", "track", "detect", "crop", "classify", "match", "draw", "output")
# A face whose box overlaps its last classified box less than this has a new crop: classify soon.
RECLASSIFY_IOU = 0.6


@dataclass(frozen=True)
class PipelineOptions:
    detect_every: int = 6
    classify_every: int = 3
    classify_budget: int = 1  # faces re-classified per frame beyond new ones
    detect_width: int | None = None  # detection and tracking image width for streams [default: the detector's]
    still_detect_width: int = STILL_DETECT_WIDTH  # and for still pictures, where speed matters less than small faces
    smoothing: float = 0.4  # weight of the newest scores in a face's moving average
    full_frame: bool = False  # classify the whole picture instead of faces
    mirror: bool = True  # average each crop with its mirror image (flip-invariant, steadier answers)
    top_k: int = 3
    tracker: TrackerSettings = field(default_factory=TrackerSettings)

    def __post_init__(self) -> None:
        for name in ("detect_every", "classify_every", "classify_budget", "top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if (self.detect_width is not None and self.detect_width < 64) or self.still_detect_width < 64:
            raise ValueError("detection width must be at least 64 pixels")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError("smoothing must be in (0, 1]: the weight of the newest scores")


class StageTimer:
    """Milliseconds spent per stage within one frame."""

    def __init__(self) -> None:
        self.ms = {name: 0.0 for name in STAGES}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    track_id: int
    lookalike: Lookalike
    fresh: bool  # classified on this frame (else: smoothed scores from earlier frames)
    crop: np.ndarray | None  # the model input of its latest classification (RGB)


@dataclass
class FrameResult:
    faces: list[FaceResult]
    ms: dict[str, float]
    detected: bool
    classified: int
    size: tuple[int, int]  # frame width, height


class LookalikePipeline:
    """Everything between a BGR frame and the ranked lookalikes of its faces."""

    def __init__(self, model: LookalikeModel, detector: FaceDetector | None, matcher: LookalikeMatcher,
                 options: PipelineOptions = PipelineOptions()):
        if detector is None and not options.full_frame:
            raise ValueError("a face detector is needed unless full_frame is set")
        self.model = model
        self.detector = detector
        self.matcher = matcher
        self.options = options
        self.tracker = FaceTracker(options.tracker)
        self.detect_width = options.detect_width or getattr(detector, "detect_width", YUNET_DETECT_WIDTH)
        self._frame_index = -1
        self._last_detection = None
        self._whole_picture: Track | None = None

    def reset(self) -> None:
        """Forget all faces (a new, unrelated stream)."""
        self.tracker.reset()
        self._last_detection = None
        self._whole_picture = None

    def process(self, bgr: np.ndarray, still: bool = False, timer: StageTimer | None = None) -> FrameResult:
        timer = timer or StageTimer()
        self._frame_index += 1
        if still:
            self.reset()
        height, width = bgr.shape[:2]
        if self.options.full_frame:
            tracks, factor, detected = self._track_whole_picture(width, height), 1.0, False
        else:
            tracks, factor, detected = self._find_faces(bgr, still, timer)
        to_classify = self._due_for_classification(tracks, still, detected)
        for track in to_classify:
            self._classify(bgr, track, factor, still, timer)
        faces = []
        fresh = {id(t) for t in to_classify}
        with timer.stage("match"):
            for track in tracks:
                if track.scores is None:
                    continue
                faces.append(FaceResult(
                    _frame_box(track.box, factor), track.track_id,
                    self.matcher.rank(track.scores, self.options.top_k), id(track) in fresh, track.crop,
                ))
        return FrameResult(faces, timer.ms, detected, len(to_classify), (width, height))

    def _find_faces(self, bgr: np.ndarray, still: bool, timer: StageTimer) -> tuple[list[Track], float, bool]:
        with timer.stage("resize"):
            small, factor = downscale(bgr, self.options.still_detect_width if still else self.detect_width)
            gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        all_followed = True
        if self.tracker.tracks:
            with timer.stage("track"):
                all_followed = self.tracker.follow(gray)
        due = self._last_detection is None or self._frame_index - self._last_detection >= self.options.detect_every
        detected = still or due or not all_followed or not self.tracker.tracks
        if detected:
            with timer.stage("detect"):
                boxes = clip_boxes(self.detector.detect(small), (small.shape[1], small.shape[0]))
                self.tracker.update(boxes, gray)
            self._last_detection = self._frame_index
        return self.tracker.tracks, factor, detected

    def _track_whole_picture(self, width: int, height: int) -> list[Track]:
        box = (0.0, 0.0, float(width), float(height))
        if self._whole_picture is None:
            self._whole_picture = Track(0, box)
        self._whole_picture.box = box
        return [self._whole_picture]

    def _due_for_classification(self, tracks: list[Track], still: bool, detected: bool) -> list[Track]:
        if still:
            return list(tracks)
        new = [t for t in tracks if t.scores is None]
        interval = self.options.classify_every
        stale = [
            t for t in tracks
            if t.scores is not None
            and (self._frame_index - t.classified_frame >= interval or iou(t.box, t.classified_box) < RECLASSIFY_IOU)
        ]
        # A detection frame is already the expensive one: defer re-classification by a frame,
        # unless detection or classification is asked for on every frame.
        if detected and self.options.detect_every > 1 and self.options.classify_every > 1 and not self.options.full_frame:
            stale = []
        stale.sort(key=lambda t: t.classified_frame)
        return new + stale[: max(0, self.options.classify_budget - len(new))]

    def _classify(self, bgr: np.ndarray, track: Track, factor: float, still: bool, timer: StageTimer) -> None:
        contract = self.model.contract
        with timer.stage("crop"):
            if self.options.full_frame:
                patch = prepare_image(bgr, contract)
            else:
                patch = crop_face(bgr, _scaled(track.box, factor), contract)
            # Cropping and resizing treat each channel alike, so converting the small model input
            # from OpenCV's BGR to the contract's RGB here equals converting the whole frame first.
            crop = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB)
        with timer.stage("classify"):
            prediction = self.model.predict_mirrored(crop) if self.options.mirror else self.model.predict(crop)
        with timer.stage("match"):
            scores = self.matcher.score(prediction)
            if self.options.full_frame:
                self.matcher.observe(prediction)  # a picture, after its answer: the style statistics count it
            elif track.classifications == 0:
                self.matcher.observe(prediction)  # a new face: the face domain learns it once
            smoothing = 1.0 if still or track.scores is None else self.options.smoothing
            track.scores = scores if smoothing == 1.0 else track.scores.blend(scores, smoothing)
        track.classified_frame = self._frame_index
        track.classified_box = track.box
        track.crop = crop
        track.classifications += 1


def _scaled(box: Box, factor: float) -> Box:
    return tuple(v * factor for v in box)


def _frame_box(box: Box, factor: float) -> tuple[int, int, int, int]:
    return tuple(int(round(v * factor)) for v in box)
