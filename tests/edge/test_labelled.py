"""The labelled-faces measurement: its vectorised ranking is the device's, and its figures count right."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import labelled
from edge.face_traits import FACE_TRAITS
from edge.runtime import Prediction
from edge.traits import from_threshold
from edge_helpers import DIM, LABELS, matcher, person


def face_run(people: list[np.ndarray], labels: list[dict]) -> labelled.FaceRun:
    m = matcher()
    gallery = m.gallery
    query = np.eye(DIM, dtype=np.float32)[0]
    rows = np.array([[labels_of.get(t, False) for t in FACE_TRAITS] for labels_of in labels])
    return labelled.FaceRun([f"{i:06d}.jpg" for i in range(len(people))], rows, np.stack(people), FACE_TRAITS,
                            (0.5,) * len(FACE_TRAITS), np.tile(gallery.embeddings @ query, (len(people), 1)),
                            np.tile(gallery.pictures.embeddings @ query, (len(people), 1)))


PEOPLE = [person(glasses=0.95, male=0.97), person(glasses=0.95, male=0.03), person(beard=0.95, male=0.9), person()]
LABELLED = [{"glasses": True, "male": True}, {"glasses": True}, {"beard": True, "male": True}, {}]


def test_the_vectorised_ranking_is_the_devices():
    m = matcher()
    run = face_run(PEOPLE, LABELLED)
    ranking = labelled.rank(run, m.gallery, m.gallery.trait_weights)
    for i, traits in enumerate(PEOPLE):
        device = m.rank(m.score(Prediction(np.full(3, 1 / 3, np.float32), np.eye(DIM, dtype=np.float32)[0], traits)))
        assert [LABELS[j] for j in ranking.top[i]] == [r.label for r in device.top]
        assert m.gallery.pictures.files[ranking.pictures[i, ranking.top[i, 0]]] == device.best.picture


def test_sense_gender_and_variety_count_what_was_shown():
    m = matcher()
    run = face_run(PEOPLE, LABELLED)
    result = labelled.evaluate(run, m.gallery, m.gallery.trait_weights, {"specs": frozenset({"glasses"})}, LABELS)
    glasses = result["sense"]["glasses"]
    # top-3 of 3 characters always holds every character: 100% with and without, no lift
    assert glasses["with"] == 1.0 and glasses["without"] == 1.0 and not glasses["lifted"]
    assert result["gender"] == {"gendered": 3, "faces": 4, "match": 1.0}  # man, woman, bearded man; "plain" is neither
    assert result["variety"]["distinct"] == 3 and result["variety"]["most_frequent_share"] == 0.5
    top1 = labelled.rank(run, m.gallery, m.gallery.trait_weights, k=1)
    assert [LABELS[i] for i in top1.top[:, 0]] == ["specs", "specs", "bearded", "plain"]


def test_the_lift_goal_reads_the_two_shares():
    assert labelled.lifted(0.6, 0.0) and labelled.lifted(0.4, 0.2) and not labelled.lifted(0.39, 0.2)
    assert not labelled.lifted(0.0, 0.0) and not labelled.lifted(None, 0.1)


@pytest.mark.parametrize("p, threshold, evidence", [(0.28, 0.28, 0.0), (1.0, 0.28, 1.0), (0.0, 0.28, -1.0),
                                                     (0.64, 0.28, 0.5), (0.14, 0.28, -0.5)])
def test_evidence_counts_from_the_threshold(p, threshold, evidence):
    assert from_threshold(p, threshold) == pytest.approx(evidence)


def test_a_gallery_without_picture_traits_is_one_error():
    from edge.matcher import PictureSet

    m = matcher()
    pictures = m.gallery.pictures
    m.gallery.pictures = PictureSet(pictures.files, pictures.owners, 3, pictures.embeddings)  # no traits
    with pytest.raises(ValueError, match="no picture traits"):
        labelled.run_faces(None, m, None, None)
