"""make train: datasets, bad input, augmentation, the model, and the artifacts of a real run."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.contract import InputContract
from edge.model_card import read_model_card
from shared_paths import ROOT
from train.augment import augment
from train.data import DatasetError, load_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def write_image(path: Path, colour: tuple[int, int, int], size: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((size, size, 3), 255, np.uint8)
    cv2.circle(image, (size // 2, size // 2), size // 3, colour, -1)
    cv2.imwrite(str(path), image)


def make_dataset(root: Path, classes=("cat", "dog", "owl"), per_class: int = 4) -> Path:
    palette = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{i}.png", palette[c % len(palette)])
    return root


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


# ---------------------------------------------------------------- datasets


def test_default_dataset_is_the_held_out_style_split():
    dataset = load_dataset()
    assert len(dataset.labels) == 60
    assert {p.name for p in dataset.train_roots} == {"twemoji", "noto"}
    assert [p.name for p in dataset.val_roots] == ["openmoji"]
    assert len(dataset.train) == 2 * 758 and len(dataset.val) == 758
    assert all("/openmoji/" in str(p) for p in dataset.val.files)


def test_random_split_is_stratified_and_repeatable(tmp_path):
    root = make_dataset(tmp_path / "d", per_class=10)
    a = load_dataset([root], val_split=0.2, seed=7)
    b = load_dataset([root], val_split=0.2, seed=7)
    assert a.val.files == b.val.files
    assert list(a.val.counts(3)) == [2, 2, 2]
    assert not set(a.val.files) & set(a.train.files)


def test_folder_of_style_folders_is_expanded(tmp_path):
    make_dataset(tmp_path / "styles" / "one")
    make_dataset(tmp_path / "styles" / "two")
    dataset = load_dataset([tmp_path / "styles"], val_split=0.25)
    assert {p.name for p in dataset.train_roots} == {"one", "two"}
    assert dataset.labels == ("cat", "dog", "owl")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "has no class folders"),
        (lambda root: (make_dataset(root), (root / "empty").mkdir()), "has no readable images"),
        (lambda root: make_dataset(root, classes=("only",)), "at least two classes"),
    ],
    ids=["missing", "empty", "empty-class", "one-class"],
)
def test_bad_datasets_are_refused_with_a_reason(tmp_path, build, message):
    root = tmp_path / "d"
    build(root)
    with pytest.raises(DatasetError, match=message):
        load_dataset([root], val_split=0.25)


def test_validation_classes_must_match(tmp_path):
    train = make_dataset(tmp_path / "train")
    val = make_dataset(tmp_path / "val", classes=("cat", "dog", "emu"))
    with pytest.raises(DatasetError, match="only in training: owl; only in validation: emu"):
        load_dataset([train], [val])


def test_corrupt_and_non_image_files_are_skipped_with_a_warning(tmp_path, capsys):
    root = make_dataset(tmp_path / "d")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "dog" / "notes.txt").write_text("hello")
    dataset = load_dataset([root], val_split=0.25)
    err = capsys.readouterr().err
    assert "broken.png: not a readable image" in err
    assert "notes.txt: not an image file" in err
    assert "skipped 1 unreadable file(s)" in err
    assert dataset.skipped == [str(root / "cat" / "broken.png")]
    assert all(p.suffix == ".png" and p.name != "broken.png" for p in dataset.train.files + dataset.val.files)


def test_a_dangling_link_is_skipped_with_a_warning(tmp_path, capsys):
    root = make_dataset(tmp_path / "d")
    (root / "cat" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    dataset = load_dataset([root], val_split=0.25)
    assert "gone.png: a link to a file that does not exist" in capsys.readouterr().err
    assert all(p.name != "gone.png" for p in dataset.train.files + dataset.val.files)


def test_an_empty_class_folder_is_one_error_without_a_misleading_warning(tmp_path, capsys):
    root = make_dataset(tmp_path / "d")
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="'empty' has no readable images"):
        load_dataset([root], val_split=0.25)
    assert "single image" not in capsys.readouterr().err


def test_the_same_picture_in_two_classes_is_reported(tmp_path, capsys):
    root = make_dataset(tmp_path / "d")
    (root / "dog" / "copy.png").write_bytes((root / "cat" / "0.png").read_bytes())
    load_dataset([root], val_split=0.25)
    err = capsys.readouterr().err
    assert "copy.png (class 'dog') is the same picture as" in err and "(class 'cat')" in err


# ---------------------------------------------------------------- augmentation


def test_augmentation_keeps_shape_and_is_seeded():
    image = np.full((64, 64, 3), 255, np.uint8)
    cv2.circle(image, (32, 32), 20, (250, 250, 250), -1)  # white "hair" inside an outline
    cv2.circle(image, (32, 32), 20, (0, 0, 0), 2)
    a = augment(image, np.random.default_rng(3))
    b = augment(image, np.random.default_rng(3))
    assert a.shape == image.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    outputs = [augment(image, np.random.default_rng(s)) for s in range(8)]
    assert any(not np.array_equal(o, image) for o in outputs)


def test_background_replacement_spares_white_inside_the_figure():
    from train.augment import _background_mask

    image = np.full((64, 64, 3), 255, np.uint8)
    cv2.circle(image, (32, 32), 20, (0, 0, 0), 2)
    mask = _background_mask(image)
    assert mask[0, 0] and mask[63, 63]
    assert not mask[32, 32]  # white enclosed by the outline is part of the figure


# ---------------------------------------------------------------- contract and model


def test_face_crop_is_square_enlarged_and_padded():
    from edge.contract import crop_face, face_crop_box

    contract = InputContract(labels=("a", "b"), input_size=64)
    left, top, side = face_crop_box((100, 100, 50, 60), contract)
    assert side == 120
    assert left + side / 2 == pytest.approx(125, abs=1)
    assert top + side / 2 == pytest.approx(130 - 9, abs=1)  # shifted up by 0.15 of the height
    frame = np.zeros((120, 160, 3), np.uint8)
    crop = crop_face(frame, (0, 0, 40, 40), contract)  # extends past the top-left corner
    assert crop.shape == (64, 64, 3)


def test_contract_round_trips_and_rejects_other_versions():
    contract = InputContract(labels=("a", "b", "c"), input_size=96, embedding_dim=8)
    data = json.loads(contract.to_json())
    assert InputContract.from_dict(data) == contract
    data["version"] = 99
    with pytest.raises(ValueError, match="version"):
        InputContract.from_dict(data)


def test_pixel_noise_moves_each_level_by_at_most_its_amplitude_and_is_seeded():
    from train.augment import pixel_noise

    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    images[0], images[1] = 0, 255
    noisy = pixel_noise(images, 2, np.random.default_rng(5))
    assert noisy.dtype == np.uint8 and np.array_equal(noisy, pixel_noise(images, 2, np.random.default_rng(5)))
    moved = noisy[2].astype(int) - images[2].astype(int)
    inside = (images[2] >= 2) & (images[2] <= 253)
    assert set(np.unique(moved[inside])) == {-2, -1, 0, 1, 2}
    assert noisy[0].max() == 2 and noisy[0].min() == 0 and noisy[1].min() == 253 and noisy[1].max() == 255  # clipped
    with pytest.raises(ValueError, match="amplitude"):
        pixel_noise(images, 0, np.random.default_rng(5))


def test_training_copies_are_originals_then_augmented_then_one_noisy_copy_per_amplitude():
    import keras

    from train.pipeline import TrainConfig, training_copies

    extractor = keras.Sequential([keras.Input((24, 24, 3)), keras.layers.Flatten()])  # "features": the pixels themselves

    images = np.random.default_rng(1).integers(20, 236, (5, 24, 24, 3), dtype=np.uint8)
    config = TrainConfig(augment_copies=1, noise_copies=(1, 3), feature_batch=2)
    copies = training_copies(config, extractor, images, np.random.default_rng(2))
    assert len(copies) == 4 and all(c.shape == (5, 24 * 24 * 3) for c in copies)
    np.testing.assert_array_equal(copies[0], images.reshape(5, -1))
    assert np.abs(copies[1] - copies[0]).max() > 3  # augmented: another picture
    for copy, amplitude in zip(copies[2:], (1, 3)):  # noisy: the same picture, each level moved by up to the amplitude
        assert np.abs(copy - copies[0]).max() == amplitude
    assert len(training_copies(TrainConfig(augment_copies=0, noise_copies=()), extractor, images, np.random.default_rng(2))) == 1


def test_batched_call_is_the_model_called_eagerly_batch_by_batch():
    import keras

    from train.model import batched_call

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(inputs)))
    images = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    expected = np.asarray(model(images.astype(np.float32), training=False))
    for batch in (3, 7, 32):  # a short last batch, one batch, a batch larger than the input
        np.testing.assert_allclose(batched_call(model, images, batch), expected, rtol=1e-5, atol=1e-6)
    assert batched_call(model, images[:0], 3).shape == (0, 4)
    import gc
    import weakref

    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None  # the graph kept for the model does not keep the model


def test_the_head_kernel_is_shrunk_by_its_l2_penalty():
    from train.pipeline import TrainConfig, train_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32) / np.sqrt(8)
    y = (x[:, 0] > 0).astype(int)
    norms = {}
    for l2 in (0.0, 0.1):
        config = TrainConfig(head_l2=l2, dropout=0.0, learning_rate=1e-2)
        head, _ = train_head(config, x, y, None, None, 2, print, epochs=20)
        norms[l2] = float(np.linalg.norm(head.get_layer("probabilities").get_weights()[0]))
    assert norms[0.1] < 0.5 * norms[0.0]


def test_the_model_blurs_its_pixels_with_a_fixed_kernel_before_the_scaling():
    import keras

    from train.model import SMOOTHING_LAYER, build_model, model_input
    from train.pipeline import feature_extractor

    contract = InputContract(labels=("a", "b"), input_size=32)
    inputs = keras.Input((32, 32, 3))
    front = keras.Model(inputs, model_input(inputs, contract))
    image = np.zeros((1, 32, 32, 3), np.float32)
    image[0, 10, 10] = 255.0
    out = (np.asarray(front(image)) + 1.0) * 127.5  # back to the pixel scale
    expected = cv2.filter2D(image[0], -1, np.outer([0.25, 0.5, 0.25], [0.25, 0.5, 0.25]), borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(out[0], expected, atol=1e-3)
    assert out[0, 10, 10, 0] == pytest.approx(255.0 / 4, abs=1e-3) and out[0, 9, 10, 0] == pytest.approx(255.0 / 8, abs=1e-3)
    model = build_model(InputContract(labels=("a", "b"), input_size=48), weights=None, alpha=0.35)
    extractor, _ = feature_extractor(InputContract(labels=("a", "b"), input_size=48), None, 0.35, "block_12_add")
    for built in (model, extractor):  # the model and the features its head is trained on see the same pixels
        layer = built.get_layer(SMOOTHING_LAYER)
        assert not layer.trainable and built.layers[1] is layer


def test_model_outputs_probabilities_and_standardised_embedding():
    from train.model import build_model

    contract = InputContract(labels=("a", "b", "c"), input_size=48)
    plain = build_model(contract, weights=None, alpha=0.35)
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3)).astype(np.float32)
    probabilities, embedding = plain.predict(images, verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    dim = embedding.shape[1]
    # The domain statistics are baked in: embedding = (pooled - mean) / std / sqrt(D).
    mean, std = np.full(dim, 0.5, np.float32), np.full(dim, 2.0, np.float32)
    adapted = build_model(contract, backbone=plain.get_layer("backbone"), domain=(mean, std))
    _, shifted = adapted.predict(images, verbose=0)
    pooled = embedding * np.sqrt(dim)
    np.testing.assert_allclose(shifted, (pooled - 0.5) / 2.0 / np.sqrt(dim), rtol=1e-4, atol=1e-5)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    from train.weights import WeightsError, resolve_weights

    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(str(tmp_path / "nope.h5"))


# ---------------------------------------------------------------- the command


def test_train_command_writes_every_artifact(tmp_path):
    data = make_dataset(tmp_path / "d", per_class=5)
    (data / "traits.csv").write_text("character,traits\nowl,glasses older\n")
    models = tmp_path / "models"
    result = run_train("--data", str(data), "--val-split", "0.4", "--models", str(models), "--weights", "random",
                       "--size", "32", "--epochs", "2", "--augment-copies", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    names = {p.name for p in models.iterdir()}
    assert {"lookalike.keras", "labels.txt", "model_card.json", "history.json", "training_curves.png",
            "confusion_matrix.png", "gallery.npz", "characters"} <= names
    assert not [n for n in names if n.startswith(".train-")]  # no staging folder left behind
    card = json.loads((models / "model_card.json").read_text())
    assert card["labels"] == ["cat", "dog", "owl"]
    # Everything the readers of the card require is written (edge.model_card refuses a card without it).
    read = read_model_card(models)
    assert read.data.val_split == 0.4 and read.face_domain.faces == card["face_domain"]["faces"]
    assert [str(p) for p in read.image_files("val")] == card["data"]["val_files"]  # absolute as written
    assert InputContract.from_dict(card["contract"]).input_size == 32
    assert set(card["metrics"]["validation"]) >= {"top1", "top5", "per_class_top1"}
    assert len(card["data"]["val_files"]) == 6 and len(card["data"]["train_files"]) == 9
    # One picture per class to fall back on, and every picture of the first style as a variant to show.
    assert sorted(p.name for p in (models / "characters").iterdir()) == ["cat", "cat.png", "dog", "dog.png", "owl", "owl.png"]
    from edge.runtime import sha256_file

    with np.load(models / "gallery.npz") as gallery:
        assert str(gallery["model_sha256"]) == sha256_file(models / "lookalike.keras")  # one training run
    with np.load(models / "gallery.npz") as gallery:
        shown = [str(f) for f in gallery["picture_files"]]
    assert shown and all((models / "characters" / f).is_file() for f in shown)
    gallery = np.load(models / "gallery.npz")
    assert gallery["embeddings"].shape == (3, card["contract"]["embedding_dim"])
    np.testing.assert_allclose(np.linalg.norm(gallery["embeddings"], axis=1), 1.0, rtol=1e-5)
    # The face domain the device centres real faces on (scikit-image's faces by default).
    assert gallery["face_mean"].shape == (card["contract"]["embedding_dim"],)
    assert float(gallery["temperature"]) > 0
    assert card["face_domain"]["faces"] >= 100
    # The classifier's last layer travels for the device's adaptive classifier (edge.style_domain).
    import keras

    kernel, bias = keras.models.load_model(models / "lookalike.keras").get_layer("probabilities").get_weights()
    np.testing.assert_array_equal(gallery["head_kernel"], kernel)
    np.testing.assert_array_equal(gallery["head_bias"], bias)
    assert card["metrics"]["validation"]["device_adaptation"]["counted"] >= 1
    # The characters' traits travel with the model, for the benchmark's sense measurement.
    assert card["character_traits"] == "character_traits.csv"
    assert (models / "character_traits.csv").read_text() == "character,traits\nowl,glasses older\n"


def test_the_validation_pictures_choose_nothing_the_model_carries(tmp_path):
    """Neither the statistics the model ships nor its epoch come from --val: two runs that differ only
    in their validation pictures write the same model (and the card says what chose the epoch)."""
    import keras

    train = make_dataset(tmp_path / "train", per_class=6)
    rng = np.random.default_rng(5)
    models = {}
    for run in ("a", "b"):
        val = tmp_path / f"val_{run}"
        for name in ("cat", "dog", "owl"):
            for i in range(3):
                write_image(val / name / f"{i}.png", tuple(int(v) for v in rng.integers(0, 256, 3)))
        models[run] = tmp_path / f"models_{run}"
        result = run_train("--data", str(train), "--val", str(val), "--models", str(models[run]), "--weights", "random",
                           "--size", "32", "--epochs", "6", "--augment-copies", "1", "--no-traits")
        assert result.returncode == 0, result.stderr[-2000:]
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    outputs = {run: keras.models.load_model(m / "lookalike.keras").predict(images, verbose=0) for run, m in models.items()}
    for a, b in zip(outputs["a"], outputs["b"]):  # probabilities and embedding: the statistics and the head
        np.testing.assert_array_equal(a, b)
    card = json.loads((models["a"] / "model_card.json").read_text())
    assert card["metrics"]["validation"]["epochs_from"].startswith("held-out share of the training pictures")


def test_a_traits_table_for_other_characters_stops_training_before_it_starts(tmp_path):
    data = make_dataset(tmp_path / "d", per_class=5)
    (data / "traits.csv").write_text("character,traits\nunicorn,hat\n")
    result = run_train("--data", str(data), "--val-split", "0.4", "--models", str(tmp_path / "m"), "--weights", "random",
                       "--size", "32", "--epochs", "2")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "'unicorn' is not one of the model's characters" in lines[0]
    assert not (tmp_path / "m" / "lookalike.keras").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/nonexistent/folder"], "does not exist"),
        (["--weights", "/nonexistent/weights.h5"], "weights file"),
        (["--size", "8"], "out of range (32..640)"),
        (["--faces", "/nonexistent/faces"], "face folder"),
        (["--epochs", "0"], "--epochs: 0 is out of range (at least 1)"),
        (["--patience", "0"], "--patience: 0 is out of range"),
        (["--augment-copies", "-1"], "--augment-copies: -1 is out of range (at least 0)"),
        (["--max-per-class", "0"], "--max-per-class: 0 is out of range (at least 1)"),
        (["--max-per-class", "-3"], "--max-per-class: -3 is out of range"),
        (["--epochs", "many"], "expected a whole number"),
        (["--noise-copies", "0"], "--noise-copies: 0 is out of range (1..16)"),
        (["--head-l2", "nan"], "--head-l2: nan is out of range"),
        (["--features", "block_12_add+block_99_add", "--weights", "random", "--size", "32", "--max-per-class", "1"],
         "MobileNetV2 has no layer 'block_99_add'"),
        (["--features", "out_relu+", "--weights", "random", "--size", "32", "--max-per-class", "1"], "distinct layer names"),
    ],
)
def test_train_command_bad_input_is_one_line_and_non_zero(tmp_path, args, message):
    result = run_train("--models", str(tmp_path / "m"), *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "m" / "lookalike.keras").exists()


def test_face_folder_without_faces_is_refused(tmp_path):
    from edge.faces import make_face_detector
    from train.faces import FacesError, folder_faces

    folder = tmp_path / "faces"
    write_image(folder / "not_a_face.png", (10, 200, 10), size=120)
    with pytest.raises(FacesError, match="no faces found"):
        folder_faces(folder, InputContract(labels=("a", "b"), input_size=64), make_face_detector("auto"))


def test_face_mean_finds_faces_as_the_device_does(tmp_path):
    """Training's face crops come from edge.faces.find_faces, the device's still-picture search."""
    from edge.contract import crop_face, read_rgb
    from edge.faces import find_faces, make_face_detector
    from shared_paths import write_group_photo
    from train.faces import folder_faces

    folder = tmp_path / "faces"
    folder.mkdir()
    group = write_group_photo(folder / "group.jpg")
    contract = InputContract(labels=("a", "b"), input_size=64)
    detector = make_face_detector("haar")
    crops = folder_faces(folder, contract, detector)
    rgb = read_rgb(group)
    expected = [crop_face(rgb, box, contract) for box in find_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), detector)]
    assert len(crops) == len(expected) == 2
    assert all(np.array_equal(a, b) for a, b in zip(crops, expected))


def test_interrupted_training_leaves_previous_model_untouched(tmp_path, monkeypatch):
    import train.pipeline as pipeline
    from train.__main__ import main

    data = make_dataset(tmp_path / "d", per_class=4)
    models = tmp_path / "models"
    models.mkdir()
    (models / "lookalike.keras").write_bytes(b"previous model")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "plot_confusion", interrupted)
    code = main(["--data", str(data), "--val-split", "0.5", "--models", str(models), "--weights", "random",
                 "--size", "32", "--epochs", "1", "--augment-copies", "0"])
    assert code == 130
    assert (models / "lookalike.keras").read_bytes() == b"previous model"
    assert [p.name for p in models.iterdir()] == ["lookalike.keras"]


# ---------------------------------------------------------------- leave-one-style-out


def make_styles(root: Path, styles=("ink", "pastel", "pixel"), classes=("cat", "dog", "owl"), per_class: int = 4) -> Path:
    for s, style in enumerate(styles):
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_image(root / style / name / f"{i}.png", ((60 * c + 40 * s) % 256, 80 + 50 * s, 200 - 60 * c), size=36 + 4 * s)
    return root


def synthetic_styles(seed: int = 0, per_style: int = 30, dim: int = 8, classes: int = 3):
    from train.loso import StyleFeatures

    rng = np.random.default_rng(seed)
    styles = []
    for s, name in enumerate(("ink", "pastel", "pixel")):
        targets = np.arange(per_style) % classes
        copies = [rng.normal(s, 1 + s, (per_style, dim)).astype(np.float32) + targets[:, None] for _ in range(2)]
        styles.append(StyleFeatures(name, targets, [f"{name}/{i}" for i in range(per_style)], copies))
    return styles


def test_loso_command_tests_every_style_and_writes_only_its_report(tmp_path):
    data = make_styles(tmp_path / "styles")
    models = tmp_path / "models"
    result = run_train("--protocol", "loso", "--data", str(data), "--models", str(models), "--weights", "random",
                       "--size", "32", "--epochs", "2", "--augment-copies", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.name for p in models.iterdir()] == ["loso_report.json"]  # no model, no staging, no temporary file
    report = json.loads((models / "loso_report.json").read_text())
    assert [f["test_style"] for f in report["folds"]] == ["ink", "pastel", "pixel"]
    for fold in report["folds"]:
        assert fold["test_style"] not in fold["train_styles"] and len(fold["train_styles"]) == 2
        assert fold["test_images"] == 12 and fold["fit_images"] + fold["held_out_images"] == 24
        for key in ("shipped_prior", "device_adaptation", "test_statistics_reference"):
            assert 0.0 <= fold[key]["top1"] <= fold[key]["top5"] <= 1.0
    for key in ("shipped_prior", "device_adaptation"):
        assert report["mean"][key]["top1"] == pytest.approx(np.mean([f[key]["top1"] for f in report["folds"]]), abs=1e-4)
    for fold in report["folds"]:  # the default --noise-copies 1 2 gives each held-out style its +-1 level copy
        assert set(fold["noise_agreement"]) == {"shipped_prior", "device_adaptation"}
        assert all(0.0 <= v <= 1.0 for v in fold["noise_agreement"].values())
    assert report["mean"]["noise_agreement"]["shipped_prior"] == pytest.approx(
        np.mean([f["noise_agreement"]["shipped_prior"] for f in report["folds"]]), abs=1e-4)
    assert report["training"]["noise_copies"] == [1, 2] and report["training"]["input_smoothing"] == "gaussian3"
    assert report["default_protocol"] is None  # these are not the embedded dataset's styles
    for fold in report["folds"]:  # each fold's model converted to int8 (make convert's recipe) and run by LiteRT
        int8 = fold["int8"]
        assert int8["calibration_images"] == 24 and int8["size_bytes"] > 0  # the two training styles' pictures
        assert int8["keras_top1"] == fold["shipped_prior"]["top1"]  # compared with the fold's own Keras answers
        # a tiny model's answers barely move under int8; outputs mixed up or compared with the wrong answers land near 0
        assert int8["agreement"] >= 0.75 and int8["device_adaptation"]["agreement"] >= 0.75
        assert 0.0 <= int8["top1"] <= 1.0 and 0.0 <= int8["device_adaptation"]["top1"] <= 1.0
    assert report["mean"]["int8"]["lowest_agreement"] == min(f["int8"]["agreement"] for f in report["folds"])
    assert report["mean"]["int8"]["agreement"] == pytest.approx(np.mean([f["int8"]["agreement"] for f in report["folds"]]), abs=1e-4)
    assert report["training"]["int8"] is not None
    assert sum(line.startswith("int8 top-1 agreement with Keras: ink ") for line in result.stdout.splitlines()) == 1
    assert report["seconds"]["total"] >= report["seconds"]["features"] > 0
    mean_row = [line for line in result.stdout.splitlines() if line.startswith("mean ")]
    assert len(mean_row) == 1 and f"{report['mean']['shipped_prior']['top1']:.3f}" in mean_row[0]


def test_a_folds_int8_model_is_calibrated_on_its_training_styles_only():
    from train.loso import REP_SIZE, StyleFeatures, calibration_files

    styles = [StyleFeatures(name, np.arange(400) % 4, [""] * 400, [],
                            tuple(Path(name) / f"c{i % 4}" / f"{i}.png" for i in range(400))) for name in ("ink", "pastel", "pixel")]
    for test in range(3):
        files = calibration_files(styles, test, seed=1)
        assert len(files) == REP_SIZE and not any(f.parts[0] == styles[test].name for f in files)
        counts = np.unique([f.parent.name for f in files], return_counts=True)[1]
        assert counts.max() - counts.min() <= 1  # class-balanced, as make convert takes them
    assert calibration_files(styles, 0, seed=1) == calibration_files(styles, 0, seed=1)


def test_loso_noise_agreement_compares_the_held_out_style_with_its_plus_minus_one_copy():
    from train.loso import StyleFeatures, noise_agreement
    from train.pipeline import DomainStats, TrainConfig, train_head

    rng = np.random.default_rng(0)
    clean = rng.normal(size=(60, 6)).astype(np.float32)
    targets = clean[:, :4].argmax(axis=1)
    config = TrainConfig(augment_copies=1, noise_copies=(2, 1), learning_rate=1e-2, dropout=0.0)
    head, _ = train_head(config, clean / np.sqrt(6), targets, None, None, 4, print, epochs=30)
    prior, order = DomainStats.of(clean), rng.permutation(60)
    # copies: originals, 1 augmented, +-2 noise, +-1 noise: only the last one is compared
    unchanged = StyleFeatures("s", targets, [""] * 60, [clean, -clean, -clean, clean.copy()])
    assert noise_agreement(config, head, prior, unchanged, order) == {
        "noise_agreement": {"shipped_prior": 1.0, "device_adaptation": 1.0}}
    moved = StyleFeatures("s", targets, [""] * 60, [clean, clean, clean, rng.normal(size=(60, 6)).astype(np.float32)])
    figures = noise_agreement(config, head, prior, moved, order)["noise_agreement"]
    assert figures["shipped_prior"] < 0.7 and figures["device_adaptation"] < 0.7
    assert noise_agreement(TrainConfig(noise_copies=(2,)), head, prior, moved, order) == {}


def test_nothing_a_fold_carries_comes_from_the_test_style():
    from train.loso import train_fold
    from train.pipeline import TrainConfig

    config = TrainConfig(epochs=3, patience=2)
    runs = []
    for seed in (0, 1):
        styles = synthetic_styles()
        styles[2].copies = [np.random.default_rng(seed).normal(50 * seed, 1 + 9 * seed, c.shape).astype(np.float32)
                            for c in styles[2].copies]  # the test style: anything at all
        runs.append(train_fold(config, styles, 2, 3, log=lambda message: None))
    (head_a, prior_a, sizes_a), (head_b, prior_b, sizes_b) = runs
    assert sizes_a == sizes_b
    np.testing.assert_array_equal(prior_a.mean, prior_b.mean)
    np.testing.assert_array_equal(prior_a.std, prior_b.std)
    for a, b in zip(head_a.get_weights(), head_b.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_held_out_share_keeps_skin_tone_variants_together_and_every_class_in_training():
    from train.data import held_out_rows, picture_group

    names = ["1f468-1f3fb-200d-1f9b2", "1f468-200d-1f9b2", "1f469-1f3fd-200d-1f9b2", "1f469-200d-1f9b2", "1f47d"]
    files = [Path("bald") / f"{n}.png" for n in names[:4]] + [Path("alien") / f"{names[4]}.png"]
    groups = [picture_group(f) for f in files]
    assert groups[0] == groups[1] == "bald/1f468-200d-1f9b2" and groups[2] == groups[3] != groups[0]
    fit, held = held_out_rows(np.array([0, 0, 0, 0, 1]), groups, 0.2, seed=3)
    assert sorted(held.tolist()) in ([0, 1], [2, 3])  # one whole group of the bald man or woman
    assert 4 in fit and not set(fit) & set(held)  # a class with one picture stays in training


@pytest.mark.parametrize(
    "build, data, extra, message",
    [
        (lambda root: make_styles(root, styles=("ink", "pastel")), "", [], "at least 3 styles, found 2 (ink, pastel)"),
        (lambda root: (make_styles(root), shutil.rmtree(root / "pastel" / "owl")), "", [],
         "style 'pastel' has no pictures of class 'owl'"),
        (lambda root: (make_styles(root), [p.unlink() for p in (root / "pixel" / "dog").iterdir()]), "", [],
         "style 'pixel' has no pictures of class 'dog'"),
        (make_styles, "ink", [], "is not a folder of style folders"),
        (make_styles, "", ["--val", "/tmp"], "--val does not apply to --protocol loso"),
        (make_styles, "", ["--val-split", "1.5"], "validation split 1.5 must be between 0 and 1"),
        (make_styles, "", ["--faces", "/tmp"], "--faces does not apply to --protocol loso"),
        (make_styles, "", ["--detector", "haar"], "--detector does not apply to --protocol loso"),
    ],
    ids=["two-styles", "style-missing-a-class", "empty-class-in-a-style", "no-style-folders", "val", "val-split",
         "faces", "detector"],
)
def test_loso_bad_input_is_one_line_and_nothing_written(tmp_path, build, data, extra, message):
    root = tmp_path / "styles"
    build(root)
    result = run_train("--protocol", "loso", "--data", str(root / data), "--models", str(tmp_path / "m"), "--weights", "random",
                       "--size", "32", *extra)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr[-1000:]
    assert not (tmp_path / "m").exists()


def test_no_int8_outside_the_loso_protocol_is_one_line_and_nothing_written(tmp_path):
    data = make_dataset(tmp_path / "d", per_class=4)
    result = run_train("--no-int8", "--data", str(data), "--models", str(tmp_path / "m"), "--weights", "random", "--size", "32")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "--no-int8 applies to --protocol loso only" in lines[0], result.stderr[-1000:]
    assert not (tmp_path / "m").exists()


def test_interrupted_loso_leaves_models_as_it_was(tmp_path, monkeypatch):
    import train.loso as loso
    from train.__main__ import main

    data = make_styles(tmp_path / "styles", per_class=3)
    models = tmp_path / "models"
    models.mkdir()
    (models / "loso_report.json").write_text("previous report")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loso, "table", interrupted)
    code = main(["--protocol", "loso", "--no-int8", "--data", str(data), "--models", str(models), "--weights", "random",
                 "--size", "32", "--epochs", "1", "--augment-copies", "0"])
    assert code == 130
    assert [p.name for p in models.iterdir()] == ["loso_report.json"]
    assert (models / "loso_report.json").read_text() == "previous report"


# ---------------------------------------------------------------- real weights


@pytest.mark.slow
def test_real_weights_training_run_produces_a_usable_model(trained_models_dir):
    import keras

    card = json.loads((trained_models_dir / "model_card.json").read_text())
    contract = InputContract.from_dict(card["contract"])
    assert contract.num_classes == 60 and contract.input_size == 96
    assert card["data"]["fingerprint_sha256"] and card["versions"]["tensorflow"]
    validation = card["metrics"]["validation"]
    assert 0.0 <= validation["top1"] <= validation["top5"] <= 1.0
    model = keras.models.load_model(trained_models_dir / "lookalike.keras")
    images = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.float32)
    outputs = model.predict(images, verbose=0)
    assert len(outputs) == len(contract.outputs) == 3  # probabilities, embedding, traits (the session head)
    probabilities, embedding, traits = outputs
    assert probabilities.shape == (2, 60) and embedding.shape == (2, contract.embedding_dim)
    assert traits.shape == (2, len(contract.traits)) and contract.traits
    assert card["architecture"]["backbone"].endswith("block_12_add and out_relu, ImageNet weights, frozen")
    assert contract.embedding_dim == embedding.shape[1] == 96 + 1280  # block_12_add and out_relu channels
    # Real ImageNet features separate the classes better than chance even after this short run.
    assert validation["top5"] > 5 / 60
