"""The lookalike matcher: classifier ranking, gallery cosine, centring, temperature, smoothing."""
from __future__ import annotations

import dataclasses

import json

import numpy as np
import pytest

from edge.matcher import FaceDomain, GalleryScoring, LookalikeMatcher, MatchScores, load_gallery
from edge.runtime import LookalikeModel, ModelError, Prediction, model_path, read_sidecar

LABELS = ("cat", "dog", "owl")


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


GALLERY = np.stack([unit([1, 0, 0, 0]), unit([0, 1, 0, 0]), unit([0, 0, 1, 1])])


def test_classifier_ranking_is_the_softmax_order():
    matcher = LookalikeMatcher(LABELS, GalleryScoring.build(LABELS, GALLERY))
    scores = matcher.score(Prediction(np.array([0.2, 0.7, 0.1], np.float32), unit([1, 0, 0, 0])))
    result = matcher.rank(scores, k=3)
    assert [(r.label, round(r.score, 3)) for r in result.classifier] == [("dog", 0.7), ("cat", 0.2), ("owl", 0.1)]
    assert result.method == "classifier" and result.top == result.classifier  # uncalibrated gallery: classifier leads


def test_gallery_cosine_ranks_the_nearest_character_first():
    matcher = LookalikeMatcher(LABELS, GalleryScoring.build(LABELS, GALLERY), method="gallery")
    result = matcher.rank(matcher.score(Prediction(np.full(3, 1 / 3, np.float32), unit([0.1, 0, 1, 0.9]))))
    assert result.method == "gallery" and result.best.label == "owl"
    assert all(0.0 <= r.score <= 1.0 for r in result.gallery)


def test_centred_cosine_removes_the_shared_direction():
    # Every embedding shares a large common component (the "domain"); only centring reveals that
    # the face is closest to the dog.
    common = np.array([0, 0, 0, 5.0], np.float32)
    characters = np.stack([unit([1, 0, 0, 0] + common), unit([0, 1, 0, 0] + common), unit([0, 0, 1, 0] + common)])
    face = unit(np.array([0.2, 1.0, 0, 0], np.float32) + 2 * common)
    plain = GalleryScoring.build(LABELS, characters)
    centred = GalleryScoring.build(LABELS, characters, character_mean=characters.mean(0), face_mean=face * 0.95)
    assert centred.centred and not plain.centred
    assert LABELS[int(np.argmax(centred.scores(face)[0]))] == "dog"
    assert np.ptp(centred.similarities(face)) > np.ptp(plain.similarities(face))


def test_temperature_turns_similarities_into_a_distribution():
    sharp = GalleryScoring.build(LABELS, GALLERY, temperature=0.05)
    soft = GalleryScoring.build(LABELS, GALLERY, temperature=1.0)
    face = unit([1, 0.2, 0, 0])
    for scoring in (sharp, soft):
        assert scoring.calibrated and np.isclose(scoring.scores(face)[0].sum(), 1.0)
    assert sharp.scores(face)[0].max() > soft.scores(face)[0].max()
    matcher = LookalikeMatcher(LABELS, sharp)  # auto: a calibrated gallery leads
    assert matcher.primary == "gallery"


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        GalleryScoring.build(LABELS, GALLERY, character_mean=np.zeros(4))  # one mean without the other
    with pytest.raises(ValueError):
        GalleryScoring.build(LABELS, GALLERY, temperature=0.0)
    with pytest.raises(ModelError):
        LookalikeMatcher(LABELS, None, method="gallery")


def test_uncalibrated_scores_map_cosine_to_0_1_keeping_the_order():
    scoring = GalleryScoring.build(LABELS, GALLERY)
    np.testing.assert_allclose(scoring.scores(unit([1, 0, 0, 0]))[0], [1.0, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(scoring.scores(unit([-1, 0, 0, 0]))[0], [0.0, 0.5, 0.5], atol=1e-6)


def test_zero_embedding_scores_neutral_not_nan():
    scoring = GalleryScoring.build(LABELS, GALLERY)
    np.testing.assert_allclose(scoring.scores(np.zeros(4, np.float32))[0], 0.5)


def test_smoothing_is_an_exponential_moving_average():
    old = MatchScores(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    new = MatchScores(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    blended = old.blend(new, 0.25)
    np.testing.assert_allclose(blended.classifier, [0.75, 0.25, 0.0])
    np.testing.assert_allclose(blended.gallery, [0.0, 0.75, 0.25])
    assert MatchScores(np.ones(3)).blend(new, 0.5).gallery is new.gallery


def test_optional_gallery_arrays_and_sidecar_parameters(models_copy):
    """character_mean, face_mean and temperature in gallery.npz, 'matching' in the sidecar."""
    tflite = model_path(models_copy, "int8")
    model = LookalikeModel(tflite)
    dim = model.contract.embedding_dim
    with np.load(models_copy / "gallery.npz") as data:
        labels, embeddings, made_by = data["labels"], data["embeddings"], data["model_sha256"]
    rng = np.random.default_rng(0)
    np.savez(models_copy / "gallery.npz", labels=labels, embeddings=embeddings, model_sha256=made_by,
             character_mean=rng.random(dim, dtype=np.float32), face_mean=rng.random(dim, dtype=np.float32),
             temperature=np.float32(0.1))
    gallery = load_gallery(tflite, read_sidecar(tflite), dim)
    assert gallery.centred and gallery.temperature == pytest.approx(0.1)

    sidecar_file = models_copy / "lookalike_int8.json"
    sidecar = json.loads(sidecar_file.read_text())
    sidecar["matching"] = {"temperature": 0.5, "method": "classifier"}
    sidecar_file.write_text(json.dumps(sidecar))
    matcher = LookalikeMatcher.from_sidecar(tflite, read_sidecar(tflite), model.labels, dim)
    assert matcher.gallery.temperature == 0.5 and matcher.primary == "classifier"


def test_model_without_gallery_ranks_by_classifier_only(models_copy):
    tflite = model_path(models_copy, "int8")
    model = LookalikeModel(tflite)
    sidecar = dataclasses.replace(model.sidecar, gallery=None)
    matcher = LookalikeMatcher.from_sidecar(tflite, sidecar, model.labels, model.contract.embedding_dim)
    size = model.contract.input_size
    result = matcher.rank(matcher.score(model.predict(np.zeros((size, size, 3), np.uint8))))
    assert matcher.gallery is None and result.gallery == [] and result.top == result.classifier


def test_gallery_with_wrong_mean_size_names_the_file(models_copy):
    tflite = model_path(models_copy, "int8")
    with np.load(models_copy / "gallery.npz") as data:
        np.savez(models_copy / "gallery.npz", labels=data["labels"], embeddings=data["embeddings"],
                 model_sha256=data["model_sha256"], character_mean=np.zeros(3), face_mean=np.zeros(3))
    with pytest.raises(ModelError, match="gallery.npz"):
        load_gallery(tflite, read_sidecar(tflite), LookalikeModel(tflite).contract.embedding_dim)


# --- the face domain that adapts to the people seen ------------------------------------------------

DIM = 24  # enough directions that different people do not look alike by chance


def shifted_faces(count: int, seed: int = 0) -> np.ndarray:
    """Faces from a camera the shipped mean did not see: each its own direction on top of a large
    shared offset (the camera's "domain", the last axis)."""
    rng = np.random.default_rng(seed)
    offset = np.zeros(DIM, np.float32)
    offset[-1] = 4.0
    personal = rng.normal(0.0, 1.0, (count, DIM)).astype(np.float32)
    personal[:, -1] = 0.0
    return np.stack([unit(offset + p) for p in personal])


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


def test_a_new_face_moves_the_face_mean_by_one_share_of_the_prior():
    shipped = unit([1, 1, 0, 0])
    domain = FaceDomain(shipped, prior=4.0)
    face = unit([0, 0, 1, 0])
    assert domain.observe(face)
    assert domain.count == 1
    np.testing.assert_allclose(domain.mean, shipped + (face - shipped) / 5.0, atol=1e-6)
    np.testing.assert_allclose(domain.shipped, shipped)  # the shipped mean itself is kept


def test_the_same_person_again_is_not_counted_twice():
    domain = FaceDomain(unit([1, 1, 0, 0]), prior=4.0)
    face = unit([0, 0, 1, 0.1])
    assert domain.observe(face)
    mean = domain.mean.copy()
    assert not domain.observe(face)  # the same face, back in front of the camera
    assert not domain.observe(face * 3.0)  # the length of an embedding does not matter
    assert domain.count == 1 and np.allclose(domain.mean, mean)
    assert domain.observe(unit([0, 1, -1, 0]))  # someone else is counted
    assert domain.count == 2


def test_a_zero_embedding_is_ignored_and_a_bad_prior_refused():
    domain = FaceDomain(unit([1, 0, 0, 0]))
    assert not domain.observe(np.zeros(4, np.float32)) and domain.count == 0
    with pytest.raises(ValueError):
        FaceDomain(unit([1, 0, 0, 0]), prior=0.0)


def test_adapting_to_a_new_camera_gives_people_different_answers_again():
    # Characters differ in the first three directions. The shipped face mean comes from other
    # faces and leans away from the first character, so against it every face of the new camera
    # leans toward that character: the collapse.
    characters = np.stack([axis(0), axis(1), axis(2)])
    shipped = unit(-axis(0) + 0.3 * axis(DIM - 1))
    faces = shifted_faces(60)

    def answers(gallery: GalleryScoring) -> list[str]:
        return [LABELS[int(np.argmax(gallery.similarities(f)))] for f in faces]

    fixed = GalleryScoring.build(LABELS, characters, characters.mean(0), shipped)
    adaptive = GalleryScoring.build(LABELS, characters, characters.mean(0), shipped)
    adaptive.adapt(prior=5.0)
    assert adaptive.adaptive and not fixed.adaptive
    for face in faces:
        adaptive.observe(face)
    assert adaptive.faces.count == len(faces)  # 60 different people
    assert set(answers(fixed)) == {"cat"}  # the collapse
    assert len(set(answers(adaptive))) == 3
    # The mean is the shipped one weighted as 5 faces, plus the 60 faces seen.
    np.testing.assert_allclose(adaptive.current_face_mean(), (5.0 * shipped + faces.sum(0)) / 65.0, atol=1e-5)


def test_only_a_centred_gallery_adapts():
    with pytest.raises(ValueError):
        GalleryScoring.build(LABELS, GALLERY).adapt()
    matcher = LookalikeMatcher(LABELS, GalleryScoring.build(LABELS, GALLERY))
    assert not matcher.observe(Prediction(np.full(3, 1 / 3, np.float32), unit([1, 0, 0, 0])))


def test_the_shipped_matcher_adapts_unless_asked_not_to(models_copy):
    tflite = model_path(models_copy, "int8")
    model = LookalikeModel(tflite)
    build = dict(labels=model.labels, embedding_dim=model.contract.embedding_dim)
    with np.load(models_copy / "gallery.npz") as data:
        labels, embeddings, made_by = data["labels"], data["embeddings"], data["model_sha256"]
    np.savez(models_copy / "gallery.npz", labels=labels, embeddings=embeddings, model_sha256=made_by)
    assert not LookalikeMatcher.from_sidecar(tflite, model.sidecar, **build).gallery.adaptive  # no face mean: nothing to adapt
    dim = model.contract.embedding_dim
    np.savez(models_copy / "gallery.npz", labels=labels, embeddings=embeddings, model_sha256=made_by,
             character_mean=np.zeros(dim, np.float32), face_mean=np.full(dim, 0.1, np.float32), temperature=np.float32(0.05))
    adaptive = LookalikeMatcher.from_sidecar(tflite, model.sidecar, **build)
    fixed = LookalikeMatcher.from_sidecar(tflite, model.sidecar, adapt=False, **build)
    assert adaptive.gallery.adaptive and fixed.gallery.centred and not fixed.gallery.adaptive
    size = model.contract.input_size
    prediction = model.predict(np.full((size, size, 3), 90, np.uint8))
    assert adaptive.observe(prediction) and not fixed.observe(prediction)
    assert not np.allclose(adaptive.gallery.current_face_mean(), fixed.gallery.current_face_mean())
