"""make convert: tiny random-weight models -> four verified TFLite variants; bad input; the committed fixture.

The conversion tests use a 48 px, alpha 0.1 MobileNetV2 (tests/fixtures/make_tiny_models.py, built
once per session: tests/conftest.py) so each conversion of all four variants takes seconds. The end-to-end test on a briefly trained real
model uses the session fixture ``trained_models_dir`` from tests/conftest.py and is marked slow.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from convert import ConvertError, dataset, export, pipeline  # noqa: E402
from convert.__main__ import EXIT_FLAGGED, main  # noqa: E402
from edge.command import EXIT_ERROR, EXIT_INTERRUPTED  # noqa: E402
from edge import artifacts  # noqa: E402
from edge.artifacts import MANIFEST_FILE, MODEL_CARD_FILE, REPORT_FILE  # noqa: E402
from edge.model_card import ModelCard  # noqa: E402
from edge.runtime import SIDECAR_VERSION, VARIANTS, LookalikeModel, sha256_file  # noqa: E402
from fixtures.make_tiny_models import DATASET, FIXTURE_DIR, set_batchnorm_statistics  # noqa: E402

TINY_REP = 30  # the calibration size of the session fixture tiny_converted (tests/conftest.py)


@pytest.fixture
def models_dir(tiny_source, tmp_path) -> Path:
    """A private copy of the tiny source for tests that change or convert it."""
    return Path(shutil.copytree(tiny_source, tmp_path / "models"))


@pytest.fixture
def converted(tiny_converted):
    """All four variants converted and checked once (session fixture, tests/conftest.py), for the tests
    that inspect the results."""
    return tiny_converted


_SAVED_MODELS: dict[str, Path] = {}  # fingerprint of (weights, contract) -> a SavedModel exported once
_CONVERTED: dict[tuple, bytes] = {}  # (variant, SavedModel fingerprint, calibration, recipe) -> .tflite bytes


def _fingerprint(*arrays: np.ndarray, text: str = "") -> str:
    digest = hashlib.sha256(text.encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@pytest.fixture(autouse=True)
def identical_conversions_run_once(monkeypatch, tmp_path_factory):
    """Most tests here convert the same tiny model with the same settings to check what happens around
    the conversion (a failure, Ctrl-C, a flag). TensorFlow's export and conversion of identical inputs
    give identical bytes, so they run once per module and are reused: the key is the model's weights
    and contract, the variant, and for int8 the calibration images and the recipe. A test that replaces the
    converter (``export.saved_model_converter``) or an exporter always gets a real run."""
    real_export = export.export_saved_model
    real_converter = export.saved_model_converter
    exported: dict[str, str] = {}  # SavedModel folder of this test -> its fingerprint

    def export_once(model, contract, directory):
        key = _fingerprint(*model.get_weights(), text=json.dumps(contract.to_dict(), sort_keys=True))
        if key not in _SAVED_MODELS:
            done = real_export(model, contract, directory)
            _SAVED_MODELS[key] = Path(shutil.copytree(done, tmp_path_factory.mktemp("saved_model") / "model"))
        else:
            shutil.copytree(_SAVED_MODELS[key], directory)
        exported[str(Path(directory))] = key
        return Path(directory)

    def convert_once(variant, real):
        def convert(saved_model, calibration=None):
            key = exported.get(str(Path(saved_model)))
            if key is None or export.saved_model_converter is not real_converter:
                return real(saved_model, calibration)
            calibrated = variant == "int8" and calibration is not None  # only int8 reads the calibration
            memo = (variant, key, _fingerprint(calibration.images) if calibrated else "",
                    repr(calibration.recipe) if calibrated else "")
            if memo not in _CONVERTED:
                _CONVERTED[memo] = real(saved_model, calibration)
            return _CONVERTED[memo]
        return convert

    monkeypatch.setattr(export, "export_saved_model", export_once)
    for variant, exporter in list(export.EXPORTERS.items()):
        monkeypatch.setitem(export.EXPORTERS, variant, convert_once(variant, exporter))


def tflite_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".tflite")


def leftovers(folder: Path) -> list[str]:
    """Temporary or staging files a failed run must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith(pipeline.STAGING_PREFIX))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# --- the conversion itself -------------------------------------------------------------------


def test_all_four_variants_are_written_with_sidecars(converted):
    folder, result = converted
    assert tflite_files(folder) == sorted(f"lookalike_{v}.tflite" for v in VARIANTS)
    assert result.published
    for variant in VARIANTS:
        path = folder / f"lookalike_{variant}.tflite"
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["format_version"] == SIDECAR_VERSION
        assert sidecar["variant"] == variant
        assert sidecar["model_file"] == path.name
        assert sidecar["tflite_sha256"] == sha256_file(path)
        assert sidecar["source_model_sha256"] == sha256_file(folder / "lookalike.keras")
        assert sidecar["contract"]["labels"] == ["astronaut", "superhero", "vampire"]
        assert sorted(sidecar["outputs"].values()) == [0, 1, 2]  # probabilities, embedding, traits
        assert sidecar["gallery"] == "gallery.npz" and sidecar["characters"] == "characters"
    assert leftovers(folder) == []


def test_output_map_points_at_the_right_tensors(converted):
    folder, _ = converted
    for variant in VARIANTS:
        model = LookalikeModel(folder / f"lookalike_{variant}.tflite")
        prediction = model.predict(np.full((48, 48, 3), 128, np.uint8))
        assert prediction.probabilities.shape == (3,)
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=0.02)
        assert prediction.embedding.shape == (model.contract.embedding_dim,)


def test_int8_takes_camera_pixels_unchanged(converted):
    folder, _ = converted
    sidecar = json.loads((folder / "lookalike_int8.json").read_text())
    assert sidecar["input"] == {"dtype": "uint8", "scale": 1.0, "zero_point": 0}
    # the default (mixed) recipe: integer backbone, float head, so float outputs
    assert sidecar["output_dtypes"] == {"probabilities": "float32", "embedding": "float32", "traits": "float32"}
    quantization = sidecar["quantization"]
    assert quantization["mode"] == "mixed" and quantization["float_head"] is True
    assert quantization["input_scaling"] == "folded into the first convolution"
    assert quantization["float_layers"] == ["Conv1", "expanded_conv", "block_1", "block_2", "block_3"]
    assert quantization["activation_ranges"] == "least quantization error on the representative images"
    assert quantization["pooled_feature_bias"] == "corrected in the float head"
    assert quantization["ops"] > quantization["integer_ops"] > quantization["ops"] // 2
    model = LookalikeModel(folder / "lookalike_int8.tflite")
    assert model.input_dtype == np.uint8
    float_sidecar = json.loads((folder / "lookalike_float32.json").read_text())
    assert float_sidecar["input"] == {"dtype": "float32", "scale": None, "zero_point": None}


def test_int8_head_is_float_from_every_feature_pooling(converted):
    """The float head starts at the global pooling of *each* feature layer (the fixture pools two): a
    pooling left integer rounds its pooled features to an int8 grid."""
    from convert import tf_private
    from edge.runtime import interpreter_class

    folder, _ = converted
    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(folder / "lookalike_int8.tflite"))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    pools = [o for o in tf_private.ops_details(interpreter)
             if o["op_name"] == "MEAN" and len(tensors[o["inputs"][0]]["shape"]) == 4 and len(tensors[o["outputs"][0]]["shape"]) == 2]
    assert len(pools) == 2
    assert [tensors[p["outputs"][0]]["dtype"] for p in pools] == [np.float32, np.float32]


def test_int8_head_weights_are_float16_behind_a_dequantize(converted):
    """The default recipe stores the float head's weight matrices as float16 (convert.float16_weights):
    each fully connected op reads a float32 tensor that a DEQUANTIZE writes from float16."""
    from convert import tf_private
    from edge.runtime import interpreter_class

    folder, _ = converted
    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(folder / "lookalike_int8.tflite"))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = tf_private.ops_details(interpreter)
    writer = {o["outputs"][0]: o for o in ops}
    dense = [o for o in ops if o["op_name"] == "FULLY_CONNECTED"]
    assert dense
    for op in dense:
        weights = writer[op["inputs"][1]]
        assert weights["op_name"] == "DEQUANTIZE" and tensors[weights["inputs"][0]]["dtype"] == np.float16
    sidecar = json.loads((folder / "lookalike_int8.json").read_text())
    assert sidecar["quantization"]["head_weights"] == "float16"


def test_float16_weights_answer_as_float32_ones_in_half_the_bytes(converted):
    """convert.float16_weights on the float32 variant: the dense weights shrink to half their bytes,
    and the model answers as before to float16 rounding."""
    from convert import float16_weights, tf_private
    from convert.quant_debug import run_tflite
    from edge.runtime import interpreter_class

    folder, _ = converted
    original = (folder / "lookalike_float32.tflite").read_bytes()
    cls, _ = interpreter_class()
    interpreter = cls(model_content=original)
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    dense = [int(np.prod(shapes[o["inputs"][1]])) for o in tf_private.ops_details(interpreter) if o["op_name"] == "FULLY_CONNECTED"]
    halved, matrices = float16_weights.halve(original)
    assert matrices == len(dense) == 2  # the classifier and the trait head
    assert len(original) - len(halved) >= 2 * sum(dense) - 512  # less what the two ops and tensors added
    images = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 3), dtype=np.uint8)
    (p, e), (p16, e16) = run_tflite(original, images), run_tflite(halved, images)
    assert np.array_equal(e, e16)  # the embedding is computed before the head
    assert np.abs(p - p16).max() < 1e-3 and (p != p16).any()


def test_int8_pixels_reach_the_first_convolution_unscaled(converted):
    """The pixel scaling is folded into Conv1: between the uint8 input and it only the fixed blur
    (a depthwise convolution) and the padding, no scaling arithmetic."""
    from convert import tf_private
    from edge.runtime import interpreter_class

    folder, _ = converted
    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(folder / "lookalike_int8.tflite"))
    details = tf_private.ops_details(interpreter)
    ops = [o["op_name"] for o in details]
    before = set(ops[: ops.index("CONV_2D")])
    assert before <= {"QUANTIZE", "DEQUANTIZE", "DEPTHWISE_CONV_2D", "PAD", "PADV2"} and before & {"PAD", "PADV2"}, ops[:5]
    # Conv1 is float in the default recipe, and so is what comes before it: the blurred pixels reach
    # it as they are, not rounded to whole levels.
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    assert [dtypes[o["outputs"][0]] for o in details[: ops.index("CONV_2D") + 1]] == [np.float32] * (ops.index("CONV_2D") + 1)
    float_ops = [o["op_name"] for o in tf_private.ops_details(cls(model_path=str(folder / "lookalike_float32.tflite")))]
    # The float variants keep the model as trained: Conv1 pads by itself (the converter may fold the
    # scaling into the blur's depthwise convolution, so no MUL need be left to see).
    assert not {"PAD", "PADV2"} & set(float_ops[: float_ops.index("CONV_2D")]), float_ops[:5]


def test_least_mse_range_clips_rare_outliers_and_keeps_a_dense_range():
    """convert.ranges on known histograms: a unit Gaussian whose calibrated range (-20..40) was set
    by values too rare to be sampled gets a range that fits the Gaussian; values spread evenly over
    0..6 keep (almost) their whole range."""
    from convert import ranges

    rng = np.random.default_rng(0)
    low, high = -20.0, 40.0
    counts, edges = np.histogram(np.clip(rng.normal(0, 1, 200_000), low, high), bins=ranges.BINS, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    chosen = ranges.best_range(centres, counts, low, high)
    assert -8 < chosen[0] < -2 and 2 < chosen[1] < 8
    assert ranges.quantization_mse(centres, counts, *chosen) < 0.1 * ranges.quantization_mse(centres, counts, low, high)
    # the histogram's error is the error of quantizing the values themselves, as TFLite does
    values = np.concatenate([rng.normal(0, 1, 200_000), [-20.0, 40.0]])
    counts, edges = np.histogram(values, bins=ranges.BINS, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    scale = (high - low) / 255
    zero_point = np.round(-128 - low / scale)
    direct = np.mean(((np.clip(np.round(values / scale) + zero_point, -128, 127) - zero_point) * scale - values) ** 2)
    assert ranges.quantization_mse(centres, counts, low, high) == pytest.approx(direct, rel=0.05)
    even = rng.uniform(0, 6, 100_000)
    counts, edges = np.histogram(even, bins=ranges.BINS, range=(0.0, 6.0))
    chosen = ranges.best_range((edges[:-1] + edges[1:]) / 2, counts, 0.0, 6.0)
    assert chosen[0] == 0.0 and chosen[1] > 5.8


def test_tightened_ranges_are_written_into_the_calibrated_model(tiny_source):
    """Each activation's range as tightened lies inside the calibrated one, some are narrower and
    their quantization error lower; the input (camera pixels) and the outputs keep theirs; the
    tightened model quantizes and still answers like the float model."""
    from convert import export, input_scaling, ranges, source, tf_private

    src_model = source.read_source(tiny_source)
    model = source.load_keras_model(src_model)
    images = np.random.default_rng(1).integers(0, 256, (12, 48, 48, 3), dtype=np.uint8)
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    with tempfile.TemporaryDirectory() as tmp:
        saved = export.export_saved_model(input_scaling.checked_fold(model, images), src_model.contract, Path(tmp) / "sm")
        calibrated = export.calibrate(saved, images)
    tightened, changes = ranges.tighten(calibrated, images)
    before, after = tf_private.read_flatbuffer(calibrated), tf_private.read_flatbuffer(tightened)
    assert len(changes) > 10
    graph_before, graph_after = before.subgraphs[0], after.subgraphs[0]
    narrower = 0
    for change in changes:
        low, high = change.calibrated
        assert low <= change.chosen[0] <= change.chosen[1] <= high
        assert change.mse_chosen <= change.mse_calibrated
        narrower += change.chosen != change.calibrated
    assert narrower > 0 and any(c.mse_chosen < 0.9 * c.mse_calibrated for c in changes)
    written = {}
    for t_before, t_after in zip(graph_before.tensors, graph_after.tensors):
        q = t_after.quantization
        if q is not None and q.min is not None and len(np.atleast_1d(q.min)) == 1:
            written[t_after.name.decode()] = (float(np.atleast_1d(q.min)[0]), float(np.atleast_1d(q.max)[0]))
    for change in changes:
        assert written[change.name] == pytest.approx(change.chosen, rel=1e-6, abs=1e-6)
    for index in [*graph_before.inputs, *graph_before.outputs]:
        q_before, q_after = graph_before.tensors[index].quantization, graph_after.tensors[index].quantization
        assert np.array_equal(np.atleast_1d(q_before.min), np.atleast_1d(q_after.min))
        assert np.array_equal(np.atleast_1d(q_before.max), np.atleast_1d(q_after.max))
    quantized = export.quantize_calibrated(tightened, export.Int8Recipe())
    from convert.quant_debug import run_tflite

    probabilities, _ = run_tflite(quantized, images)
    reference = np.asarray(model.predict(images.astype(np.float32), verbose=0)[0])
    assert np.abs(probabilities - reference).max() < 0.1


def test_bias_correction_takes_the_mean_error_out_in_the_head():
    """A tiny model with domain statistics, so that its float head subtracts a mean as make train's
    does: the correction leaves the integer part as it was and moves that mean by the pooled
    features' mean int8 error, so on the calibration images the int8 embedding's mean error is gone."""
    import keras

    from convert import bias_correction, export, input_scaling, tf_private
    from convert.quant_debug import run_tflite
    from edge.contract import InputContract
    from train.model import build_backbone, build_model

    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    contract = InputContract(labels=("a", "b", "c"), input_size=48)
    backbone = build_backbone(contract, None, 0.35, "block_12_add+out_relu")
    dim = 32 + 1280
    model = build_model(contract, backbone=backbone, domain=(rng.normal(0, 0.1, dim), rng.uniform(0.5, 2.0, dim)))
    images = rng.integers(0, 256, (16, 48, 48, 3), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    set_batchnorm_statistics(model, images)  # or every picture gets the same features
    with tempfile.TemporaryDirectory() as tmp:
        saved = export.export_saved_model(input_scaling.checked_fold(model, images), contract, Path(tmp) / "sm")
        calibrated = export.calibrate(saved, images)

    def quantize(model_bytes: bytes) -> bytes:
        return export.quantize_calibrated(model_bytes, export.Int8Recipe())

    plain = quantize(calibrated)
    corrected, correction = bias_correction.correct(calibrated, quantize, images)
    assert correction is not None and correction.features == dim and correction.rms_error_after < correction.rms_error_before
    assert export.int8_effect([], correction) == {"pooled_feature_bias": {  # what conversion_report.json says of it
        "features": dim, "rms_shift": round(correction.rms_shift, 6),
        "rms_error_before": round(correction.rms_error_before, 6), "rms_error_after": round(correction.rms_error_after, 6)}}

    def pooled_and_mean(model_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
        flat = tf_private.read_flatbuffer(model_bytes)
        features, constant = bias_correction.standardisation_sub(flat)
        buffer = flat.buffers[flat.subgraphs[0].tensors[constant].buffer]
        return bias_correction.pooled_features(model_bytes, features, images), np.frombuffer(bytes(buffer.data), np.float32)

    (float_pooled, _), (plain_pooled, plain_mean), (pooled, mean) = map(pooled_and_mean, (calibrated, plain, corrected))
    assert np.array_equal(pooled, plain_pooled)  # the integer part is unchanged
    assert np.allclose(mean - plain_mean, (pooled - float_pooled).mean(axis=0), atol=1e-5)
    reference = run_tflite(calibrated, images)[1]
    before, after = (np.abs((run_tflite(m, images)[1] - reference).mean(axis=0)).max() for m in (plain, corrected))
    assert after < 0.01 * before


@pytest.mark.parametrize("size,kernel,stride,expected", [(48, 3, 2, (0, 1)), (224, 3, 2, (0, 1)), (225, 3, 2, (1, 1)), (7, 3, 1, (1, 1))])
def test_same_padding_matches_keras(size, kernel, stride, expected):
    from convert.input_scaling import same_padding

    assert same_padding(size, kernel, stride) == expected


def test_folded_input_scaling_computes_what_the_model_does(tiny_source):
    """Same outputs on pictures whose border rows differ (where the padding matters), model unchanged."""
    from convert import input_scaling, source

    model = source.load_keras_model(source.read_source(tiny_source))
    before = [w.copy() for w in model.get_weights()]
    images = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    images[1] = 255
    images[2, -1, :, :] = 0
    folded = input_scaling.fold_input_scaling(model)
    from train.model import SMOOTHING_LAYER

    assert input_scaling.SCALING_LAYER not in [layer.name for layer in folded.layers]
    assert folded.layers[1].name == SMOOTHING_LAYER  # the blur stays first
    assert folded.get_layer("padded_backbone").get_layer("backbone").get_layer("Conv1").padding == "valid"  # padded before it
    assert input_scaling.largest_output_difference(model, folded, images) < 1e-4
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_model_with_features_from_two_layers_and_traits_folds_and_saves(tmp_path):
    """Features pooled from two backbone layers (concatenated) beside the trait tap: the fold keeps the
    function, and the model loads back from its .keras file with the same outputs."""
    import keras

    from edge.contract import InputContract
    from edge.face_traits import FACE_TRAITS
    from convert import input_scaling
    from train.model import INPUT_SMOOTHING, build_backbone, build_model
    from train.traits import GRID, TRAIT_LAYER, TraitHead, tap_layer

    contract = InputContract(labels=("a", "b", "c"), input_size=64)
    backbone = build_backbone(contract, None, 0.35, "block_12_add+out_relu")
    tap = tap_layer(backbone, TRAIT_LAYER)
    rows = int(tap.shape[-1]) * GRID * GRID
    head = TraitHead(FACE_TRAITS, np.random.default_rng(0).normal(0, 0.05, (rows, len(FACE_TRAITS))).astype(np.float32),
                     np.zeros(len(FACE_TRAITS), np.float32), np.full(len(FACE_TRAITS), 0.5, np.float32),
                     TRAIT_LAYER, GRID, 64, "0" * 64, {}, INPUT_SMOOTHING)
    model = build_model(contract, backbone=backbone, trait_head=head)
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    probabilities, embedding, traits = model.predict(images.astype(np.float32), verbose=0)
    assert embedding.shape == (3, 32 + 1280) and traits.shape == (3, len(FACE_TRAITS))  # block_12_add 32, out_relu 1280
    assert input_scaling.largest_output_difference(model, input_scaling.fold_input_scaling(model), images) < 1e-4
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", compile=False)
    for a, b in zip(model.predict(images.astype(np.float32), verbose=0), again.predict(images.astype(np.float32), verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_agreement_check_ran_on_every_variant(converted):
    folder, result = converted
    report = json.loads((folder / REPORT_FILE).read_text())
    assert [row["variant"] for row in report["variants"]] == list(VARIANTS)
    assert report["validation"]["images"] == 54  # 18 openmoji images in each of the 3 classes
    assert report["representative"] == {
        "source": "model_card data.train_files", "images": TINY_REP, "classes": 3, "faces": 0, "faces_source": None,
        "pixel_range_padded": False,
    }
    assert 0.0 <= report["keras"]["noise_agreement"] <= 1.0
    rows = {row["variant"]: row for row in report["variants"]}
    # float32 only reorders float arithmetic: it must agree with Keras on every image.
    assert rows["float32"]["agreement"] == 1.0
    assert rows["float32"]["max_abs_diff"] < 1e-4
    # The device's adaptive classifier (the gallery ships its layer) is measured on every variant too:
    # on float32's embeddings, as they come out of the model, it answers as on Keras'.
    assert 0.0 <= report["keras"]["adapted_top1"] <= 1.0 and 0.0 <= report["keras"]["adapted_noise_agreement"] <= 1.0
    assert rows["float32"]["adapted_agreement"] == 1.0
    assert all(0.0 <= row["adapted_top1"] <= 1.0 and 0.0 <= row["adapted_agreement"] <= 1.0 for row in rows.values())
    for row in rows.values():
        assert 0.0 <= row["agreement"] <= row["agreement_tie_aware"] <= 1.0
        assert 0.0 <= row["top1"] <= row["top5"] <= 1.0
        assert row["passed"] == (row["agreement"] >= row["min_agreement"])
        assert row["size_bytes"] == (folder / row["file"]).stat().st_size
    # the quantized files are smaller than the float32 one
    assert rows["int8"]["size_bytes"] < rows["float32"]["size_bytes"]
    assert rows["float16"]["size_bytes"] < rows["float32"]["size_bytes"]
    assert "float32" in result.table and "int8" in result.table
    # What the default int8 recipe's ranges did (convert.ranges); no other variant has a correction to
    # report. (This tiny model has no domain statistics for the bias correction to move: that part of
    # the report is checked in test_bias_correction_takes_the_mean_error_out_in_the_head.)
    assert set(report["recipe_effects"]) == {"int8"}
    ranged = report["recipe_effects"]["int8"]["activation_ranges"]
    assert 0 < ranged["narrowed"] <= ranged["tensors"]
    assert 0 < ranged["median_width_ratio"] <= 1 and 0 < ranged["median_mse_ratio"] <= 1
    halved = report["recipe_effects"]["int8"]["float16_head_weights"]
    assert halved["matrices"] == 2 and halved["bytes_saved"] > 0  # the classifier's and the trait head's


def test_manifest_lists_every_artifact_with_its_hash(converted):
    folder, _ = converted
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    entries = {entry["path"]: entry for entry in manifest["artifacts"]}
    expected = {"lookalike.keras", "labels.txt", "model_card.json", "gallery.npz", REPORT_FILE}
    expected |= {f"lookalike_{v}{s}" for v in VARIANTS for s in (".tflite", ".json")}
    expected |= {f"characters/{label}.png" for label in ("astronaut", "superhero", "vampire")}
    assert set(entries) == expected
    for name, entry in entries.items():
        assert entry["size"] == (folder / name).stat().st_size
        assert entry["sha256"] == sha256_file(folder / name)


def test_cli_converts_a_subset_and_keeps_the_others(converted, models_dir, capsys):
    folder, _ = converted
    shutil.copy(folder / "lookalike_int8.tflite", models_dir)
    shutil.copy(folder / "lookalike_int8.json", models_dir)
    code = main(["--models", str(models_dir), "--variants", "float16", "--rep-size", "10", "--max-val", "9"])
    out = capsys.readouterr().out
    assert code == 0
    assert "float16" in out and "agree" in out  # the table is printed
    assert tflite_files(models_dir) == ["lookalike_float16.tflite", "lookalike_int8.tflite"]
    manifest = json.loads((models_dir / MANIFEST_FILE).read_text())
    assert {"lookalike_float16.tflite", "lookalike_int8.tflite"} <= {e["path"] for e in manifest["artifacts"]}
    report = json.loads((models_dir / REPORT_FILE).read_text())
    assert report["validation"]["images"] == 9


def test_unreadable_gallery_skips_its_checks_with_one_warning(models_dir, capsys):
    """gallery.npz is read once for both checks that use it: unreadable, both are skipped, one warning says so."""
    (models_dir / "gallery.npz").write_bytes(b"not a zip file")
    assert main(["--models", str(models_dir), "--variants", "float32", "--rep-size", "6", "--max-val", "6"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "gallery.npz" in line]
    assert len(warnings) == 1, warnings
    assert "the gallery check and the adaptive classifier's figures are skipped" in warnings[0]
    report = json.loads((models_dir / REPORT_FILE).read_text())
    assert "adapted_top1" not in report["keras"] and report["variants"][0]["adapted_top1"] is None


def test_strict_publishes_nothing_when_a_variant_is_flagged(models_dir, monkeypatch, capsys):
    monkeypatch.setattr(pipeline.verify, "thresholds", lambda _: dict.fromkeys(VARIANTS, 1.5))  # none can reach it
    code = main(["--models", str(models_dir), "--variants", "float32", "--strict", "--max-val", "6"])
    assert code == EXIT_FLAGGED
    assert "agrees with Keras on only" in capsys.readouterr().err
    assert tflite_files(models_dir) == []
    report = json.loads((models_dir / REPORT_FILE).read_text())
    assert report["published"] is False and report["passed"] is False
    assert leftovers(models_dir) == []


def test_flagged_variant_without_strict_is_published_with_a_warning(models_dir, monkeypatch, capsys):
    monkeypatch.setattr(pipeline.verify, "thresholds", lambda _: dict.fromkeys(VARIANTS, 1.5))
    code = main(["--models", str(models_dir), "--variants", "float32", "--max-val", "6"])
    assert code == 0
    assert "WARNING float32 agrees with Keras on only" in capsys.readouterr().err
    assert tflite_files(models_dir) == ["lookalike_float32.tflite"]


@pytest.mark.parametrize("ranges", ["mse", "minmax"])
def test_full_integer_int8_has_integer_outputs(models_dir, ranges):
    args = ["--models", str(models_dir), "--variants", "int8", "--int8-mode", "full", "--int8-ranges", ranges]
    assert main([*args, "--rep-size", "12", "--max-val", "6"]) == 0
    sidecar = json.loads((models_dir / "lookalike_int8.json").read_text())
    assert sidecar["input"] == {"dtype": "uint8", "scale": 1.0, "zero_point": 0}
    assert sidecar["output_dtypes"] == {"probabilities": "uint8", "embedding": "uint8", "traits": "uint8"}
    assert sidecar["quantization"]["mode"] == "full-integer"
    assert sidecar["quantization"]["activation_ranges"] == export.ACTIVATION_RANGE_MEANING[ranges]
    assert sidecar["quantization"]["integer_ops"] == sidecar["quantization"]["ops"]
    effects = json.loads((models_dir / REPORT_FILE).read_text())["recipe_effects"]
    # no float head, so no bias correction; the ranges are reported when the recipe chose them
    assert effects == ({} if ranges == "minmax" else {"int8": {"activation_ranges": effects["int8"]["activation_ranges"]}})
    assert "head_weights" not in sidecar["quantization"]  # no float head to store
    prediction = LookalikeModel(models_dir / "lookalike_int8.tflite").predict(np.zeros((48, 48, 3), np.uint8))
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=0.02)


def test_quant_debug_ranks_int8_recipes(models_dir, tmp_path, capsys):
    from convert import quant_debug

    stats = tmp_path / "layers.csv"
    before = sorted(p.name for p in models_dir.iterdir())
    assert quant_debug.main(["--models", str(models_dir), "--rep-size", "12", "--images", "9", "--layer-stats", str(stats)]) == 0
    out = capsys.readouterr().out
    for name in ("default, input scaling quantized", "default, min/max ranges", "default recipe, bias corrected", "fully integer", "head float", "default recipe",
                 "head + block_1 float", "head + block_12 float"):
        assert name in out
    header = stats.read_text().splitlines()[0].split(",")
    assert "rmse_over_scale" in header and "tensor_name" in header
    assert sorted(p.name for p in models_dir.iterdir()) == before  # it writes nothing into models/


# --- bad input: one clear line, non-zero exit, nothing half-written ----------------------------


def test_no_trained_model(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    assert main(["--models", str(tmp_path / "models")]) == EXIT_ERROR
    assert "run 'make train' first" in one_error_line(capsys)
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_model_card(models_dir, capsys):
    (models_dir / "model_card.json").unlink()
    assert main(["--models", str(models_dir)]) == EXIT_ERROR
    assert "model_card.json is missing" in one_error_line(capsys)


def test_missing_representative_folder(models_dir, tmp_path, capsys):
    assert main(["--models", str(models_dir), "--rep-data", str(tmp_path / "nowhere")]) == EXIT_ERROR
    line = one_error_line(capsys)
    assert "representative-data folder" in line and "does not exist" in line
    assert tflite_files(models_dir) == []


def test_empty_representative_folder(models_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "astronaut").mkdir(parents=True)
    assert main(["--models", str(models_dir), "--rep-data", str(empty)]) == EXIT_ERROR
    assert "has no images" in one_error_line(capsys)
    assert tflite_files(models_dir) == []


def test_labels_file_that_does_not_match_the_model(models_dir, capsys):
    (models_dir / "labels.txt").write_text("astronaut\nsuperhero\nvampire\nzombie\n")
    assert main(["--models", str(models_dir)]) == EXIT_ERROR
    line = one_error_line(capsys)
    assert "labels.txt (4 classes) does not match" in line and "make train" in line


def test_model_whose_classes_do_not_match_its_labels(models_dir, capsys):
    """The card and labels.txt agree with each other, but the Keras model predicts 3 classes."""
    card = json.loads((models_dir / "model_card.json").read_text())
    labels = ["astronaut", "superhero", "vampire", "elf"]
    card["contract"]["labels"] = card["labels"] = labels
    card["data"]["val_files"] = [f for f in card["data"]["val_files"] if "/elf/" not in f]
    (models_dir / "model_card.json").write_text(json.dumps(card))
    (models_dir / "labels.txt").write_text("\n".join(labels) + "\n")
    assert main(["--models", str(models_dir), "--rep-size", "4", "--max-val", "3"]) == EXIT_ERROR
    line = one_error_line(capsys)
    assert "predicts 3 classes but its labels name 4" in line
    assert tflite_files(models_dir) == []


def test_validation_folder_with_unknown_classes(models_dir, capsys):
    assert main(["--models", str(models_dir), "--val", str(DATASET / "openmoji")]) == EXIT_ERROR
    assert "class folders the model does not know" in one_error_line(capsys)


def test_int8_float_layer_that_does_not_exist(models_dir, capsys):
    assert main(["--models", str(models_dir), "--variants", "int8", "--int8-float-layers", "block_99", "--rep-size", "6"]) == EXIT_ERROR
    assert "no layer named 'block_99'" in one_error_line(capsys)
    assert tflite_files(models_dir) == [] and leftovers(models_dir) == []


def test_card_without_file_lists_is_refused_not_split_again(models_dir, capsys):
    """A card from a tool older than the file lists: no guessing at training's split."""
    card = json.loads((models_dir / MODEL_CARD_FILE).read_text())
    del card["data"]["train_files"], card["data"]["val_files"]
    card["data"]["val_split"] = 0.2
    (models_dir / MODEL_CARD_FILE).write_text(json.dumps(card))
    assert main(["--models", str(models_dir)]) == EXIT_ERROR
    line = one_error_line(capsys)
    assert "records no data.train_files" in line and "pass --rep-data DIR and --val DIR, or run 'make train' again" in line
    assert tflite_files(models_dir) == []


def test_card_without_data_section_is_refused(models_dir, capsys):
    card = json.loads((models_dir / MODEL_CARD_FILE).read_text())
    del card["data"]
    (models_dir / MODEL_CARD_FILE).write_text(json.dumps(card))
    assert main(["--models", str(models_dir)]) == EXIT_ERROR
    assert "no 'data' section: run 'make train' again" in one_error_line(capsys)


def test_conversion_failing_part_way_leaves_models_unchanged(models_dir, monkeypatch, capsys):
    """float32 converts, then int8 fails: nothing new appears, the old files stay."""
    (models_dir / "lookalike_int8.tflite").write_bytes(b"previous good int8")
    (models_dir / "lookalike_float32.tflite").write_bytes(b"previous good float32")
    calls = []

    def failing_int8(saved_model, calibration):
        calls.append("int8")
        raise export.ConversionFailed("converting the int8 variant failed: simulated")

    monkeypatch.setitem(export.EXPORTERS, "int8", failing_int8)
    assert main(["--models", str(models_dir), "--variants", "float32,int8", "--rep-size", "6"]) == EXIT_ERROR
    assert calls == ["int8"]
    assert "int8 variant failed: simulated" in one_error_line(capsys)
    assert tflite_files(models_dir) == ["lookalike_float32.tflite", "lookalike_int8.tflite"]
    assert (models_dir / "lookalike_float32.tflite").read_bytes() == b"previous good float32"
    assert (models_dir / "lookalike_int8.tflite").read_bytes() == b"previous good int8"
    assert not (models_dir / "lookalike_float32.json").exists()
    assert not (models_dir / MANIFEST_FILE).exists()
    assert leftovers(models_dir) == []


def test_interrupt_during_conversion_leaves_models_unchanged(models_dir, monkeypatch, capsys):
    def interrupted(saved_model, calibration):
        raise KeyboardInterrupt

    monkeypatch.setitem(export.EXPORTERS, "float16", interrupted)
    assert main(["--models", str(models_dir), "--variants", "float32,float16", "--rep-size", "6"]) == EXIT_INTERRUPTED
    assert "interrupted" in one_error_line(capsys)
    assert tflite_files(models_dir) == []
    assert leftovers(models_dir) == []


def test_sigterm_during_conversion_cleans_up_like_ctrl_c(models_dir, monkeypatch, capsys):
    import signal

    def terminated(saved_model, calibration):
        os.kill(os.getpid(), signal.SIGTERM)  # kill, or systemd stopping the job
        raise AssertionError("SIGTERM should have stopped the conversion")

    monkeypatch.setitem(export.EXPORTERS, "float16", terminated)
    assert main(["--models", str(models_dir), "--variants", "float32,float16", "--rep-size", "6",
                 "--max-val", "6"]) == EXIT_INTERRUPTED
    assert "interrupted" in one_error_line(capsys)
    assert tflite_files(models_dir) == [] and leftovers(models_dir) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handed back after the run


def test_staging_left_by_a_killed_run_is_removed_by_the_next(models_dir):
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = models_dir / f"{pipeline.STAGING_PREFIX}dead"
    dead.mkdir()
    (dead / ".owner-pid").write_text(str(gone.pid))
    (models_dir / f"{pipeline.STAGING_PREFIX}older").mkdir()  # no owner recorded at all
    alive = models_dir / f"{pipeline.STAGING_PREFIX}alive"
    alive.mkdir()
    (alive / ".owner-pid").write_text(str(os.getppid()))  # another process still converting
    assert main(["--models", str(models_dir), "--variants", "float32", "--rep-size", "6", "--max-val", "6"]) == 0
    assert leftovers(models_dir) == [alive.name]


@pytest.mark.parametrize("args", [["--threads", "0"], ["--rep-size", "0"], ["--max-val", "-1"], ["--max-faces", "x"], ["--rep-faces", "-1"]])
def test_bad_numbers_are_refused_before_converting(models_dir, capsys, args):
    with pytest.raises(SystemExit) as stopped:
        main(["--models", str(models_dir), *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {args[0]}" in err and "Traceback" not in err
    assert tflite_files(models_dir) == []


def test_face_calibration_without_faces_is_refused(models_dir, capsys):
    assert main(["--models", str(models_dir), "--rep-faces", "5"]) == EXIT_ERROR
    assert "--rep-faces takes its face crops from --faces" in one_error_line(capsys)


def test_converter_error_becomes_one_line(models_dir, monkeypatch, capsys):
    """A failure inside TensorFlow's converter (not our wrapper) is reported, not a traceback."""

    class BrokenConverter:
        def convert(self):
            raise RuntimeError("simulated converter crash\nwith a second line")

    monkeypatch.setattr(export, "saved_model_converter", lambda saved_model: BrokenConverter())
    assert main(["--models", str(models_dir), "--variants", "float32", "--rep-size", "6"]) == EXIT_ERROR
    line = one_error_line(capsys)
    assert "converting the float32 variant failed: simulated converter crash" in line
    assert tflite_files(models_dir) == [] and leftovers(models_dir) == []


# --- the pieces ----------------------------------------------------------------------------------


def test_representative_sample_is_class_balanced():
    files_by_class = [Path(f"/d/{name}/{i}.png") for name, n in (("a", 50), ("b", 5), ("c", 20)) for i in range(n)]
    chosen = dataset.balanced_sample(files_by_class, 30, seed=1)
    counts = {name: sum(p.parent.name == name for p in chosen) for name in "abc"}
    assert counts == {"a": 13, "b": 5, "c": 12}  # b has only 5; the rest is shared evenly
    assert len(set(chosen)) == 30
    assert chosen == dataset.balanced_sample(files_by_class, 30, seed=1)


@pytest.mark.shared
def test_int8_calibrates_on_face_crops_of_the_training_split_too(models_dir):
    """With --faces, the calibration set is the drawings and then face crops of the faces' training
    split, normalised as the device crops them; --rep-faces 0 leaves drawings only."""
    from shared_paths import CELEBA, need

    source = pipeline.src.read_source(models_dir)
    config = pipeline.ConvertConfig(models_dir=models_dir, rep_size=8, faces_dir=need(CELEBA), rep_faces=6)
    data = pipeline.prepare_data(config, source)
    crops, _ = pipeline.split_face_crops(need(CELEBA), "train", 6, source.contract, "test")
    assert 3 <= len(crops) <= 6 and data.representative_info["faces"] == len(crops)
    assert len(data.representative) == 8 + len(crops)
    assert np.array_equal(data.representative[8:], crops)  # crops of the training split, not the test split
    drawings_only = pipeline.prepare_data(dataclasses.replace(config, rep_faces=0), source)
    assert len(drawings_only.representative) == 8 and drawings_only.representative_info["faces"] == 0


def test_full_pixel_range_is_enforced_for_the_uint8_input():
    images = np.full((2, 32, 32, 3), 100, np.uint8)
    assert dataset.ensure_full_pixel_range(images)
    assert images.min() == 0 and images.max() == 255
    assert not dataset.ensure_full_pixel_range(images)


def card_with(tmp_path: Path, **data) -> ModelCard:
    """The committed fixture's card (its lists are relative to the project) with ``data`` changed."""
    card = json.loads((FIXTURE_DIR / MODEL_CARD_FILE).read_text())
    card["data"].update(data)
    return ModelCard.from_dict(card, tmp_path / "models" / MODEL_CARD_FILE, ConvertError)


def test_card_file_lists_or_the_flags_name_the_images(tmp_path):
    train = sorted((DATASET / "twemoji" / "elf").glob("*.png"))[:3]
    val = sorted((DATASET / "openmoji" / "elf").glob("*.png"))[:2]
    relative = [str(p.relative_to(DATASET.parents[1])) for p in val]  # as the committed cards record them
    card = card_with(tmp_path, train=[str(DATASET / "noto")], train_files=[str(p) for p in train], val_files=relative)
    splits = dataset.resolve_splits(card)
    assert list(splits.train.files) == train and list(splits.val.files) == val
    assert splits.val.source == "model_card data.val_files"
    override = dataset.resolve_splits(card, val_dirs=[DATASET / "noto"])
    assert len(override.val) == 758 and list(override.train.files) == train
    # A card without the lists still converts when both flags name the images.
    old = card_with(tmp_path, train_files=None, val_files=None)
    both = dataset.resolve_splits(old, rep_dirs=[DATASET / "twemoji"], val_dirs=[DATASET / "openmoji"])
    assert both.train.source.startswith("--rep-data") and both.val.source.startswith("--val")
    with pytest.raises(ConvertError, match="records no data.val_files .*pass --rep-data DIR and --val DIR"):
        dataset.resolve_splits(old, rep_dirs=[DATASET / "twemoji"])
    with pytest.raises(ConvertError, match=r"lists no validation images \(data.val_files is empty\): pass --val DIR"):
        dataset.resolve_splits(card_with(tmp_path, val_files=[]))


def test_training_and_validation_must_not_overlap(models_dir, capsys):
    same = str(DATASET / "openmoji")
    assert main(["--models", str(models_dir), "--rep-data", same, "--val", same]) == EXIT_ERROR
    assert "both the training and the validation list" in one_error_line(capsys)


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "artifact.bin"
    target.write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError):
        artifacts.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact.bin"]


# --- the committed fixture the device-only tests use -------------------------------------------


def test_committed_fixture_is_current_and_loadable():
    """tests/fixtures/tiny_models must load with today's runtime; regenerate it if this fails:
    .venv/bin/python tests/fixtures/make_tiny_models.py"""
    manifest = json.loads((FIXTURE_DIR / MANIFEST_FILE).read_text())
    for entry in manifest["artifacts"]:
        assert sha256_file(FIXTURE_DIR / entry["path"]) == entry["sha256"], entry["path"]
    for variant in VARIANTS:
        path = FIXTURE_DIR / f"lookalike_{variant}.tflite"
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["format_version"] == SIDECAR_VERSION, "sidecar format changed: regenerate the fixture"
        model = LookalikeModel(path)
        assert model.labels == ("astronaut", "superhero", "vampire")
        prediction = model.predict(np.zeros((model.contract.input_size,) * 2 + (3,), np.uint8))
        assert prediction.probabilities.shape == (3,)
    total = sum(p.stat().st_size for p in FIXTURE_DIR.rglob("*") if p.is_file())
    assert total < 2_000_000


def test_private_tensorflow_api_is_still_there():
    """convert.tf_private is the only place the conversion leaves TensorFlow's public API; after an
    upgrade this fails first, naming what went missing (setting a missing converter attribute
    would silently do nothing)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    from convert import tf_private
    from edge.runtime import interpreter_class

    @tf.function(input_signature=[tf.TensorSpec((1, 2), tf.float32)])
    def double(x):
        return x * 2.0

    converter = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double)
    assert hasattr(converter, "_experimental_calibrate_only"), "TFLiteConverter._experimental_calibrate_only is gone"
    tf_private.calibrate_only(converter)
    assert converter._experimental_calibrate_only is True
    assert callable(tflite_convert.mlir_quantize), "tensorflow.lite.python.convert.mlir_quantize is gone"
    assert hasattr(tf.lite.experimental, "QuantizationDebugger")
    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(FIXTURE_DIR / "lookalike_int8.tflite"))
    ops = tf_private.ops_details(interpreter)
    assert ops and {"op_name", "inputs", "outputs"} <= set(ops[0])
    named = tf_private.signature_outputs(interpreter, export.SIGNATURE_KEY)
    indices = {int(d["index"]) for d in interpreter.get_output_details()}
    assert {"probabilities", "embedding"} <= set(named) and set(named.values()) <= indices
    model_bytes = (FIXTURE_DIR / "lookalike_int8.tflite").read_bytes()
    flat = tf_private.read_flatbuffer(model_bytes)
    assert len(flat.subgraphs[0].tensors) == len(interpreter.get_tensor_details())
    again = cls(model_content=tf_private.write_flatbuffer(flat))  # written back, it loads and keeps its signature
    assert tf_private.signature_outputs(again, export.SIGNATURE_KEY) == named


# --- end to end on a briefly trained real model (slow) ----------------------------------------


@pytest.mark.slow
def test_trained_model_converts_and_agrees(request):
    """A real-weights model trained briefly (session fixture ``trained_models_dir``), converted by
    ``python -m convert`` as a subprocess (session fixture ``converted_models_dir``, tests/conftest.py)."""
    folder = request.getfixturevalue("converted_models_dir")
    report = json.loads((folder / REPORT_FILE).read_text())
    print(json.dumps({r["variant"]: {k: r[k] for k in ("agreement", "top1", "ties", "embedding_cosine_mean")} for r in report["variants"]}))
    assert report["published"] is True
    rows = {row["variant"]: row for row in report["variants"]}
    assert set(rows) == set(VARIANTS)
    assert rows["float32"]["agreement"] >= 0.99
    assert rows["float16"]["agreement"] >= 0.95
    # A model trained for seconds on 2 images per class is far less confident than the real one,
    # so its top-1 flips on smaller perturbations; the 97% goal is for make convert on the real
    # model (see its conversion_report.json). This floor catches a broken int8 conversion, which
    # lands near chance (under 10%).
    assert rows["int8"]["agreement"] >= 0.5
    assert rows["int8"]["embedding_cosine_mean"] >= 0.8
    sidecar = json.loads((folder / "lookalike_int8.json").read_text())
    assert sidecar["input"] == {"dtype": "uint8", "scale": 1.0, "zero_point": 0}
    manifest = {e["path"]: e["sha256"] for e in json.loads((folder / MANIFEST_FILE).read_text())["artifacts"]}
    for variant in VARIANTS:
        model = LookalikeModel(folder / f"lookalike_{variant}.tflite")
        assert manifest[f"lookalike_{variant}.tflite"] == sha256_file(model.path)
        prediction = model.predict(np.zeros((model.contract.input_size,) * 2 + (3,), np.uint8))
        assert prediction.probabilities.shape == (len(model.labels),)


def test_every_stage_reads_the_one_variant_table():
    from benchmarks.plots import COLORS
    from convert import verify
    from edge.artifacts import VARIANT_TABLE, VARIANTS

    assert tuple(export.EXPORTERS) == VARIANTS  # a variant in the table is one convert can make, in its order
    limits = verify.thresholds(0.9)
    assert [limits[v.name] for v in VARIANT_TABLE] == [v.min_agreement or 0.9 for v in VARIANT_TABLE]
    assert limits["float32"] == 0.99 and limits["int8"] == 0.9
    assert all(COLORS[v.name] == v.colour for v in VARIANT_TABLE)
    assert len({v.colour for v in VARIANT_TABLE}) == len(VARIANT_TABLE)  # told apart in the plots
