"""The per-frame pipeline: when it detects, when it classifies, what it hands back."""
from __future__ import annotations

import numpy as np
import pytest

from edge.contract import crop_face, prepare_image, read_rgb
from edge.matcher import LookalikeMatcher
from edge.pipeline import STAGES, LookalikePipeline, PipelineOptions
from edge.runtime import LookalikeModel, model_path


class FixedDetector:
    """Always the same boxes (in the detection image's pixels); counts its calls."""

    name = "fixed"

    def __init__(self, boxes):
        self.boxes = boxes
        self.calls = 0

    def detect(self, bgr):
        self.calls += 1
        return list(self.boxes)


@pytest.fixture(scope="module")
def model(tiny_models):
    return LookalikeModel(model_path(tiny_models, "float32"))


def textured_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((480, 640, 3), 110, np.uint8)
    frame[150:310, 260:420] = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
    return frame


def pipeline_with(model, boxes, **options) -> tuple[LookalikePipeline, FixedDetector]:
    detector = FixedDetector(boxes)
    matcher = LookalikeMatcher(model.labels)
    return LookalikePipeline(model, detector, matcher, PipelineOptions(**options)), detector


def test_detects_every_n_frames_and_classifies_every_k(model):
    # The face box is given at detection scale: 640 px frame -> 240 px detection image.
    pipeline, detector = pipeline_with(model, [(97.5, 56.25, 60, 60)], detect_every=5, classify_every=3)
    frame = textured_frame()
    results = [pipeline.process(frame) for _ in range(15)]
    assert detector.calls == 3  # frames 0, 5, 10
    assert [r.detected for r in results].count(True) == 3
    assert results[0].classified == 1  # a new face is classified at once
    classified = sum(r.classified for r in results)
    assert 4 <= classified <= 6  # about every third frame, never on a detection frame after the first
    assert all(len(r.faces) == 1 for r in results)
    assert results[0].faces[0].box == (260, 150, 160, 160)
    for result in results:
        assert set(result.ms) == set(STAGES) and result.ms["read"] == 0.0


def test_stills_detect_and_classify_every_face_every_time(model):
    pipeline, detector = pipeline_with(model, [(10, 10, 80, 80), (200, 40, 90, 90)])
    frame = textured_frame()
    for _ in range(3):
        result = pipeline.process(frame, still=True)
        assert result.classified == 2 and all(face.fresh for face in result.faces)
    assert detector.calls == 3


def test_the_crop_is_the_contract_crop_in_rgb(model):
    """The pipeline crops the BGR frame and converts the crop: the same as cropping RGB."""
    pipeline, _ = pipeline_with(model, [(97.5, 56.25, 60, 60)])
    frame = textured_frame(3)
    face = pipeline.process(frame).faces[0]
    expected = crop_face(frame[:, :, ::-1].copy(), face.box, model.contract)
    np.testing.assert_array_equal(face.crop, expected)


def test_full_frame_uses_the_whole_picture(model, portrait):
    rgb = read_rgb(str(portrait))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    pipeline = LookalikePipeline(model, None, LookalikeMatcher(model.labels), PipelineOptions(full_frame=True))
    result = pipeline.process(bgr, still=True)
    assert [f.box for f in result.faces] == [(0, 0, rgb.shape[1], rgb.shape[0])]
    np.testing.assert_allclose(result.faces[0].lookalike.classifier[0].score,
                               model.predict_mirrored(prepare_image(rgb, model.contract)).probabilities.max(), atol=1e-6)


def test_scores_are_smoothed_between_classifications(model):
    pipeline, _ = pipeline_with(model, [(97.5, 56.25, 60, 60)], classify_every=1, detect_every=100, smoothing=0.5,
                                top_k=len(model.labels))
    frame = textured_frame(1)
    darker = (frame * 0.7).astype(np.uint8)  # the same face in dimmer light: followed, scored differently
    first = pipeline.process(frame).faces[0]
    second = pipeline.process(darker).faces[0]
    assert second.track_id == first.track_id and second.fresh
    raw_second = model.predict_mirrored(second.crop).probabilities  # the pipeline default: mirror average
    raw_first = model.predict_mirrored(first.crop).probabilities
    assert not np.allclose(raw_first, raw_second, atol=1e-3), "the two frames should score differently"
    expected = 0.5 * raw_first + 0.5 * raw_second
    got = {r.label: r.score for r in second.lookalike.classifier}
    for label, value in zip(model.labels, expected):
        assert got[label] == pytest.approx(float(value), abs=1e-5)


def test_options_are_checked():
    with pytest.raises(ValueError):
        PipelineOptions(detect_every=0)
    with pytest.raises(ValueError):
        PipelineOptions(smoothing=0.0)


def test_mirror_average_makes_the_answer_independent_of_left_and_right(tiny_models):
    """A picture and its mirror image get the same scores when each crop is averaged with its mirror."""
    from edge.matcher import LookalikeMatcher
    from edge.pipeline import LookalikePipeline, PipelineOptions
    from edge.runtime import LookalikeModel, model_path

    model = LookalikeModel(model_path(tiny_models, "float32"))
    rng = np.random.default_rng(5)
    picture = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    mirrored = np.ascontiguousarray(picture[:, ::-1])

    def scores(bgr, mirror):
        pipeline = LookalikePipeline(model, None, LookalikeMatcher(model.labels),
                                     PipelineOptions(full_frame=True, mirror=mirror, top_k=len(model.labels)))
        face = pipeline.process(bgr, still=True).faces[0]
        return {r.label: r.score for r in face.lookalike.classifier}

    averaged, averaged_mirror = scores(picture, True), scores(mirrored, True)
    assert averaged == pytest.approx(averaged_mirror, abs=1e-6)
    single, single_mirror = scores(picture, False), scores(mirrored, False)
    assert single != pytest.approx(single_mirror, abs=1e-6)  # without the average, left and right differ


class CountingMatcher(LookalikeMatcher):
    """A matcher that records which faces the pipeline hands it as new people."""

    def __init__(self, labels):
        super().__init__(labels)
        self.observed = 0

    def observe(self, prediction):
        self.observed += 1
        return False


def test_a_face_is_observed_once_when_it_first_appears_not_at_every_classification(model):
    detector = FixedDetector([(97.5, 56.25, 60, 60)])
    matcher = CountingMatcher(model.labels)
    pipeline = LookalikePipeline(model, detector, matcher, PipelineOptions(classify_every=1, detect_every=2))
    frame = textured_frame(3)
    classified = sum(pipeline.process(frame).classified for _ in range(6))
    assert classified == 6 and matcher.observed == 1
    pipeline.process(frame, still=True)  # a still picture starts over: its face is new
    assert matcher.observed == 2


def test_each_whole_picture_is_counted_after_its_answer(model):
    """--full-frame: every picture goes to the matcher's observe (the style statistics), after it was scored."""
    matcher = CountingMatcher(model.labels)
    pipeline = LookalikePipeline(model, None, matcher, PipelineOptions(full_frame=True))
    for seed in range(3):
        pipeline.process(textured_frame(4 + seed), still=True)
    assert matcher.observed == 3


