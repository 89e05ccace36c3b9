"""One reader of gallery.npz (edge.matcher.read_gallery_file): the device, convert's gallery check and
train.match's rewrite all read the file through it, so they accept and refuse the same files."""
from __future__ import annotations

import numpy as np
import pytest

from edge.matcher import gallery_classes, read_gallery_file
from edge.runtime import ModelError


def test_reads_every_array_of_the_shipped_gallery(tiny_models):
    arrays = read_gallery_file(tiny_models / "gallery.npz")
    labels, embeddings = gallery_classes(arrays, tiny_models / "gallery.npz")
    assert {"labels", "embeddings", "model_sha256"} <= set(arrays)
    assert labels == tuple((tiny_models / "labels.txt").read_text().split())
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == len(labels)


def test_a_pickled_array_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "gallery.npz"
    np.savez(path, labels=np.array(["a", "b"], dtype=object), embeddings=np.eye(2, dtype=np.float32))
    with pytest.raises(ModelError, match="gallery.npz is not a readable gallery"):
        read_gallery_file(path)


def test_a_damaged_file_and_missing_arrays_are_one_model_error(tmp_path):
    path = tmp_path / "gallery.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match="not a readable gallery"):
        read_gallery_file(path)
    np.savez(path, labels=np.array(["a"]))
    with pytest.raises(ModelError, match="has no 'embeddings' array"):
        gallery_classes(read_gallery_file(path), path)


def test_convert_check_reads_through_it_and_skips_a_damaged_gallery(tiny_models, tmp_path, capsys):
    import json

    from convert.pipeline import load_gallery as convert_gallery
    from edge.contract import InputContract

    labels = tuple((tiny_models / "labels.txt").read_text().split())
    contract = InputContract.from_dict(json.loads((tiny_models / "lookalike_float32.json").read_text())["contract"])
    arrays = read_gallery_file(tiny_models / "gallery.npz")
    embeddings, head = convert_gallery(tiny_models, labels, contract)
    assert np.array_equal(embeddings, arrays["embeddings"])
    assert (head is None) == ("head_kernel" not in arrays)
    (tmp_path / "gallery.npz").write_bytes(b"damaged")
    assert convert_gallery(tmp_path, labels, contract) == (None, None)
    assert "the gallery check and the adaptive classifier's figures are skipped" in capsys.readouterr().err


def test_train_match_rewrites_through_it(models_copy):
    from edge.traits import TERM_NAMES
    from train.match import update_gallery

    weights = {name: 0.5 for name in TERM_NAMES}
    path = models_copy / "gallery.npz"
    before = read_gallery_file(path)
    update_gallery(path, weights)
    after = read_gallery_file(path)
    assert np.array_equal(after["embeddings"], before["embeddings"])
    assert np.array_equal(after["trait_weights"], np.full(len(TERM_NAMES), 0.5, np.float32))
    path.write_bytes(b"damaged")
    with pytest.raises(ModelError, match="not a readable gallery"):  # train.match prints it as one error line
        update_gallery(path, weights)
