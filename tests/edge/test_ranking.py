"""edge.ranking is the one owner of top-k: every caller ranks the same way, with one tie rule."""
from __future__ import annotations

import numpy as np
import pytest

from edge.ranking import in_top_k, top_k_accuracy, top_k_indices

RNG = np.random.default_rng(13)
NO_TIES = RNG.random((200, 12)).astype(np.float32)  # continuous: no two scores of a row are equal
TIES = (RNG.integers(0, 4, size=(200, 12)) / 4).astype(np.float32)  # four levels: many ties in every row
TARGETS = RNG.integers(0, 12, size=200)


def test_best_first_and_ties_to_the_lower_index():
    scores = np.array([[0.2, 0.5, 0.5, 0.1, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0]])
    assert top_k_indices(scores, 3).tolist() == [[1, 2, 4], [0, 1, 2]]
    assert top_k_indices(scores[0], 2).tolist() == [1, 2]  # one row ranks the same way
    assert top_k_indices(scores, 99).shape == (2, 5)  # k beyond the classes: every class, ranked


@pytest.mark.parametrize("scores", [NO_TIES, TIES], ids=["no-ties", "ties"])
def test_same_order_as_the_stable_sort_the_callers_used(scores):
    # what edge.matcher.top_k, convert.verify, benchmarks.labelled did before they called edge.ranking
    assert np.array_equal(top_k_indices(scores, 5), np.argsort(-scores, axis=1, kind="stable")[:, :5])
    assert np.array_equal(top_k_indices(scores, 1)[:, 0], scores.argmax(axis=1))  # first place is argmax


def test_membership_matches_the_argpartition_the_benchmark_used_where_there_are_no_ties():
    old = (np.argpartition(-NO_TIES, 4, axis=1)[:, :5] == TARGETS[:, None]).any(axis=1)
    assert np.array_equal(in_top_k(NO_TIES, TARGETS, 5), old)
    assert top_k_accuracy(NO_TIES, TARGETS, 5) == float(old.mean())


def test_a_tie_at_the_kth_place_goes_to_the_lower_index():
    scores = np.array([[0.9, 0.5, 0.5, 0.5]])
    assert in_top_k(scores, np.array([1]), 2).tolist() == [True]
    assert in_top_k(scores, np.array([3]), 2).tolist() == [False]


def test_unsigned_integer_scores_are_ranked_by_value():
    scores = np.array([[0, 255, 1, 128]], dtype=np.uint8)  # negating uint8 would wrap 0 to the top
    assert top_k_indices(scores, 4).tolist() == [[1, 3, 2, 0]]


def test_k_below_one_is_refused():
    with pytest.raises(ValueError):
        top_k_indices(NO_TIES, 0)


def test_every_caller_ranks_through_edge_ranking():
    from benchmarks.accuracy import score
    from edge.matcher import top_k

    labels = tuple(f"c{i}" for i in range(12))
    result = score(TIES, TARGETS, labels)
    assert result.top5 == top_k_accuracy(TIES, TARGETS, 5)
    assert result.top1 == top_k_accuracy(TIES, TARGETS, 1)
    assert [r.label for r in top_k(labels, TIES[0], 5)] == [labels[i] for i in top_k_indices(TIES[0], 5)]
    # train's evaluation needs Keras: tests/test_workstation_extras.py checks it in the workstation venv.
