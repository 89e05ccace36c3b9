"""The face-trait head: labelled folders, the split, calibration, the head file, and the whole path
(make traits: head -> model with a traits output -> convert checks -> tuned match -> benchmark)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.face_traits import FACE_TRAITS, FaceTraitsError, read_labelled_faces, roc_auc, split_of
from edge.artifacts import VARIANTS
from shared_paths import CELEBA, ROOT, need
from train.traits import TraitHead, TraitHeadError, calibration_error, fit_logistic, train_head

ATTRIBUTES = ("5_o_Clock_Shadow Bald Blond_Hair Eyeglasses Goatee Gray_Hair Male Mustache No_Beard Wearing_Hat Young").split()


def labelled_folder(tmp_path: Path, rows: list[tuple[str, list[int]]], write_images: bool = True) -> Path:
    folder = tmp_path / "faces"
    (folder / "images").mkdir(parents=True)
    lines = [str(len(rows)), " ".join(ATTRIBUTES)] + [f"{name} " + " ".join(str(v) for v in values) for name, values in rows]
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if write_images:
        import cv2

        for name, _ in rows:
            cv2.imwrite(str(folder / "images" / name), np.full((20, 20, 3), 128, np.uint8))
    return folder


def test_a_labelled_folder_reads_each_trait_from_its_attribute():
    pass_rows = [("000010.jpg", [-1, 1, -1, 1, -1, -1, 1, -1, 1, -1, -1]),  # bald, glasses, man, no beard, older
                 ("000011.jpg", [1, -1, 1, -1, 1, 1, -1, 1, -1, 1, 1])]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        faces = read_labelled_faces(labelled_folder(Path(tmp), pass_rows))
    first = dict(zip(FACE_TRAITS, faces.labels[0]))
    second = dict(zip(FACE_TRAITS, faces.labels[1]))
    assert first == {"glasses": True, "hat": False, "bald": True, "white_hair": False, "blond_hair": False,
                     "beard": False, "goatee": False, "mustache": False, "male": True, "young": False}
    assert second["beard"] and second["goatee"] and second["hat"] and second["white_hair"] and not second["male"]


def test_the_split_is_a_rule_on_the_picture_number():
    assert [split_of(f"0000{d}{d}.jpg") for d in range(10)] == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    with pytest.raises(FaceTraitsError):
        split_of("portrait.jpg")


@pytest.mark.parametrize("problem, words", [
    ("no attribute file", "has no list_attr_celeba.txt"),
    ("missing picture", "names 1 picture(s) that are not in"),
    ("bad value", "expected a file name and 11 values of 1 or -1"),
    ("missing attribute", "Eyeglasses are missing"),
])
def test_bad_labelled_folders_get_one_line(tmp_path, problem, words):
    rows = [("000001.jpg", [1] * 11), ("000002.jpg", [-1] * 11)]
    folder = labelled_folder(tmp_path, rows)
    text = (folder / "list_attr_celeba.txt").read_text()
    if problem == "no attribute file":
        (folder / "list_attr_celeba.txt").unlink()
    elif problem == "missing picture":
        (folder / "images" / "000002.jpg").unlink()
    elif problem == "bad value":
        (folder / "list_attr_celeba.txt").write_text(text.replace("000002.jpg -1", "000002.jpg 0"))
    else:
        (folder / "list_attr_celeba.txt").write_text(text.replace("Eyeglasses", "Glasses"))
    with pytest.raises(FaceTraitsError) as error:
        read_labelled_faces(folder)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_roc_auc_counts_pairs_and_ties_half():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.5, 0.5, 0.9])) == pytest.approx(0.875)
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_the_head_is_calibrated_on_validation_and_folds_into_one_dense_layer():
    """Synthetic features whose first channels carry each trait: the head finds them, its
    probabilities match the observed rates, and applying it to raw features equals the fit."""
    rng = np.random.default_rng(0)

    def sample(n):
        labels = rng.random((n, len(FACE_TRAITS))) < 0.3
        x = rng.normal(0, 1, (n, 40)) * 3.0 + 5.0
        x[:, : len(FACE_TRAITS)] += 6.0 * labels
        return x, labels

    (xt, yt), (xv, yv), (xs, ys) = sample(1500), sample(800), sample(800)
    kernel, bias, thresholds, metrics = train_head({"train": xt, "val": xv}, {"train": yt, "val": yv}, lambda m: None)
    p = 1.0 / (1.0 + np.exp(-(xs @ kernel + bias)))
    for t, name in enumerate(FACE_TRAITS):
        assert roc_auc(ys[:, t], p[:, t]) > 0.85, name
        assert calibration_error(ys[:, t], p[:, t]) < 0.06, name
        assert 0.05 <= thresholds[t] <= 0.95 and metrics[name]["val_auc"] > 0.85


def test_a_channel_that_barely_varies_gets_no_outsized_weight():
    """A feature channel nearly constant on the training faces (a ReLU channel that rarely fires) but
    carrying the trait: folded into the kernel by its spread alone, its weight would be thousands of
    times the others', which int8 and dynamic-range conversion cannot hold."""
    rng = np.random.default_rng(2)

    def sample(n):
        labels = rng.random((n, len(FACE_TRAITS))) < 0.3
        x = rng.normal(0, 1, (n, 40)) * 3.0 + 5.0
        x[:, : len(FACE_TRAITS)] += 6.0 * labels
        x[:, 39] = 1e-4 * labels[:, 0] + rng.normal(0, 1e-5, n)  # glasses, seen through a tiny spread
        return x, labels

    (xt, yt), (xv, yv) = sample(1500), sample(800)
    kernel, _, _, _ = train_head({"train": xt, "val": xv}, {"train": yt, "val": yv}, lambda m: None)
    ordinary = np.median(np.abs(kernel[:, 0]))
    assert np.abs(kernel[39, 0]) < 50 * ordinary


def test_logistic_regression_recovers_a_known_direction():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3))
    y = rng.random(4000) < 1.0 / (1.0 + np.exp(-(2.0 * x[:, 0] - 1.0)))
    w, b = fit_logistic(x, y, 0.0)
    assert w[0] == pytest.approx(2.0, abs=0.25) and b == pytest.approx(-1.0, abs=0.2) and abs(w[1]) < 0.2


def test_a_head_file_round_trips_and_a_broken_one_is_refused(tmp_path):
    head = TraitHead(FACE_TRAITS, np.ones((6, len(FACE_TRAITS)), np.float32), np.zeros(len(FACE_TRAITS), np.float32),
                     np.full(len(FACE_TRAITS), 0.4, np.float32), "block_12_depthwise_relu", 2, 224, "ab" * 32, {"x": 1}, "gaussian3")
    head.save(tmp_path / "head.npz")
    back = TraitHead.load(tmp_path / "head.npz")
    assert back.traits == FACE_TRAITS and back.metrics == {"x": 1} and np.array_equal(back.kernel, head.kernel)
    assert [p.name for p in tmp_path.iterdir()] == ["head.npz"]  # no temporary left behind
    (tmp_path / "broken.npz").write_bytes(b"not a head")
    for name, words in (("missing.npz", "does not exist"), ("broken.npz", "is not a readable trait head")):
        with pytest.raises(TraitHeadError, match=words):
            TraitHead.load(tmp_path / name)


def test_a_head_trained_on_other_input_smoothing_is_refused_with_one_line(tmp_path):
    from edge.contract import InputContract
    from train.model import INPUT_SMOOTHING
    from train.traits import check_compatible

    head = TraitHead(FACE_TRAITS, np.ones((6, len(FACE_TRAITS)), np.float32), np.zeros(len(FACE_TRAITS), np.float32),
                     np.full(len(FACE_TRAITS), 0.4, np.float32), "block_12_depthwise_relu", 2, 224, "ab" * 32, {}, INPUT_SMOOTHING)
    head.save(tmp_path / "head.npz")
    assert TraitHead.load(tmp_path / "head.npz").input_smoothing == INPUT_SMOOTHING
    with np.load(tmp_path / "head.npz") as data:  # a head file from before the smoothing (format 1)
        arrays = {k: data[k] for k in data.files if k != "input_smoothing"}
    arrays["format_version"] = np.array(1)
    np.savez(tmp_path / "old.npz", **arrays)
    old = TraitHead.load(tmp_path / "old.npz")
    assert old.input_smoothing == "none"
    with pytest.raises(TraitHeadError, match="input smoothing 'none'.*make traits"):
        check_compatible(old, None, InputContract(labels=("a", "b")))  # refused before the backbone is read


def test_the_shipped_head_is_documented_and_fits_the_shared_weights():
    from train.traits import DEFAULT_HEAD, MATCH_FILE, read_match_weights

    from train.model import INPUT_SMOOTHING

    head = TraitHead.load(DEFAULT_HEAD)
    assert head.traits == FACE_TRAITS and "non-commercial" in head.metrics["licence"]
    assert head.input_smoothing == INPUT_SMOOTHING
    assert "non-commercial" in (DEFAULT_HEAD.parent / "README.md").read_text()
    assert set(read_match_weights(MATCH_FILE)) and all(v >= 0 for v in read_match_weights(MATCH_FILE).values())
    for trait in ("glasses", "hat", "bald", "white_hair", "blond_hair", "male"):
        assert head.metrics["traits"][trait]["test_auc"] > 0.9, trait


def run(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def random_head(rows: int, size: int = 64) -> TraitHead:
    rng = np.random.default_rng(0)
    return TraitHead(FACE_TRAITS, rng.normal(0, 0.01, (rows, len(FACE_TRAITS))).astype(np.float32),
                     np.zeros(len(FACE_TRAITS), np.float32), np.full(len(FACE_TRAITS), 0.5, np.float32),
                     "block_12_depthwise_relu", 2, size, "0" * 64, {}, "gaussian3")


QUICK_RANDOM = ["--weights", "random", "--size", "64", "--max-per-class", "1", "--epochs", "1", "--augment-copies", "0"]


def test_a_head_for_another_backbone_stops_training_with_one_line(tmp_path):
    random_head(576).save(tmp_path / "head.npz")  # a 64 px MobileNetV2 gives 576 channels x 2 x 2 = 2304 features
    result = run(["-m", "train", "--models", str(tmp_path / "m"), *QUICK_RANDOM, "--traits", str(tmp_path / "head.npz")])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and "reads 576 features" in errors[0] and "make traits" in errors[0]
    assert not (tmp_path / "m" / "lookalike.keras").exists()


def test_a_head_trained_on_other_weights_is_attached_with_a_warning(tmp_path):
    random_head(2304).save(tmp_path / "head.npz")
    result = run(["-m", "train", "--models", str(tmp_path / "m"), *QUICK_RANDOM, "--traits", str(tmp_path / "head.npz")])
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stdout.splitlines() if "trained on other backbone weights" in line]
    assert len(warnings) == 1 and "make traits" in warnings[0]
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["contract"]["traits"] == list(FACE_TRAITS) and card["trait_head"]["same_backbone_weights"] is False


def test_make_traits_without_faces_says_what_it_needs():
    result = subprocess.run(["make", "-s", "traits", "FACES="], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "make traits needs FACES=" in result.stderr


# ---------------------------------------------------------------- the whole path, real weights and faces


@pytest.fixture(scope="module")
def traits_path(trait_head_file, converted_models_dir, tmp_path_factory) -> dict[str, Path]:
    """make traits in small: the session's quick model (tests/conftest.py) carries a head built from 40
    labelled faces per split, and its conversion checked the traits on labelled test faces. A private
    copy, because the match tuning below writes into it."""
    import shutil

    models = Path(shutil.copytree(converted_models_dir, tmp_path_factory.mktemp("traits") / "models"))
    return {"head": trait_head_file, "models": models, "faces": need(CELEBA)}


@pytest.mark.slow
@pytest.mark.shared
def test_the_model_carries_the_traits_and_convert_checks_them(traits_path):
    card = json.loads((traits_path["models"] / "model_card.json").read_text())
    assert card["contract"]["traits"] == list(FACE_TRAITS) and card["contract"]["outputs"][-1] == "traits"
    sidecar = json.loads((traits_path["models"] / "lookalike_int8.json").read_text())
    assert set(sidecar["outputs"]) == {"probabilities", "embedding", "traits"}
    assert len(sidecar["contract"]["trait_thresholds"]) == len(FACE_TRAITS)
    report = json.loads((traits_path["models"] / "conversion_report.json").read_text())
    block = report["traits"]
    assert block["split"] == "test" and block["faces"] > 20
    assert set(block["variants"]) == set(VARIANTS) and block["variants"]["float32"]["agreement"] == 1.0
    assert block["variants"]["float32"]["answer_agreement"] == 1.0
    assert block["keras_auc"]["male"] > 0.6  # even 40 training faces tell men from women
    assert abs(block["variants"]["int8"]["auc"]["male"] - block["keras_auc"]["male"]) < 0.1


@pytest.mark.slow
@pytest.mark.shared
def test_tuning_writes_weights_the_device_then_uses(traits_path, tmp_path):
    out = tmp_path / "match.json"
    result = run(["-m", "train.match", "--faces", str(traits_path["faces"]), "--models", str(traits_path["models"]),
                  "--out", str(out), "--max-faces", "60"])
    assert result.returncode == 0, result.stderr[-2000:]
    tuned = json.loads(out.read_text())
    assert tuned["tuned_on"]["split"] == "val" and set(tuned["weights"]) == set(tuned["terms"])
    with np.load(traits_path["models"] / "gallery.npz") as data:
        assert [float(w) for w in data["trait_weights"]] == [tuned["weights"][t] for t in tuned["terms"]]


@pytest.mark.slow
@pytest.mark.shared
def test_the_benchmark_reports_the_labelled_test_split(traits_path, tmp_path):
    result = run(["-m", "benchmarks", "--models", str(traits_path["models"]), "--out", str(tmp_path), "--faces-only",
                  "--faces", str(traits_path["faces"]), "--max-labelled", "40", "--no-plots", "--quiet"])
    assert result.returncode == 0, result.stderr[-2000:]
    block = json.loads((tmp_path / "benchmark.json").read_text())["labelled_faces"]
    assert block["split"] == "test" and block["without_traits"]["faces"] > 20
    assert set(block["trait_auc"]) == set(FACE_TRAITS)
    assert block["stability"]["faces"] == block["without_traits"]["faces"]
    assert "Labelled faces" in (tmp_path / "benchmark.md").read_text()


# ---------------------------------------------------------------- hostile input (each failed before its fix)


def test_a_truncated_head_file_is_one_error(tmp_path):
    random_head(2304).save(tmp_path / "head.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "head.npz").read_bytes()[:5000])
    with pytest.raises(TraitHeadError, match="is not a readable trait head"):
        TraitHead.load(tmp_path / "cut.npz")


def test_undefined_metrics_are_null_not_nan():
    from train.traits import finite

    assert finite(float("nan")) is None and finite(0.123456) == 0.1235


@pytest.mark.parametrize("command, words", [
    (["-m", "train.traits", "--faces", "nowhere", "--out", "{tmp}"], "is a folder"),
    (["-m", "train.traits", "--faces", "nowhere", "--out", "{tmp}/file.txt/head.npz"], "cannot write"),
    (["-m", "train.traits", "--faces", "nowhere", "--size", "50"], "out of range"),
    (["-m", "train.match", "--faces", "nowhere", "--max-faces", "0"], "--max-faces must be at least 1"),
    (["-m", "train.match", "--faces", "nowhere", "--out", "{tmp}"], "is a folder"),
])
def test_bad_arguments_and_outputs_fail_before_any_work(tmp_path, command, words):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    result = run([part.replace("{tmp}", str(tmp_path)) for part in command], timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(errors) == 1 and errors[0].startswith("error:") and words in errors[0], result.stderr
