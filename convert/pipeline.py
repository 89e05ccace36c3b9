"""The conversion, top to bottom: check inputs, calibrate, convert, verify, publish.

File safety. Every variant is first written, with its sidecar, into a staging folder inside the
models folder, and checked there with the device's loader. Only when every requested variant has
converted are the staged files moved into place with ``os.replace`` (atomic on one filesystem):
a conversion that fails or is interrupted part way changes nothing in models/, and the previous
good variants stay as they were. Each ``.tflite`` is moved before its sidecar; the sidecar
carries the sha256 of its ``.tflite``, so even a crash between the two renames is caught by the
device's loader rather than silently mixing two conversions. With ``--strict``, a variant below
its agreement threshold means nothing is published (the report still is, marked so).
"""
from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from convert import ConvertError
from convert import dataset as ds
from convert import input_scaling
from convert import export, files, source as src, verify
from edge.runtime import SIDECAR_VERSION, VARIANTS, ModelError, sha256_file
from edge.artifacts import CHARACTERS_DIR, GALLERY_FILE, REPORT_FILE, atomic_write_bytes, atomic_write_json, tflite_name
from edge.matcher import classifier_head, gallery_classes, read_gallery_file
from edge.style_domain import ClassifierHead
from edge.outputs import make_staging
from edge.ranking import top_k_accuracy

STAGING_PREFIX = ".convert-staging-"


@dataclass(frozen=True)
class ConvertConfig:
    models_dir: Path = Path("models")
    variants: tuple[str, ...] = VARIANTS
    rep_size: int = 300
    min_agreement: float = verify.DEFAULT_MIN_AGREEMENT
    strict: bool = False
    val_dirs: tuple[Path, ...] = ()
    rep_dirs: tuple[Path, ...] = ()
    num_threads: int = 2
    seed: int = 1234
    max_val: int | None = None  # cap on validation images (tests); None = all
    int8_recipe: export.Int8Recipe = export.Int8Recipe()
    faces_dir: Path | None = None  # labelled faces (CelebA's format): traits checked on their test split
    max_faces: int = 300
    # Face crops of faces_dir's training split added to the int8 calibration. Off by default: measured
    # worse on test faces and on drawings (README "The int8 variant" has the numbers).
    rep_faces: int = 0


@dataclass
class ConversionResult:
    report: dict[str, Any]
    checks: list[verify.VariantCheck] = field(default_factory=list)
    table: str = ""
    published: bool = False

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass
class PreparedData:
    """Images in model-input form (uint8), read once and shared by every variant."""

    representative: np.ndarray
    validation: np.ndarray
    targets: np.ndarray  # class index of each validation image
    representative_info: dict[str, Any]
    validation_info: dict[str, Any]


def say(message: str) -> None:
    print(message, flush=True)


def check_config(config: ConvertConfig) -> None:
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown or not config.variants:
        raise ConvertError(f"unknown variant(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(VARIANTS)}")
    if config.rep_size < 1:
        raise ConvertError(f"--rep-size must be at least 1, got {config.rep_size}")
    if config.max_val is not None and config.max_val < 1:
        raise ConvertError(f"--max-val must be at least 1, got {config.max_val}")
    if not 0.0 <= config.min_agreement <= 1.0:
        raise ConvertError(f"--min-agreement must be between 0 and 1, got {config.min_agreement}")
    if config.max_faces < 1:
        raise ConvertError(f"--max-faces must be at least 1, got {config.max_faces}")
    if config.rep_faces < 0:
        raise ConvertError(f"--rep-faces must be 0 or more, got {config.rep_faces}")
    if config.rep_faces and config.faces_dir is None:
        raise ConvertError("--rep-faces takes its face crops from --faces: give the labelled face folder too")
    if config.faces_dir is not None:
        from edge.face_traits import FaceTraitsError, read_labelled_faces

        try:
            read_labelled_faces(config.faces_dir)
        except FaceTraitsError as exc:
            raise ConvertError(str(exc)) from exc


def split_face_crops(folder: Path, split: str, count: int, contract, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """Face crops of the first ``count`` pictures of one split of a labelled face folder, framed by Haar
    (the detector every device has) and normalised as the device normalises them; and their labels."""
    from edge.face_traits import FaceTraitsError, LabelledFaces, face_crops, read_labelled_faces
    from edge.faces import HaarFaceDetector

    faces = read_labelled_faces(folder).subset(split)
    faces = LabelledFaces(faces.folder, faces.files[:count], faces.labels[:count])
    try:
        crops, rows = face_crops(faces, [HaarFaceDetector()], contract, say)
    except FaceTraitsError as exc:
        raise ConvertError(f"{exc} (the {split} split of --faces, {purpose})") from exc
    return crops, faces.labels[rows]


def labelled_face_crops(config: ConvertConfig, contract) -> tuple[np.ndarray, np.ndarray] | None:
    """Face crops of the labelled test split and their trait labels (None: no faces, or no traits)."""
    if config.faces_dir is None or not contract.has_traits:
        return None
    return split_face_crops(config.faces_dir, "test", config.max_faces, contract, "used to check the traits")


def trait_check(model, staging: Path, config: ConvertConfig, contract, checks) -> dict[str, Any] | None:
    """Per-trait ROC AUC of Keras and of every variant on labelled faces, and each variant's trait
    decisions against Keras' (agreement at the contract's thresholds)."""
    from edge.face_traits import FACE_TRAITS, roc_auc

    found = labelled_face_crops(config, contract)
    if found is None:
        if config.faces_dir is not None:
            say("note: this model reads no face traits (trained with --no-traits, or without a head that fits): --faces is not used")
        return None
    crops, labels = found
    say(f"checking the traits on {len(crops)} labelled test faces ...")
    reference = verify.keras_outputs(model, crops)

    def aucs(traits: np.ndarray) -> dict[str, float]:
        values = {name: roc_auc(labels[:, FACE_TRAITS.index(name)], traits[:, t]) for t, name in enumerate(contract.traits)}
        return {name: (None if v != v else round(v, 4)) for name, v in values.items()}  # None: no positive here

    result = {"faces": len(crops), "source": str(config.faces_dir), "split": "test", "keras_auc": aucs(reference.traits),
              "variants": {}}
    for check in checks:
        outputs = verify.tflite_outputs(staging / check.file, crops, config.num_threads)
        same, diff = verify.trait_agreement(outputs, reference, contract.trait_thresholds)
        check.trait_agreement, check.trait_max_abs_diff = same, diff
        # The classifier's answer on the same faces: what the device shows when it matches by class.
        answers = float(np.mean(outputs.probabilities.argmax(axis=1) == reference.probabilities.argmax(axis=1)))
        result["variants"][check.variant] = {"auc": aucs(outputs.traits), "agreement": same, "max_abs_diff": diff,
                                             "answer_agreement": answers}
        say(f"  {check.variant}: trait agreement {same:.1%}, top-1 agreement {answers:.1%}, AUC "
            + ", ".join(f"{k} {v}" for k, v in result["variants"][check.variant]["auc"].items()))
    return result


def quantization_summary(variant: str, layout: export.TFLiteLayout, recipe: export.Int8Recipe) -> dict[str, Any]:
    modes = {"float32": {"mode": "none"}, "float16": {"mode": "float16-weights"}, "dynamic": {"mode": "dynamic-range"}}
    summary = dict(recipe.describe() if variant == "int8" else modes[variant])
    summary.update({"ops": layout.ops, "integer_ops": layout.integer_ops})
    return summary


def build_sidecar(
    variant: str,
    model_bytes: bytes,
    layout: export.TFLiteLayout,
    source: src.SourceModel,
    source_sha: str,
    recipe: export.Int8Recipe,
) -> dict[str, Any]:
    """The JSON the device reads beside lookalike_<variant>.tflite (see models/README.md)."""
    sidecar: dict[str, Any] = {
        "format_version": SIDECAR_VERSION,
        "variant": variant,
        "model_file": tflite_name(variant),
        "tflite_sha256": _sha256_bytes(model_bytes),
        "contract": source.contract.to_dict(),
        "outputs": layout.outputs,
        "input": layout.input,
        "output_dtypes": layout.output_dtypes,
        "quantization": quantization_summary(variant, layout, recipe),
    }
    if (source.models_dir / GALLERY_FILE).is_file():
        sidecar["gallery"] = GALLERY_FILE
    if (source.models_dir / CHARACTERS_DIR).is_dir():
        sidecar["characters"] = CHARACTERS_DIR
    sidecar["source_model_sha256"] = source_sha
    sidecar["created"] = files.utc_now()
    return sidecar


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_int8_input(layout: export.TFLiteLayout) -> None:
    """The int8 variant must take camera pixels as they are: uint8, scale 1.0, zero point 0."""
    quant = layout.input
    if quant["dtype"] != "uint8" or quant["zero_point"] != 0 or abs(float(quant["scale"]) - 1.0) > 1e-6:
        raise ConvertError(
            f"the int8 variant's input quantization came out as {quant}, not uint8 scale 1.0 zero point 0: "
            "the representative images must span pixel values 0..255"
        )


def int8_source(model, rep_images: np.ndarray, recipe: export.Int8Recipe):
    """The Keras model the int8 variant is converted from: ``model`` with its pixel scaling folded
    into the first convolution when the recipe asks (checked to compute the same, on ``rep_images``)."""
    return input_scaling.checked_fold(model, rep_images) if recipe.fold_input_scaling else model


def int8_of(model, contract, rep_images: np.ndarray, folder: Path, recipe: export.Int8Recipe = export.Int8Recipe()) -> export.Exported:
    """The int8 variant of an in-memory Keras model, as ``make convert`` builds it, calibrated on
    ``rep_images`` (uint8 training pictures; a copy is made to span 0..255) and checked to take
    camera pixels as they are. ``folder`` holds the SavedModel while it converts (removed after).
    For measurements that convert models no ``models/`` folder holds (``train --protocol loso``)."""
    rep_images = np.array(rep_images, dtype=np.uint8, copy=True)
    ds.ensure_full_pixel_range(rep_images)
    saved_model = export.export_saved_model(int8_source(model, rep_images, recipe), contract, Path(folder) / "saved_model_int8")
    try:
        exported = export.EXPORTERS["int8"](saved_model, export.Calibration(rep_images, recipe))
    finally:
        shutil.rmtree(saved_model, ignore_errors=True)
    check_int8_input(export.inspect_tflite(exported.model_bytes, contract))
    return exported


def load_gallery(models_dir: Path, labels: Sequence[str], contract) -> tuple[np.ndarray | None, ClassifierHead | None]:
    """What the checks read from ``gallery.npz``, read once with the device's reader: the class
    embeddings in label order (the gallery check) and the classifier layer it ships (the device's
    adaptive classifier). Either is None, with a warning naming the check that is skipped, when the
    file is absent, unreadable, for other labels, or (the classifier layer) from an older model."""
    path = models_dir / GALLERY_FILE
    if not path.is_file():
        return None, None
    try:
        arrays = read_gallery_file(path)
    except ModelError as exc:
        ds.warn(f"{path} cannot be read ({exc.__cause__ or exc}); the gallery check and the adaptive classifier's figures are skipped")
        return None, None
    embeddings = head = None
    try:
        names, embeddings = gallery_classes(arrays, path)
        if tuple(names) != tuple(labels):
            ds.warn(f"{path} labels do not match the model's; the gallery check is skipped")
            embeddings = None
    except ModelError as exc:
        ds.warn(f"{exc}; the gallery check is skipped")
    try:
        head = classifier_head(path, arrays, contract.embedding_dim, contract.num_classes)
    except ModelError as exc:
        ds.warn(f"{exc}; the adaptive classifier's figures are skipped")
    return embeddings, head


def prepare_data(config: ConvertConfig, source: src.SourceModel) -> PreparedData:
    """Representative images (class-balanced, training only) and validation images with targets."""
    splits = ds.resolve_splits(source.card, config.rep_dirs, config.val_dirs)
    # Compared as absolute paths: the card's lists and the folders of the flags may name one file two ways.
    overlap = {str(f.resolve()) for f in splits.train.files} & {str(f.resolve()) for f in splits.val.files}
    if overlap:
        raise ConvertError(
            f"{len(overlap)} image(s) are in both the training and the validation list (e.g. {sorted(overlap)[0]}): "
            "calibration must use training images only; check --rep-data and --val"
        )
    rep_files = ds.balanced_sample(splits.train.files, config.rep_size, config.seed)
    rep_images, rep_files = ds.load_model_inputs(rep_files, source.contract, "representative")
    face_count = 0
    if config.rep_faces:  # check_config made sure there is a faces folder to take them from
        # The device feeds the int8 model faces as well as drawings; --rep-faces adds some (training split).
        crops, _ = split_face_crops(config.faces_dir, "train", config.rep_faces, source.contract, "used to calibrate int8")
        rep_images, face_count = np.concatenate([rep_images, crops]), len(crops)
    padded = ds.ensure_full_pixel_range(rep_images)
    val_files = list(splits.val.files)
    if config.max_val is not None and len(val_files) > config.max_val:
        val_files = ds.balanced_sample(val_files, config.max_val, config.seed)
    targets = ds.targets_for(val_files, source.labels, "validation")
    val_images, kept = ds.load_model_inputs(val_files, source.contract, "validation")
    if len(kept) != len(val_files):
        targets = ds.targets_for(kept, source.labels, "validation")
    rep_info = {
        "source": splits.train.source,
        "images": len(rep_files),
        "classes": len({ds.class_name(f) for f in rep_files}),
        "faces": face_count,
        "faces_source": str(config.faces_dir) if face_count else None,
        "pixel_range_padded": padded,
    }
    val_info = {"source": splits.val.source, "images": len(kept), "classes": len(set(targets.tolist()))}
    return PreparedData(rep_images, val_images, targets, rep_info, val_info)


def convert_variants(config: ConvertConfig, source: src.SourceModel, model, rep_images: np.ndarray,
                     staging: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Export once, then write each variant and its sidecar into the staging folder. Returns the
    timings, and what each variant's recipe corrections did (``export.Exported.effect``), by variant."""
    timings: dict[str, float] = {}
    effects: dict[str, Any] = {}
    start = time.perf_counter()
    saved_model = export.export_saved_model(model, source.contract, staging / "saved_model")
    saved_models = {variant: saved_model for variant in config.variants}
    if "int8" in config.variants and config.int8_recipe.fold_input_scaling:
        saved_models["int8"] = export.export_saved_model(
            int8_source(model, rep_images, config.int8_recipe), source.contract, staging / "saved_model_int8"
        )
    timings["export_saved_model"] = time.perf_counter() - start
    source_sha = sha256_file(source.keras_path)
    for variant in config.variants:
        say(f"converting {variant} ...")
        start = time.perf_counter()
        exported = export.EXPORTERS[variant](saved_models[variant], export.Calibration(rep_images, config.int8_recipe))
        model_bytes = exported.model_bytes
        if exported.effect:
            effects[variant] = exported.effect
            say_effect(exported.effect)
        layout = export.inspect_tflite(model_bytes, source.contract)
        if variant == "int8":
            check_int8_input(layout)
        tflite_path = staging / tflite_name(variant)
        atomic_write_bytes(tflite_path, model_bytes)
        atomic_write_json(tflite_path.with_suffix(".json"), build_sidecar(variant, model_bytes, layout, source, source_sha, config.int8_recipe))
        timings[f"convert_{variant}"] = time.perf_counter() - start
        say(f"  {variant}: {len(model_bytes) / 1e6:.2f} MB in {timings[f'convert_{variant}']:.1f} s")
    for folder in set(saved_models.values()):
        shutil.rmtree(folder, ignore_errors=True)
    return timings, effects


def say_effect(effect: dict[str, Any]) -> None:
    ranged, bias, halved = (effect.get(k) for k in ("activation_ranges", "pooled_feature_bias", "float16_head_weights"))
    if ranged:
        say(f"  {ranged['narrowed']} of {ranged['tensors']} activation ranges narrowed for the least error "
            f"(median width {ranged['median_width_ratio']:.2f} of the calibrated one)")
    if bias:
        say(f"  pooled features' mean int8 error taken out in the head: RMS error {bias['rms_error_before']:.4f} -> "
            f"{bias['rms_error_after']:.4f} on the representative images")
    if halved:
        say(f"  {halved['matrices']} weight matrices of the float head stored as float16: {halved['bytes_saved'] / 1e6:.2f} MB saved")


def verify_variants(config: ConvertConfig, source: src.SourceModel, model, val_images: np.ndarray, targets: np.ndarray, staging: Path):
    say(f"checking against Keras on {len(val_images)} validation images ...")
    reference = verify.keras_outputs(model, val_images)
    gallery, head = load_gallery(source.models_dir, source.labels, source.contract)
    noise, adapted_noise = verify.noise_agreement(model, val_images, reference, config.seed, head)
    keras_row = {
        "size_bytes": source.keras_path.stat().st_size,
        "top1": top_k_accuracy(reference.probabilities, targets, 1),
        "top5": top_k_accuracy(reference.probabilities, targets, verify.TOP_K),
        "ms_per_image": reference.seconds_per_image * 1000.0,
        "noise_agreement": noise,
    }
    if head is not None:
        keras_row["adapted_top1"] = float(np.mean(verify.adapted_answers(head, reference.embeddings, config.seed) == targets))
        keras_row["adapted_noise_agreement"] = adapted_noise
    limits = verify.thresholds(config.min_agreement)
    checks = []
    for variant in config.variants:
        path = staging / tflite_name(variant)
        outputs = verify.tflite_outputs(path, val_images, config.num_threads)
        check = verify.compare(variant, path, outputs, reference, targets, limits[variant], gallery,
                               source.contract.trait_thresholds, head, config.seed)
        say(f"  {variant}: top-1 {check.top1:.1%}, agreement {check.agreement:.1%}")
        checks.append(check)
    return keras_row, checks


def publish(staging: Path, models_dir: Path, variants: Sequence[str]) -> None:
    for variant in variants:
        for suffix in (".tflite", ".json"):
            name = f"lookalike_{variant}{suffix}"
            (staging / name).replace(models_dir / name)


def build_report(config, source, keras_row, checks, rep_info, val_info, timings, published) -> dict[str, Any]:
    return {
        "format_version": 1,
        "created": files.utc_now(),
        "source_model": source.keras_path.name,
        "source_model_sha256": sha256_file(source.keras_path),
        "labels": list(source.labels),
        "representative": rep_info,
        "validation": val_info,
        "keras": keras_row,
        "variants": [check.to_dict() for check in checks],
        "thresholds": {check.variant: check.min_agreement for check in checks},
        "passed": all(check.passed for check in checks),
        "published": published,
        "strict": config.strict,
        "seconds": {name: round(value, 2) for name, value in timings.items()},
    }


def run(config: ConvertConfig, on_table: Callable[[str], None] = say) -> ConversionResult:
    """Convert and verify; raise ConvertError for anything the user must fix."""
    started = time.perf_counter()
    check_config(config)
    models_dir = Path(config.models_dir)
    source = src.read_source(models_dir)
    say(f"reading images for calibration ({config.rep_size}) and validation ...")
    data = prepare_data(config, source)
    say(
        f"  representative: {data.representative_info['images']} training images, "
        f"{data.representative_info['classes']} classes, {data.representative_info['faces']} face crops; "
        f"validation: {data.validation_info['images']}"
    )
    say(f"loading {source.keras_path} ...")
    model = src.load_keras_model(source)
    staging = make_staging(models_dir, STAGING_PREFIX)  # also removes those of runs that were killed
    try:
        timings, effects = convert_variants(config, source, model, data.representative, staging)
        start = time.perf_counter()
        keras_row, checks = verify_variants(config, source, model, data.validation, data.targets, staging)
        traits = trait_check(model, staging, config, source.contract, checks)
        timings["verify"] = time.perf_counter() - start
        passed = all(check.passed for check in checks)
        publishing = passed or not config.strict
        if publishing:
            publish(staging, models_dir, config.variants)
        timings["total"] = time.perf_counter() - started
        report = build_report(
            config, source, keras_row, checks, data.representative_info, data.validation_info, timings, publishing
        )
        report["traits"] = traits
        report["recipe_effects"] = effects
        atomic_write_json(models_dir / REPORT_FILE, report)
        if publishing:
            files.write_manifest(models_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = ConversionResult(report, checks, verify.format_table(keras_row, checks), publishing)
    on_table(result.table)
    return result
