"""The device's adaptive classifier: feature statistics learnt from the pictures seen (edge.style_domain)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edge.contract import prepare_image, read_rgb
from edge.matcher import LookalikeMatcher
from edge.runtime import LookalikeModel, ModelError, model_path, read_sidecar
from edge.style_domain import ClassifierHead, StyleAdaptation, StyleStatistics, causal_standardise, floored_spread
from edge_helpers import run_cli
from shared_paths import ROOT

TWEMOJI = ROOT / "data" / "emoji-characters" / "twemoji"


def test_each_picture_is_answered_before_it_is_counted():
    rng = np.random.default_rng(0)
    z = rng.normal(3.0, 2.0, (400, 6))
    out = causal_standardise(z, prior=10)
    np.testing.assert_allclose(out[0], z[0], rtol=1e-6)  # the first picture meets the prior (mean 0, spread 1)
    changed = z.copy()
    changed[5] += 100.0
    again = causal_standardise(changed, prior=10)
    np.testing.assert_allclose(again[:5], out[:5], rtol=1e-6)  # no picture sees one after it
    assert all(not np.allclose(a, b) for a, b in zip(again[6:], out[6:]))  # ... and every later one has learnt from it
    # After many pictures the style's own statistics decide; a heavy prior holds its place.
    own = (z[-1] - z[:-1].mean(axis=0)) / floored_spread(z[:-1].std(axis=0))
    np.testing.assert_allclose(out[-1], own, atol=0.15)
    np.testing.assert_allclose(causal_standardise(z, prior=1e9), z, atol=1e-4)


def test_a_picture_seen_again_is_not_counted_again():
    stats = StyleStatistics(4, prior=5)
    picture = np.array([1.0, -2.0, 0.5, 3.0])
    assert stats.observe(picture)
    assert not stats.observe(picture * 1.001)  # the same picture (a held drawing, a still frame)
    assert stats.observe(np.array([-1.0, 2.0, 0.5, 1.0]))
    assert not stats.observe(np.array([np.nan, 0.0, 0.0, 0.0]))
    assert stats.count == 2


def test_the_spread_floor_keeps_a_flat_channel_from_blowing_up():
    stats = StyleStatistics(3, prior=1)
    for row in ([1.0, 5.0, 2.0], [1.0, -5.0, -2.0], [1.0, 4.0, 3.0], [1.0, -4.0, -3.0]):
        assert stats.observe(np.array(row))
    assert stats.spread[0] >= 0.25 * np.median(stats.spread)
    assert np.all(np.isfinite(stats.standardise(np.array([2.0, 0.0, 0.0]))))


def test_the_shipped_head_is_the_models_last_layer(tiny_models):
    """Before any picture is counted the adaptive classifier gives the model's own probabilities."""
    tflite = model_path(tiny_models, "float32")
    model = LookalikeModel(tflite)
    matcher = LookalikeMatcher.from_sidecar(tflite, read_sidecar(tflite), model.labels, model.contract.embedding_dim)
    assert matcher.style is not None and matcher.style.statistics.count == 0
    for path in sorted(TWEMOJI.glob("*/*.png"))[:40:8]:
        prediction = model.predict(prepare_image(read_rgb(path), model.contract))
        np.testing.assert_allclose(matcher.score(prediction).classifier, prediction.probabilities, atol=2e-4)


def test_fixed_statistics_keep_the_models_answer_and_adapting_changes_it(tiny_models):
    tflite = model_path(tiny_models, "int8")
    model = LookalikeModel(tflite)
    args = (tflite, read_sidecar(tflite), model.labels, model.contract.embedding_dim)
    fixed = LookalikeMatcher.from_sidecar(*args, adapt_style=False)
    adapting = LookalikeMatcher.from_sidecar(*args)
    assert fixed.style is None
    differ = []
    for path in sorted(TWEMOJI.glob("*/*.png"))[:200:10]:
        prediction = model.predict(prepare_image(read_rgb(path), model.contract))
        np.testing.assert_array_equal(fixed.score(prediction).classifier, prediction.probabilities)
        # the tiny random model's answers are flat (about 1/3 each): adapting moves them by 2e-4 to 3e-3, the
        # first picture (the prior) by float rounding only
        differ.append(not np.allclose(adapting.score(prediction).classifier, prediction.probabilities, atol=1e-5))
        adapting.observe(prediction)
    assert not differ[0] and sum(differ[10:]) >= 8  # the first picture meets the prior, later ones what came before
    assert adapting.style.statistics.count == len(differ)


def test_adapting_the_classifier_to_a_style_helps_on_that_style():
    """A toy style shift: the head was trained where the classes sit around 0; the new style moves and
    stretches every channel. Standardising by the style's running statistics recovers the answers."""
    rng = np.random.default_rng(1)
    classes, dim = 4, 16
    centres = rng.normal(0.0, 1.0, (classes, dim))
    head = ClassifierHead((centres.T * 4.0 / np.sqrt(dim)).astype(np.float32), np.zeros(classes, np.float32))
    targets = rng.integers(0, classes, 300)
    clean = centres[targets] + rng.normal(0.0, 0.5, (300, dim))
    shifted = (clean + 3.0 * centres[0]) * rng.uniform(1.0, 3.0, dim) / np.sqrt(dim)  # embeddings, the style moved
    style = StyleAdaptation.start(head, prior=10)
    adapted = []
    for embedding in shifted:
        adapted.append(int(np.argmax(style.probabilities(embedding))))
        style.observe(embedding)
    fixed = np.argmax(head.probabilities(shifted.astype(np.float32)), axis=1)
    assert np.mean(np.array(adapted[50:]) == targets[50:]) > np.mean(fixed[50:] == targets[50:]) + 0.3


@pytest.mark.parametrize("arrays, message", [
    ({"head_kernel": np.zeros((3, 3), np.float32)}, "no 'head_bias' array"),
    ({"head_kernel": np.zeros((3, 3), np.float32), "head_bias": np.zeros(3, np.float32)}, "the classifier's weights have shapes"),
    ("nan", "of finite numbers"),
])
def test_a_broken_shipped_head_is_one_clear_error(models_copy, arrays, message, capsys):
    with np.load(models_copy / "gallery.npz") as data:
        kept = {k: data[k] for k in data.files if not k.startswith("head_")}
    dim = LookalikeModel(model_path(models_copy, "int8")).contract.embedding_dim
    if arrays == "nan":  # the right shapes, but not finite
        arrays = {"head_kernel": np.full((dim, 3), np.nan, np.float32), "head_bias": np.zeros(3, np.float32)}
    np.savez(models_copy / "gallery.npz", **kept, **arrays)
    tflite = model_path(models_copy, "int8")
    model = LookalikeModel(tflite)
    with pytest.raises(ModelError, match=message):
        LookalikeMatcher.from_sidecar(tflite, read_sidecar(tflite), model.labels, dim)
    code, _, err = run_cli([TWEMOJI / "alien" / "1f47d.png", "--models", models_copy, "--full-frame", "--no-window"], capsys)
    assert code == 1 and "gallery.npz" in err and len(err.strip().splitlines()) == 1
    code, _, _ = run_cli([TWEMOJI / "alien" / "1f47d.png", "--models", models_copy, "--full-frame", "--no-window",
                          "--fixed-statistics"], capsys)
    assert code == 0  # the shipped statistics need no head from the gallery


def test_an_older_gallery_without_the_head_keeps_the_shipped_statistics(models_copy):
    with np.load(models_copy / "gallery.npz") as data:
        kept = {k: data[k] for k in data.files if not k.startswith("head_")}
    np.savez(models_copy / "gallery.npz", **kept)
    tflite = model_path(models_copy, "int8")
    model = LookalikeModel(tflite)
    matcher = LookalikeMatcher.from_sidecar(tflite, read_sidecar(tflite), model.labels, model.contract.embedding_dim)
    assert matcher.style is None


def test_a_folder_of_drawings_is_answered_with_learnt_statistics(tiny_models, tmp_path, private_state, capsys):
    pictures = sorted(TWEMOJI.glob("*/*.png"))[:120:12]
    folder = tmp_path / "drawings"
    folder.mkdir()
    for i, path in enumerate(pictures):
        (folder / f"{i:02d}.png").write_bytes(path.read_bytes())
    scores = {}
    for flag in ([], ["--fixed-statistics"]):
        out = tmp_path / f"run{len(flag)}.jsonl"
        code, _, err = run_cli([folder, "--models", tiny_models, "--full-frame", "--match", "classifier", "--no-window",
                                "--json", out, *flag], capsys)
        assert code == 0, err
        scores[bool(flag)] = [json.loads(line)["faces"][0]["top"][0]["score"] for line in out.read_text().splitlines()]
    assert scores[True][0] == pytest.approx(scores[False][0], abs=1e-3)  # the first picture: the prior, both ways
    # Fixed statistics give the same numbers on every run; learnt ones move them (by little on this tiny
    # random-weight model, whose blurred pictures' features vary little: any change counts).
    assert sum(a != b for a, b in zip(scores[True][2:], scores[False][2:])) >= len(pictures) - 3
    assert not list(private_state.glob("style_*.json"))  # a folder is not what this device's camera sees


def test_statistics_continue_from_a_restored_estimate_and_refuse_a_broken_one():
    rng = np.random.default_rng(1)
    pictures = rng.normal(2.0, 3.0, (40, 5))
    learnt = StyleStatistics(5, prior=5)
    for z in pictures[:20]:
        learnt.observe(z)
    again = StyleStatistics(5, prior=5)
    again.restore(learnt.count, learnt.mean, learnt.second)
    for z in pictures[20:]:
        learnt.observe(z)
        again.observe(z)
    assert again.count == learnt.count == 40
    np.testing.assert_allclose(again.mean, learnt.mean)
    np.testing.assert_allclose(again.standardise(pictures[0]), learnt.standardise(pictures[0]))

    fresh = StyleStatistics(5)
    good = np.zeros(5), np.ones(5)
    for count, mean, second in [(-1, *good), (2.5, *good), (True, *good), (3, np.zeros(4), np.ones(5)),
                                (3, np.zeros(5), np.ones((5, 1))), (3, np.full(5, np.nan), np.ones(5)),
                                (3, np.zeros(5), np.full(5, np.inf)), (3, np.zeros(5), -np.ones(5))]:
        with pytest.raises(ValueError):
            fresh.restore(count, mean, second)
        assert fresh.count == 0 and np.array_equal(fresh.mean, np.zeros(5))  # nothing changed
