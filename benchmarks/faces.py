"""Real faces: how varied and how stable the lookalike answers are (issue 7).

A classifier trained only on drawings, shown photos, tends to give everyone the same character.
This section measures that on the device path (TFLite through ``edge``, no TensorFlow):

- faces: every face edge's detector finds in the photos of ``--faces DIR`` (each face is one
  sample; a photo without one is counted and skipped), or, without ``--faces``, scikit-image's
  100 LFW face crops plus its astronaut photo (skipped with a note where scikit-image is missing,
  as on the device);
- each face is cropped the way the device crops it (``edge.contract.crop_face``), run through the
  int8 model (``--variant``) and scored by the matcher the device builds from the sidecar
  (``LookalikeMatcher.from_sidecar``); every ranking it offers is measured: the classifier's
  probabilities and, when ``gallery.npz`` is shipped, the gallery similarities. The report says
  which one the device shows (``primary``);
- variety: how often the most frequent character is the answer, how many characters ever are;
- stability: how often the answer survives a mirror image, 10 % more or less light and a crop a
  few pixels off, the small changes between two camera frames of the same person.

The goals are measurements for the report, never asserts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from benchmarks import BenchmarkError
from benchmarks.progress import Progress
from benchmarks.sense import FACE_TRAITS_FILE, label_faces, read_face_traits, sense_section
from edge.contract import InputContract, crop_face, read_rgb
from edge.faces import Box, DetectorError, FaceDetector, find_faces, make_face_detector
from edge.matcher import LookalikeMatcher, top_k
from edge.runtime import LookalikeModel, ModelError, Prediction, model_path
from edge.artifacts import IMAGE_SUFFIXES, MODEL_CARD_FILE
from edge.model_card import read_model_card
from edge.traits import CHARACTER_TRAITS_FILE, TraitsError, read_character_traits

DEFAULT_VARIANT = "int8"  # what the device runs
LFW_FACES = 100  # skimage.data.lfw_subset(): the first 100 of its 200 crops are faces
LFW_SIDE = 100  # the 25 px crops are enlarged to this before cropping, like a small camera face
LFW_FACE_FRACTION = 0.8  # the face box: the centre 80 % of the (tight) crop
JITTER = 0.03  # crop jitter: the face box moved by this share of its size, in x and y
BRIGHTNESS = 0.10  # brightness change: pixel values times 1 +- this
TOP_K = 3
MOST_FREQUENT_SHOWN = 5
PER_FACE_TABLE_MAX = 20  # a per-face table reads well for a handful of photos, not for 100 crops
RANKINGS = ("classifier", "gallery", "adapted")  # adapted: the gallery with the face mean the device adapts

GOAL_MOST_FREQUENT_SHARE = 0.10
GOAL_DISTINCT_SHARE = 0.50
GOAL_STABILITY = 0.80

PERTURBATIONS = {
    "flip": "mirror image (horizontal flip of the crop)",
    "brighter": f"pixel values x{1 + BRIGHTNESS:g}, clipped",
    "darker": f"pixel values x{1 - BRIGHTNESS:g}",
    "jitter": f"face box moved by {JITTER:.0%} of its size in x and y (both diagonals, each counts half)",
}


@dataclass(frozen=True)
class FacesConfig:
    models_dir: Path
    folder: Path | None = None  # None: scikit-image's faces
    variant: str = DEFAULT_VARIANT
    detector: str = "auto"  # edge's --detector: auto (YuNet when cached, else Haar), haar, or a file
    threads: int = 1
    show_progress: bool = True
    face_traits: Path | None = None  # None: traits.csv in the folder, when there is one
    character_traits: Path | None = None  # None: character_traits.csv beside the models, when there is one

    def face_traits_file(self) -> Path | None:
        if self.face_traits is not None:
            return Path(self.face_traits)
        if self.folder is not None and (Path(self.folder) / FACE_TRAITS_FILE).is_file():
            return Path(self.folder) / FACE_TRAITS_FILE
        return None

    def character_traits_file(self) -> Path | None:
        if self.character_traits is not None:
            return Path(self.character_traits)
        default = Path(self.models_dir) / CHARACTER_TRAITS_FILE
        return default if default.is_file() else None


@dataclass
class FaceSample:
    """One face: the picture it is in (RGB) and its box (x, y, w, h) in that picture's pixels."""

    name: str
    rgb: np.ndarray
    box: Box
    photo: str = ""  # the picture's file name


@dataclass
class FaceSet:
    source: str
    samples: list[FaceSample]
    photos: int = 0
    photos_without_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- checking the inputs (before anything is measured) ----------------------------------------------

def photo_files(folder: Path) -> list[Path]:
    """The image files of a --faces folder; BenchmarkError if it is missing or has none."""
    hint = "pass a folder of face photos with --faces, or leave it out for scikit-image's faces"
    if not folder.is_dir():
        raise BenchmarkError(f"faces folder {folder} does not exist: {hint}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise BenchmarkError(f"faces folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}): {hint}")
    return files


def check_faces_inputs(config: FacesConfig) -> None:
    """Fail in seconds on a bad --faces folder, --variant or --detector."""
    if config.folder is not None:
        photo_files(Path(config.folder))
    for path in (config.face_traits, config.character_traits):
        if path is not None and not Path(path).is_file():
            raise BenchmarkError(f"traits file {path} does not exist")
    if config.face_traits_file() is not None:
        read_face_traits(config.face_traits_file())
    if not model_path(config.models_dir, config.variant).is_file():
        raise BenchmarkError(
            f"{model_path(config.models_dir, config.variant)} does not exist (needed for the real-faces section): "
            "run 'make convert', or pick another --variant"
        )
    try:
        make_face_detector(config.detector)
    except DetectorError as exc:
        raise BenchmarkError(str(exc)) from exc


# --- the faces ---------------------------------------------------------------------------------------

def detect_faces(rgb: np.ndarray, detector: FaceDetector) -> list[Box]:
    """Face boxes in the picture's pixels, left to right, found as edge finds them in a still picture."""
    return sorted(find_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), detector), key=lambda b: b[0])


def faces_in_photos(named_photos: Sequence[tuple[str, np.ndarray | None]], detector: FaceDetector,
                    source: str) -> FaceSet:
    """Every detected face of every photo is a sample; a photo with none (or unreadable) is counted."""
    found = FaceSet(source, [])
    for name, rgb in named_photos:
        if rgb is None:
            found.unreadable.append(name)
            continue
        found.photos += 1
        boxes = detect_faces(rgb, detector)
        if not boxes:
            found.photos_without_face.append(name)
        for number, box in enumerate(boxes, start=1):
            label = name if len(boxes) == 1 else f"{name} #{number}"
            found.samples.append(FaceSample(label, rgb, box, name))
    return found


def faces_from_folder(folder: Path, detector: FaceDetector) -> FaceSet:
    photos = []
    for path in photo_files(folder):
        try:
            photos.append((path.name, read_rgb(str(path))))
        except ValueError:
            photos.append((path.name, None))
    found = faces_in_photos(photos, detector, f"photos in {folder}")
    if found.unreadable:
        found.notes.append(f"{len(found.unreadable)} file(s) could not be read as images: {', '.join(found.unreadable)}")
    return found


def lfw_sample(number: int, gray: np.ndarray) -> FaceSample:
    """A 25x25 LFW crop (floats 0..1) as a 100 px RGB picture whose face box is its centre 80 %."""
    pixels = np.clip(np.round(np.asarray(gray, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    enlarged = cv2.resize(pixels, (LFW_SIDE, LFW_SIDE), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(enlarged, cv2.COLOR_GRAY2RGB)
    margin = LFW_SIDE * (1.0 - LFW_FACE_FRACTION) / 2.0
    side = LFW_SIDE * LFW_FACE_FRACTION
    return FaceSample(f"lfw {number}", rgb, (margin, margin, side, side))


def default_faces(detector: FaceDetector) -> FaceSet | str:
    """scikit-image's LFW crops plus its astronaut photo; a note (str) where scikit-image is missing."""
    try:
        from skimage import data  # a workstation extra, absent on the device
    except ImportError:
        return "no --faces DIR and scikit-image is not installed (normal on the device): pass a folder of face photos"
    found = faces_in_photos([("astronaut", data.astronaut())], detector,
                            f"scikit-image: lfw_subset()[:{LFW_FACES}] (25 px crops, enlarged to {LFW_SIDE} px) "
                            "and astronaut()")
    found.samples = [lfw_sample(i, crop) for i, crop in enumerate(data.lfw_subset()[:LFW_FACES])] + found.samples
    found.photos += LFW_FACES
    found.notes.append(
        "the LFW faces are 25 px greyscale crops: blurrier and greyer than a camera face, and the contract's "
        "2x crop around them is mostly replicated border, so they probe the collapse more than the answers' sense"
    )
    return found


def in_sample_note(models_dir: Path, folder: Path | None) -> list[str]:
    """Warn when the gallery's face mean was computed from the very faces measured here (the model
    card says where it came from): centring on a set's own mean flatters that set's variety."""
    if not (Path(models_dir) / MODEL_CARD_FILE).is_file():
        return []  # no card on the device: nothing to tell
    card = read_model_card(models_dir, BenchmarkError)
    source = (card.face_domain.source if card.face_domain is not None else None) or ""
    same = source.startswith("scikit-image") if folder is None else bool(source) and Path(source) == Path(folder)
    if not same:
        return []
    return [f"the gallery's face_mean was computed from these same faces ({source}): the variety measured "
            "here is in-sample, expect less on other faces"]


# --- model inputs for a face and its small changes ---------------------------------------------------

def shift_box(box: Box, fraction_x: float, fraction_y: float) -> Box:
    x, y, w, h = box
    return (x + fraction_x * w, y + fraction_y * h, w, h)


def change_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(np.round(image.astype(np.float32) * factor), 0, 255).astype(np.uint8)


def perturbed_inputs(sample: FaceSample, crop: np.ndarray, contract: InputContract) -> dict[str, list[np.ndarray]]:
    """Model inputs for each small change of the face, keyed like ``PERTURBATIONS``."""
    return {
        "flip": [np.ascontiguousarray(crop[:, ::-1])],
        # The light changes on the whole picture, before the device crops it, as with a camera.
        "brighter": [crop_face(change_brightness(sample.rgb, 1.0 + BRIGHTNESS), sample.box, contract)],
        "darker": [crop_face(change_brightness(sample.rgb, 1.0 - BRIGHTNESS), sample.box, contract)],
        "jitter": [crop_face(sample.rgb, shift_box(sample.box, d, d), contract) for d in (JITTER, -JITTER)],
    }


# --- the metrics (pure functions of the answers) ------------------------------------------------------

def variety(top1: Sequence[str], characters: int, shown: int = MOST_FREQUENT_SHOWN) -> dict[str, Any]:
    """How spread the top-1 answers are over the ``characters`` a ranking can give."""
    counts = Counter(top1)
    faces = len(top1)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {
        "faces": faces,
        "characters": characters,
        "most_frequent_share": ordered[0][1] / faces if faces else None,
        "distinct": len(counts),
        "distinct_share": len(counts) / characters if characters else None,
        "most_frequent": [{"label": label, "count": count, "share": count / faces} for label, count in ordered[:shown]],
        "counts": dict(ordered),
    }


def stability(original: Sequence[str], changed: Sequence[Sequence[str]]) -> float | None:
    """Share of faces whose top-1 stays the same; a face with several changed inputs (both jitter
    directions) counts the share of them that keep it."""
    if len(original) != len(changed):
        raise ValueError(f"{len(original)} answers but {len(changed)} sets of changed answers")
    kept = [np.mean([answer == first for answer in answers]) for first, answers in zip(original, changed) if answers]
    return float(np.mean(kept)) if kept else None


def stability_summary(original: Sequence[str], by_change: dict[str, Sequence[Sequence[str]]]) -> dict[str, float | None]:
    shares = {name: stability(original, changed) for name, changed in by_change.items()}
    measured = [v for v in shares.values() if v is not None]
    shares["mean"] = float(np.mean(measured)) if measured else None
    return shares


def goals(ranking: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals for one ranking: met or not, as measured (never asserted)."""
    checks = (
        ("most frequent top-1 answer <= 10% of faces", ranking["variety"]["most_frequent_share"],
         GOAL_MOST_FREQUENT_SHARE, lambda v, limit: v <= limit),
        ("distinct top-1 answers >= 50% of the characters", ranking["variety"]["distinct_share"],
         GOAL_DISTINCT_SHARE, lambda v, limit: v >= limit),
        ("top-1 unchanged under small changes >= 80% (mean)", ranking["stability"]["mean"],
         GOAL_STABILITY, lambda v, limit: v >= limit),
    )
    return [{"goal": text, "value": value, "limit": limit, "met": None if value is None else bool(test(value, limit))}
            for text, value, limit, test in checks]


# --- measuring ----------------------------------------------------------------------------------------

@dataclass
class FaceAnswers:
    """One ranking's top-1 answers: for every face the original and, per change, its changed inputs."""

    labels: tuple[str, ...]
    original: list[str] = field(default_factory=list)
    changed: dict[str, list[list[str]]] = field(default_factory=lambda: {name: [] for name in PERTURBATIONS})


def _views(matcher: LookalikeMatcher, prediction: Prediction,
           adaptive: LookalikeMatcher | None = None) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Each ranking measured: (its labels, this face's score vector). ``matcher`` keeps the shipped
    face mean; ``adaptive`` is the device's matcher, whose face mean follows the faces seen."""
    scores = matcher.score(prediction)
    views = {"classifier": (matcher.labels, scores.classifier)}
    if matcher.gallery is not None and scores.gallery is not None:
        views["gallery"] = (matcher.gallery.labels, scores.gallery)
    if adaptive is not None and adaptive.gallery is not None and adaptive.gallery.adaptive:
        views["adapted"] = (adaptive.gallery.labels, adaptive.score(prediction).gallery)
    return views


def _top1(labels: tuple[str, ...], vector: np.ndarray) -> str:
    return labels[int(np.argmax(vector))]  # the first of tied scores, as the matcher's stable sort picks


def _ranked(labels: tuple[str, ...], vector: np.ndarray) -> list[dict[str, Any]]:
    return [{"label": r.label, "score": r.score} for r in top_k(labels, vector, TOP_K)]


def measure_faces(face_set: FaceSet, model: LookalikeModel, matcher: LookalikeMatcher,
                  show_progress: bool = True, adaptive: LookalikeMatcher | None = None,
                  ) -> tuple[dict[str, FaceAnswers], list[dict[str, Any]]]:
    """Run every face and its changes through the model and the matchers: (answers per ranking,
    per-face top-k). Faces go in the order given, like people arriving at a camera: each is scored,
    then the adaptive matcher counts it (its changed copies are the same person, not counted)."""
    contract = model.contract
    answers: dict[str, FaceAnswers] = {}
    per_face = []

    def views(image: np.ndarray) -> tuple[Prediction, dict[str, tuple[tuple[str, ...], np.ndarray]]]:
        prediction = model.predict_mirrored(image)  # as the device does (PipelineOptions.mirror)
        return prediction, _views(matcher, prediction, adaptive)

    progress = Progress("real faces", len(face_set.samples), enabled=show_progress)
    for sample in face_set.samples:
        crop = crop_face(sample.rgb, sample.box, contract)
        prediction, original = views(crop)
        per_face.append({"face": sample.name, "box": [round(float(v), 1) for v in sample.box],
                         **{name: _ranked(*view) for name, view in original.items()}})
        changed_views = {name: [views(image)[1] for image in images]
                         for name, images in perturbed_inputs(sample, crop, contract).items()}
        for ranking, (labels, vector) in original.items():
            record = answers.setdefault(ranking, FaceAnswers(labels))
            record.original.append(_top1(labels, vector))
            for name, changed in changed_views.items():
                record.changed[name].append([_top1(*view[ranking]) for view in changed])
        if adaptive is not None:
            adaptive.observe(prediction)
        progress.advance()
    progress.close()
    return answers, per_face


def summarize(answers: dict[str, FaceAnswers]) -> dict[str, dict[str, Any]]:
    rankings = {}
    for name, record in answers.items():
        summary = {"variety": variety(record.original, len(record.labels)),
                   "stability": stability_summary(record.original, record.changed)}
        summary["goals"] = goals(summary)
        rankings[name] = summary
    return rankings


def gallery_description(matcher: LookalikeMatcher, model: LookalikeModel) -> dict[str, Any] | None:
    gallery = matcher.gallery
    if gallery is None:
        return None
    return {"file": model.sidecar.gallery, "characters": len(gallery.labels), "centred": gallery.centred,
            "calibrated": gallery.calibrated, "temperature": gallery.temperature,
            "adaptive": gallery.adaptive, "face_prior": gallery.faces.prior if gallery.faces is not None else None}


def small_set_notes(faces: int, rankings: dict[str, dict[str, Any]]) -> list[str]:
    """Say when the goals cannot be met by construction (too few faces), so no one chases them."""
    notes = []
    characters = max((r["variety"]["characters"] for r in rankings.values()), default=0)
    if 0 < faces < 1.0 / GOAL_MOST_FREQUENT_SHARE:
        notes.append(f"with {faces} faces the most frequent answer is at least 1/{faces} of them: "
                     "the variety goals need a larger face set (leave out --faces for scikit-image's 100 faces)")
    elif faces < GOAL_DISTINCT_SHARE * characters:
        notes.append(f"with {faces} faces at most {faces} of {characters} characters can appear: "
                     "the distinct-answers goal needs more faces")
    return notes


def faces_section(config: FacesConfig) -> dict[str, Any]:
    """The report's ``faces`` block, or ``{skipped: reason}`` when there are no faces to measure."""
    try:
        detector = make_face_detector(config.detector)
    except DetectorError as exc:
        raise BenchmarkError(str(exc)) from exc
    if config.folder is not None:
        face_set = faces_from_folder(Path(config.folder), detector)
    else:
        face_set = default_faces(detector)
        if isinstance(face_set, str):
            return {"skipped": face_set}
    described = {
        "source": face_set.source,
        "photos": face_set.photos,
        "photos_without_face": face_set.photos_without_face,
        "unreadable": face_set.unreadable,
        "detector": detector.name,
    }
    if not face_set.samples:
        return {"skipped": f"no face found in the {face_set.photos} photo(s) of {face_set.source}", **described}
    try:
        model = LookalikeModel(model_path(config.models_dir, config.variant), num_threads=config.threads)
        shipped = dict(embedding_dim=model.contract.embedding_dim, traits=model.contract.traits,
                       thresholds=model.contract.trait_thresholds)  # as the device matches: with the traits read
        matcher = LookalikeMatcher.from_sidecar(model.path, model.sidecar, model.labels, adapt=False, adapt_style=False,
                                                **shipped)
        device = LookalikeMatcher.from_sidecar(model.path, model.sidecar, model.labels, adapt=True, **shipped)
    except ModelError as exc:
        raise BenchmarkError(str(exc)) from exc
    adaptive = device if device.gallery is not None and device.gallery.adaptive else None
    answers, per_face = measure_faces(face_set, model, matcher, config.show_progress, adaptive)
    rankings = summarize(answers)
    notes = face_set.notes + small_set_notes(len(face_set.samples), rankings)
    sense, sense_notes = measure_sense(config, face_set, per_face, list(rankings), model.labels)
    notes += sense_notes
    if matcher.gallery is not None and matcher.gallery.centred:
        notes += in_sample_note(config.models_dir, config.folder)
    return {
        **described,
        "faces": len(face_set.samples),
        "model": model.path.name,
        "threads": config.threads,
        "primary": "adapted" if adaptive is not None and device.primary == "gallery" else device.primary,
        "gallery": gallery_description(device, model),
        "perturbations": dict(PERTURBATIONS),
        "rankings": rankings,
        "per_face": per_face,
        "sense": sense,
        "notes": notes,
    }


def measure_sense(config: FacesConfig, face_set: FaceSet, per_face: list[dict[str, Any]], rankings: list[str],
                  labels: Sequence[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The sense block (``benchmarks.sense``) when the faces come with a traits file, else None;
    each labelled face's traits are added to its per-face entry."""
    face_file = config.face_traits_file()
    if face_file is None:
        return None, []
    character_file = config.character_traits_file()
    if character_file is None:
        return None, [f"sense not measured: {face_file} labels the faces, but there is no {CHARACTER_TRAITS_FILE} "
                      "beside the models (training writes it from traits.csv beside the data) and no --character-traits"]
    try:
        characters = read_character_traits(character_file, labels)
    except TraitsError as exc:
        raise BenchmarkError(str(exc)) from exc
    face_traits, notes = label_faces([(s.photo, s.box) for s in face_set.samples], read_face_traits(face_file))
    for entry, traits in zip(per_face, face_traits):
        if traits is not None:
            entry["traits"] = sorted(traits)
    return sense_section(per_face, rankings, face_traits, characters, f"{face_file} and {character_file}"), notes
