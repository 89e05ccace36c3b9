"""The benchmark, top to bottom: check inputs, accuracy, latency and memory, pipeline, report data.

Order of events (``run_benchmark``):
1. Check everything the user can get wrong before measuring anything: models, reference file,
   old report for ``--compare``, data folder classes, output folder.
2. Accuracy of every model on the labeled images (TFLite one image at a time with all cores, as
   fast as accuracy can honestly be had; Keras in batches).
3. Latency, load time and peak memory in child processes (``benchmarks.latency``).
4. The camera pipeline on a recorded video (``benchmarks.pipeline``), if edge provides it.
5. Real faces: variety and stability of the lookalike answers (``benchmarks.faces``); with
   ``--faces-only`` this is the only measurement.
6. One report dictionary (the content of benchmark.json), compared with an old one if asked.
Writing the files is ``benchmarks.report``'s job.
"""
from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from benchmarks import BenchmarkError
from benchmarks import compare as compare_module
from benchmarks import keras_model
from benchmarks.accuracy import AccuracyResult, agreement, predict_tflite, score
from benchmarks.dataset import LabeledFiles, LabeledImages, files_from_card, files_from_folder, load_images
from benchmarks.faces import DEFAULT_VARIANT, FacesConfig, check_faces_inputs, faces_section
from benchmarks.latency import LatencyPlan, ProbeFailed, all_cores, measure_all, thread_counts
from benchmarks.machine import machine_info
from benchmarks.models import KERAS, REFERENCE, ModelSet, find_models
from benchmarks.pipeline import PipelineConfig, measure_pipeline_in_child
from benchmarks.progress import Progress, say
from edge.quiet import native_stderr_silenced
from edge.runtime import LookalikeModel, ModelError

REPORT_FORMAT_VERSION = 1
BASELINE = "float32"  # speed-ups are relative to the float32 TFLite file
GOAL_INT8_VS_FLOAT32 = 0.70
GOAL_INT8_VS_REFERENCE = 1.05
TIE_NOTE_SHARE = 0.01  # note top-1 ties when more than 1 % of the images have one


@dataclass
class BenchmarkConfig:
    models_dir: Path = Path("models")
    out_dir: Path = Path("reports")
    data_dir: Path | None = None  # None: the validation split named in the model card
    reference: Path | None = None
    compare: Path | None = None
    video: Path | None = None  # None: a test video that edge writes
    runs: int = 200
    warmup: int = 20
    threads: tuple[int, ...] | None = None  # None: 1 and all cores
    max_images: int | None = None
    pipeline: bool = True
    pipeline_frames: int = 150
    detector: str | None = None  # face detector of the pipeline and the real faces; None: edge's default
    face: Path | None = None  # photo for the pipeline's test video; None: scikit-image's astronaut
    faces: Path | None = None  # folder of face photos; None: scikit-image's faces
    labelled_faces: Path | None = None  # faces labelled in CelebA's format: traits, sense, gender (test split)
    max_labelled: int | None = None  # at most this many of their test faces
    faces_only: bool = False  # measure real faces only: no accuracy, latency or pipeline
    faces_variant: str = DEFAULT_VARIANT
    face_traits: Path | None = None  # the people's traits; None: traits.csv in the faces folder, if any
    character_traits: Path | None = None  # the characters' traits; None: character_traits.csv beside the models
    plots: bool = True
    show_progress: bool = True
    command: str = ""

    def faces_config(self) -> FacesConfig:
        return FacesConfig(self.models_dir, self.faces, self.faces_variant, self.detector,
                           threads=all_cores(), show_progress=self.show_progress,
                           face_traits=self.face_traits, character_traits=self.character_traits)


@dataclass
class Inputs:
    """Everything checked in step 1."""

    models: ModelSet
    files: LabeledFiles | None
    old_report: dict[str, Any] | None
    threads: tuple[int, ...]
    notes: list[str] = field(default_factory=list)


def check_inputs(config: BenchmarkConfig) -> Inputs:
    """Step 1: fail in seconds, with one clear line, on anything the user can fix."""
    if config.runs < 1 or config.pipeline_frames < 1 or (config.max_images is not None and config.max_images < 1):
        raise BenchmarkError("--runs, --pipeline-frames and --max-images must be at least 1")
    if config.warmup < 0:
        raise BenchmarkError(f"--warmup must be 0 or more, got {config.warmup}")
    models = find_models(config.models_dir, config.reference)
    check_faces_inputs(config.faces_config())
    if config.labelled_faces is not None:
        from edge.face_traits import FaceTraitsError, read_labelled_faces

        try:
            read_labelled_faces(config.labelled_faces)
        except FaceTraitsError as exc:
            raise BenchmarkError(str(exc)) from exc
    if config.faces_only:
        if config.compare is not None:
            raise BenchmarkError("--compare compares model measurements, which --faces-only skips: drop one of them")
        check_output_dir(config.out_dir)
        return Inputs(models, None, None, (), list(models.notes))
    old_report = compare_module.read_old_report(config.compare) if config.compare else None
    inputs = Inputs(models, None, old_report, thread_counts(config.threads), list(models.notes))
    if config.data_dir is not None:
        inputs.files = files_from_folder(config.data_dir, models.labels)
    elif models.card is not None:
        found = files_from_card(models.card, models.labels)
        if isinstance(found, str):
            inputs.notes.append(f"accuracy not measured: {found}")
        else:
            inputs.files = found
    else:
        inputs.notes.append("accuracy not measured: no model card in the models folder and no --data DIR")
    if inputs.files is not None:
        inputs.notes += inputs.files.notes
    check_output_dir(config.out_dir)
    if config.video is not None and config.pipeline:
        check_video(Path(config.video))
    if config.face is not None and config.video is None and config.pipeline and not Path(config.face).is_file():
        raise BenchmarkError(f"face photo {config.face} does not exist: pass a photo with --face, or leave it out")
    return inputs


def check_video(path: Path) -> None:
    """A --video the pipeline cannot open should fail now, not after the model measurements."""
    hint = "pass a recorded video with --video, or leave it out"
    if not path.is_file():
        raise BenchmarkError(f"video {path} does not exist: {hint}")
    with native_stderr_silenced():  # FFmpeg's own complaint would sit beside our one line
        capture = cv2.VideoCapture(str(path))
        try:
            ok, _ = capture.read() if capture.isOpened() else (False, None)
        finally:
            capture.release()
    if not ok:
        raise BenchmarkError(f"video {path} cannot be read as a video (unknown or damaged format): {hint}")


def check_output_dir(out_dir: Path) -> None:
    """The reports folder must be creatable and writable before an 8-minute run, not after."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise BenchmarkError(f"cannot write reports to {out_dir} ({exc.strerror or exc}): pass a writable --out folder") from exc


def keep_keras_if_possible(inputs: Inputs) -> None:
    """Drop the Keras row with a note where TensorFlow is missing (the device)."""
    if inputs.models.keras is None:
        return
    if keras_model.import_tensorflow() is None:
        inputs.notes.append("TensorFlow is not installed (normal on the device): Keras row skipped")
        inputs.models.keras = None


# --- step 2: accuracy --------------------------------------------------------------------------------

def measure_accuracy(
    inputs: Inputs, data: LabeledImages, show_progress: bool
) -> dict[str, AccuracyResult]:
    labels = inputs.models.labels
    results: dict[str, AccuracyResult] = {}
    if inputs.models.keras is not None:
        progress = Progress("accuracy, keras", len(data.images), enabled=show_progress)
        try:
            model = keras_model.load_keras_model(inputs.models.keras.path)
            probabilities = keras_model.predict_keras(model, data.images, len(labels), progress.advance)
        except (ValueError, OSError) as exc:  # a .keras file from another run or a damaged one
            progress.close("failed")
            inputs.notes.append(f"Keras row skipped: {inputs.models.keras.path} could not be evaluated ({exc})")
            inputs.models.keras = None
        else:
            results[KERAS] = score(probabilities, data.truth, labels)
            progress.close(f"top-1 {results[KERAS].top1:.1%}")
    threads = all_cores()
    for entry in inputs.models.tflite:
        progress = Progress(f"accuracy, {entry.name}", len(data.images), enabled=show_progress)
        try:
            model = LookalikeModel(entry.path, num_threads=threads)
        except ModelError as exc:
            raise BenchmarkError(str(exc)) from exc
        results[entry.name] = score(predict_tflite(model, data.images, progress.advance), data.truth, labels)
        progress.close(f"top-1 {results[entry.name].top1:.1%}")
    for name, result in results.items():
        if result.ties > TIE_NOTE_SHARE * len(data.images):
            inputs.notes.append(
                f"{name}: {result.ties} of {len(data.images)} images have several classes tied for the top "
                "probability (quantized outputs move in coarse steps); top-1 counts the first of them"
            )
    return results


def agreement_baseline(results: dict[str, AccuracyResult]) -> str | None:
    """Agreement is measured against the Keras model; on the device, against float32 TFLite."""
    for name in (KERAS, BASELINE):
        if name in results:
            return name
    return None


# --- step 6: the report dictionary -------------------------------------------------------------------

def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return float(numerator) / float(denominator)


def _p50(latency: dict[str, dict[str, Any]], name: str, threads: str) -> float | None:
    return (latency.get(name) or {}).get(threads, {}).get("p50")


def variant_rows(inputs: Inputs, accuracy: dict[str, AccuracyResult], measured) -> list[dict[str, Any]]:
    baseline = agreement_baseline(accuracy)
    rows = []
    for entry in inputs.models.entries():
        row: dict[str, Any] = {"name": entry.name, "kind": entry.kind, "file": str(entry.path), "size_bytes": entry.size_bytes}
        result = accuracy.get(entry.name)
        row.update({"top1": None, "top5": None, "macro_per_class": None, "agreement": None, "agreement_with": None})
        if result is not None:
            row.update(result.to_dict())
            if baseline is not None and entry.name != baseline:
                row["agreement"] = agreement(result.predicted, accuracy[baseline].predicted)
                row["agreement_with"] = baseline
            elif entry.name == baseline:
                row["agreement"], row["agreement_with"] = 1.0, baseline
        latency = measured.latency.get(entry.name, {})
        row["latency_ms"] = latency
        row["speedup_vs_float32"] = {
            t: _ratio(_p50(measured.latency, BASELINE, t), summary["p50"]) for t, summary in latency.items()
        }
        if inputs.models.reference is not None and entry.kind != REFERENCE:
            row["ratio_to_reference"] = {
                t: _ratio(summary["p50"], _p50(measured.latency, REFERENCE, t)) for t, summary in latency.items()
            }
        memory = measured.memory.get(entry.name, {})
        for key in ("load_ms", "first_run_ms", "peak_rss_bytes", "model_rss_bytes", "rss_before_load_bytes"):
            row[key] = memory.get(key)
        rows.append(row)
    return rows


def goals(latency: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The measured goals the project set for the int8 model (1 thread, medians)."""
    int8 = _p50(latency, "int8", "1")
    found = []
    for other, limit in ((BASELINE, GOAL_INT8_VS_FLOAT32), (REFERENCE, GOAL_INT8_VS_REFERENCE)):
        value = _ratio(int8, _p50(latency, other, "1"))
        if value is not None:
            found.append({
                "goal": f"int8 1-thread median latency <= {limit:.2f}x {other}",
                "value": value,
                "limit": limit,
                "met": value <= limit,
            })
    return found


def load_average() -> float | None:
    """The 1-minute load average (Unix), to tell a quiet machine from a shared, busy one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy_machine_note(before: float | None, after: float | None, cores: int) -> str | None:
    loads = [v for v in (before, after) if v is not None]
    # Our own measuring adds about one runnable process; more than that is someone else's work.
    if not loads or max(loads) <= 1.0 + 0.25 * cores:
        return None
    return (
        f"the machine was busy (load average {before} before, {after} after, on {cores} cores): "
        "absolute latencies and their p90/p99 are noisier than on an idle machine; ratios between "
        "TFLite models stay fair because their runs were interleaved"
    )


def measure_labelled_faces(config: BenchmarkConfig) -> dict[str, Any] | None:
    if config.labelled_faces is None:
        return None
    from benchmarks.labelled import labelled_section

    say("labelled faces (test split) ...", config.show_progress)
    return labelled_section(config.models_dir, config.labelled_faces, config.faces_variant, config.detector,
                            all_cores(), config.max_labelled, config.show_progress)


def measure_real_faces(config: BenchmarkConfig) -> dict[str, Any]:
    say("real faces ...", config.show_progress)
    faces = faces_section(config.faces_config())
    say("real faces: " + (f"skipped ({faces['skipped']})" if faces.get("skipped") else f"{faces['faces']} faces"),
        config.show_progress)
    return faces


def faces_only_report(config: BenchmarkConfig, inputs: Inputs) -> dict[str, Any]:
    """``--faces-only``: the report's frame with the real-faces section and nothing measured else."""
    started = datetime.datetime.now(datetime.timezone.utc)
    faces = measure_real_faces(config)
    return {
        "format_version": REPORT_FORMAT_VERSION,
        "created": started.isoformat(timespec="seconds"),
        "command": config.command,
        "machine": machine_info(),
        "settings": {"models_dir": str(config.models_dir), "faces_only": True,
                     "input_size": inputs.models.contract.input_size},
        "labels": list(inputs.models.labels),
        "variants": [],
        "goals": [],
        "pipeline": {"skipped": "--faces-only"},
        "faces": faces,
        "labelled_faces": measure_labelled_faces(config),
        "notes": inputs.notes + ["accuracy, latency, memory and the camera pipeline were not measured (--faces-only)"],
    }


def run_benchmark(config: BenchmarkConfig) -> dict[str, Any]:
    """Steps 1-6; returns the report dictionary (the content of benchmark.json)."""
    inputs = check_inputs(config)
    if config.faces_only:
        return faces_only_report(config, inputs)
    keep_keras_if_possible(inputs)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    show = config.show_progress
    data = None
    accuracy: dict[str, AccuracyResult] = {}
    if inputs.files is not None:
        progress = Progress("loading images", min(len(inputs.files.paths), config.max_images or 10**9), enabled=show)
        data = load_images(inputs.files, inputs.models.contract, config.max_images, progress.advance)
        progress.close()
        if data.skipped:
            inputs.notes.append(f"{len(data.skipped)} images could not be read and were skipped (first: {data.skipped[0]})")
        accuracy = measure_accuracy(inputs, data, show)
    plan = LatencyPlan(config.warmup, config.runs, threads=inputs.threads)
    try:
        measured = measure_all(inputs.models.entries(), plan, show)
    except ProbeFailed as exc:
        raise BenchmarkError(f"{exc} (the models loaded in the check; please report this)") from exc
    inputs.notes += measured.notes
    say("camera pipeline ...", show)
    pipeline = measure_pipeline_in_child(PipelineConfig(
        inputs.models.models_dir, config.video, config.pipeline_frames, config.detector, config.face,
        enabled=config.pipeline,
    ))
    say("camera pipeline: " + (f"skipped ({pipeline['skipped']})" if pipeline.get("skipped")
                               else f"{pipeline['fps']:.1f} FPS over {pipeline['frames']} frames"), show)
    faces = measure_real_faces(config)
    load_after = load_average()
    busy = busy_machine_note(load_before, load_after, all_cores())
    if busy:
        inputs.notes.append(busy)
    machine = machine_info()
    machine["load_average"] = {"before": load_before, "after": load_after}
    report: dict[str, Any] = {
        "format_version": REPORT_FORMAT_VERSION,
        "created": started.isoformat(timespec="seconds"),
        "command": config.command,
        "machine": machine,
        "settings": {
            "models_dir": str(config.models_dir),
            "data": data.source if data is not None else None,
            "images": int(len(data.images)) if data is not None else 0,
            "skipped_images": len(data.skipped) if data is not None else 0,
            "accuracy_threads": all_cores(),
            "latency_threads": list(inputs.threads),
            "warmup": plan.warmup,
            "runs": plan.runs,
            "block": plan.block,
            "input_size": inputs.models.contract.input_size,
        },
        "labels": list(inputs.models.labels),
        "variants": variant_rows(inputs, accuracy, measured),
        "goals": goals(measured.latency),
        "pipeline": pipeline,
        "faces": faces,
        "labelled_faces": measure_labelled_faces(config),
        "notes": inputs.notes,
    }
    if inputs.old_report is not None:
        report["comparison"] = compare_module.comparison_block(Path(config.compare), inputs.old_report, report)
    return report
