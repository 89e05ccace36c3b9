"""Labelled real faces (CelebA's format) through the device path: traits, sense, variety, gender.

Each picture's largest face is found as the device finds faces in a still picture, cropped per the
contract, run through a converted model with mirror averaging (``predict_mirrored``, as the device
does) and matched by the matcher the device builds from the sidecar, the face mean adapting as the
faces arrive in file order (causal: each face is answered before it moves the mean).

The similarities do not depend on the trait weights, so they are computed once (``run_faces``) and
any set of weights is ranked from them in milliseconds (``rank``): ``python -m train.match`` tunes
the weights on the validation split this way, the benchmark reports the test split with the
shipped weights. The figures:

- per trait: the trait head's ROC AUC, and the top-3 sense (share of people with the trait whose
  top-3 holds a character with it, the same for people without, their ratio: the lift), judged by
  the picture shown for each character (what the user sees; a character's variants differ) and,
  beside it, by the character's majority traits (``character_traits.csv``);
- variety: share of the most frequent top-1 character, number of characters that appear;
- gender: among faces whose shown picture is drawn as a man or a woman, the share where that
  matches the person's label (CelebA's ``Male``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import crop_face, read_rgb
from edge.face_traits import FACE_TRAITS, LabelledFaces, roc_auc
from edge.faces import FaceDetector
from edge.matcher import GalleryScoring, LookalikeMatcher
from edge.ranking import top_k_indices
from edge.runtime import LookalikeModel
from edge.traits import CHARACTER_TRAITS, MATCHED_BY, TERM_NAMES, person_terms

SENSE_TRAITS = ("glasses", "hat", "bald", "white_hair", "blond_hair", "beard", "goatee", "mustache")
RATE_TRAITS = ("glasses", "bald", "white_hair", "blond_hair", "beard")  # >= 60% of people with it
LIFT_TRAITS = ("glasses", "hat", "bald", "white_hair", "blond_hair", "goatee", "mustache")  # lift >= 2 for 5
GOAL_LIFT = 2.0
GOAL_RATE = 0.6
GOAL_LIFT_TRAITS = 5  # of the seven beyond "beard": glasses, hat, bald, grey, blond, goatee, mustache
GOAL_MOST_FREQUENT = 0.10
GOAL_DISTINCT = 30
GOAL_GENDER = 0.90
TOP_K = 3


@dataclass
class FaceRun:
    """What the device computed for each labelled face it found (rows in file order)."""

    files: list[str]
    labels: np.ndarray  # (N, len(FACE_TRAITS)) bool: the people's labels
    traits: np.ndarray  # (N, T) trait probabilities read by the model
    trait_names: tuple[str, ...]
    thresholds: tuple[float, ...]
    similarities: np.ndarray  # (N, G) gallery cosine, face mean adapted causally
    picture_similarities: np.ndarray  # (N, P)
    missed: list[str] = field(default_factory=list)  # pictures where no face was found
    crops: list[np.ndarray] = field(default_factory=list)  # kept only when asked (stability)


def largest_face(rgb: np.ndarray, detector: FaceDetector):
    from benchmarks.faces import detect_faces

    boxes = detect_faces(rgb, detector)
    return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


def run_faces(model: LookalikeModel, matcher: LookalikeMatcher, faces: LabelledFaces, detector: FaceDetector,
              keep_crops: int = 0, progress=None) -> FaceRun:
    gallery = matcher.gallery
    if gallery is None or gallery.pictures is None or gallery.temperature is None:
        raise ValueError("the model's gallery.npz has no calibrated pictures: run 'make train' and 'make convert' again")
    if gallery.pictures.traits is None:
        raise ValueError("the model's gallery.npz has no picture traits (training found no traits.csv beside the data)")
    if not model.contract.has_traits:
        raise ValueError("the model reads no face traits (trained with --no-traits, or the trait head did not fit)")
    rows, traits, sims, pic_sims, missed, crops = [], [], [], [], [], []
    for i, path in enumerate(faces.files):
        rgb = read_rgb(path)
        box = largest_face(rgb, detector)
        if box is None:
            missed.append(path.name)
            continue
        crop = crop_face(rgb, box, model.contract)
        prediction = model.predict_mirrored(crop)
        query = gallery.query(prediction.embedding)
        sims.append(gallery.embeddings @ query)
        pic_sims.append(gallery.pictures.embeddings @ query)
        gallery.observe(prediction.embedding)  # after answering, as the pipeline does
        traits.append(prediction.traits)
        rows.append(i)
        if len(crops) < keep_crops:
            crops.append((rgb, box))
        if progress is not None and (i + 1) % 200 == 0:
            progress(i + 1)
    if not rows:
        raise ValueError(f"no faces found in the {len(faces)} labelled pictures")
    return FaceRun([faces.files[i].name for i in rows], faces.labels[rows], np.asarray(traits, np.float32),
                   model.contract.traits, model.contract.trait_thresholds, np.asarray(sims, np.float32), np.asarray(pic_sims, np.float32), missed, crops)


@dataclass
class Ranking:
    top: np.ndarray  # (N, k) character indices
    pictures: np.ndarray  # (N, G) chosen picture per character


def rank(run: FaceRun, gallery: GalleryScoring, weights: np.ndarray | None, k: int = TOP_K) -> Ranking:
    """Every face's top-k characters and pictures under ``weights`` (None: no traits), exactly as
    ``GalleryScoring.scores`` ranks them, vectorised over faces."""
    person = None
    if weights is not None:
        person = np.stack([person_terms(t, run.trait_names, run.thresholds) for t in run.traits])  # (N, M)
    bonus, chosen = gallery.pictures.choose_many(run.picture_similarities, person, weights, gallery.temperature,
                                                 len(run.similarities))
    logits = run.similarities / gallery.temperature + bonus
    top = top_k_indices(logits, k)
    return Ranking(top, chosen)


def sense(run: FaceRun, ranking: Ranking, characters: dict[str, frozenset[str]], labels: tuple[str, ...],
          gallery: GalleryScoring, by: str = "picture") -> dict[str, Any]:
    """Per trait: with / without / lift of a matching character in the top-k. ``by="picture"``: the
    picture shown for that character has the trait (what the user sees: the variants differ, e.g. a
    blond-haired one); ``by="character"``: the character has it in most of its pictures
    (``character_traits.csv``)."""
    out = {}
    if by == "picture":
        shown = np.take_along_axis(ranking.pictures, ranking.top, axis=1)  # (N, k) picture indices
        traits = gallery.pictures.traits
    for trait in SENSE_TRAITS:
        wanted = MATCHED_BY[trait]
        if by == "picture":
            columns = [CHARACTER_TRAITS.index(t) for t in wanted]
            has_it = traits[:, columns].max(axis=1) >= 0.5
            hit = (has_it[shown] & (shown >= 0)).any(axis=1)
            count = int(len({int(o) for o in gallery.pictures.owners[has_it]}))
        else:
            matching = np.array([bool(characters.get(n, frozenset()) & wanted) for n in labels])
            hit = matching[ranking.top].any(axis=1)
            count = int(matching.sum())
        has = run.labels[:, FACE_TRAITS.index(trait)]
        with_rate = float(hit[has].mean()) if has.any() else None
        without = float(hit[~has].mean()) if (~has).any() else None
        out[trait] = {"faces_with": int(has.sum()), "with": with_rate, "without": without,
                      "lift": with_rate / without if with_rate is not None and without else None,
                      "lifted": lifted(with_rate, without), "characters": count}
    return out


def lifted(with_rate: float | None, without: float | None) -> bool:
    """The lift goal, read off the two shares (a share of 0 without the trait has no ratio)."""
    return with_rate is not None and without is not None and with_rate > 0 and with_rate >= GOAL_LIFT * without


def variety(ranking: Ranking, labels: tuple[str, ...]) -> dict[str, Any]:
    counts = Counter(int(i) for i in ranking.top[:, 0])
    label, count = counts.most_common(1)[0]
    return {"most_frequent": labels[label], "most_frequent_share": count / len(ranking.top),
            "distinct": len(counts), "characters": len(labels)}


def gender(run: FaceRun, ranking: Ranking, gallery: GalleryScoring) -> dict[str, Any]:
    """Among faces whose shown picture (top-1's) is drawn male or female: share matching the label."""
    traits = gallery.pictures.traits
    male, female = CHARACTER_TRAITS.index("male"), CHARACTER_TRAITS.index("female")
    shown = ranking.pictures[np.arange(len(ranking.top)), ranking.top[:, 0]]
    drawn_male = traits[shown, male] >= 0.5
    drawn_female = traits[shown, female] >= 0.5
    gendered = drawn_male ^ drawn_female
    person_male = run.labels[:, FACE_TRAITS.index("male")]
    right = (drawn_male & person_male) | (drawn_female & ~person_male)
    return {"gendered": int(gendered.sum()), "faces": len(shown),
            "match": float(right[gendered].mean()) if gendered.any() else None}


def trait_auc(run: FaceRun) -> dict[str, float | None]:
    """Per trait ROC AUC, None where the faces hold no positive (or no negative)."""
    aucs = {name: roc_auc(run.labels[:, FACE_TRAITS.index(name)], run.traits[:, t])
            for t, name in enumerate(run.trait_names) if name in FACE_TRAITS}
    return {name: (None if value != value else value) for name, value in aucs.items()}


def evaluate(run: FaceRun, gallery: GalleryScoring, weights: np.ndarray | None, characters: dict[str, frozenset[str]],
             labels: tuple[str, ...]) -> dict[str, Any]:
    ranking = rank(run, gallery, weights)
    result = {"faces": len(run.files), "missed": len(run.missed),
              "sense": sense(run, ranking, characters, labels, gallery, "picture"),
              "sense_by_character": sense(run, ranking, characters, labels, gallery, "character"),
              "variety": variety(ranking, labels), "gender": gender(run, ranking, gallery)}
    result["goals"] = goals(result)
    return result


def goals(result: dict[str, Any]) -> dict[str, Any]:
    s = result["sense"]
    lifted = [t for t in LIFT_TRAITS if s[t]["lifted"]]
    rated = [t for t in RATE_TRAITS if s[t]["with"] is not None and s[t]["with"] >= GOAL_RATE]
    v, g = result["variety"], result["gender"]
    return {
        "lift_traits": lifted, "lift_met": len(lifted) >= GOAL_LIFT_TRAITS,
        "rate_traits": rated, "rate_met": len(rated) == len(RATE_TRAITS),
        "variety_met": v["most_frequent_share"] <= GOAL_MOST_FREQUENT and v["distinct"] >= GOAL_DISTINCT,
        "gender_met": g["match"] is not None and g["match"] >= GOAL_GENDER,
    }


def objective(result: dict[str, Any]) -> float:
    """What the tuner maximises on the validation split: each sense goal approached (capped, so no
    trait is bought by another), gender, and variety as a hard edge."""
    s, v = result["sense"], result["variety"]
    value = 0.0
    for trait in LIFT_TRAITS:
        with_rate, without = s[trait]["with"] or 0.0, s[trait]["without"] or 0.0
        value += min(with_rate / max(GOAL_LIFT * without, 1e-9), 1.25)
    for trait in RATE_TRAITS:
        value += min((s[trait]["with"] or 0.0) / GOAL_RATE, 1.1)
    if result["gender"]["match"] is not None:
        value += 2.0 * min(result["gender"]["match"] / GOAL_GENDER, 1.0)
    value -= 40.0 * max(0.0, v["most_frequent_share"] - 0.8 * GOAL_MOST_FREQUENT)
    value -= 0.5 * max(0, GOAL_DISTINCT + 5 - v["distinct"])
    return value


def term_weights(values: dict[str, float]) -> np.ndarray:
    return np.array([values[name] for name in TERM_NAMES], dtype=np.float32)


def character_table(models_dir: Path, labels: tuple[str, ...]) -> dict[str, frozenset[str]]:
    from edge.traits import CHARACTER_TRAITS_FILE, read_character_traits

    return read_character_traits(Path(models_dir) / CHARACTER_TRAITS_FILE, labels)


STABILITY_FACES = 300


def stability(model: LookalikeModel, matcher: LookalikeMatcher, samples: list) -> dict[str, Any]:
    """Top-1 unchanged under each small change of ``benchmarks.faces.PERTURBATIONS``, on the first
    faces, scored with the face mean as it stands at the end of the run (fixed while measuring)."""
    from benchmarks.faces import PERTURBATIONS, FaceSample, perturbed_inputs

    def top1(image: np.ndarray) -> int:
        return int(np.argmax(matcher.score(model.predict_mirrored(image)).gallery))

    kept = {name: [] for name in PERTURBATIONS}
    for rgb, box in samples:
        crop = crop_face(rgb, box, model.contract)
        base = top1(crop)
        for name, images in perturbed_inputs(FaceSample("", rgb, box), crop, model.contract).items():
            kept[name].append(np.mean([top1(image) == base for image in images]))
    shares = {name: float(np.mean(values)) for name, values in kept.items() if values}
    return {"faces": len(samples), **shares, "mean": float(np.mean(list(shares.values()))) if shares else None}


def labelled_section(models_dir: Path, folder: Path, variant: str, detector_name: str | None, threads: int = 1,
                     max_faces: int | None = None, show_progress: bool = True) -> dict[str, Any]:
    """The report's ``labelled_faces`` block: the test split through the device path, with the
    shipped trait weights and without traits, the head's AUC, and stability."""
    from benchmarks import BenchmarkError
    from benchmarks.progress import Progress
    from edge.face_traits import SPLIT_RULE, FaceTraitsError, read_labelled_faces
    from edge.faces import DetectorError, make_face_detector
    from edge.live import RunOptions, make_matcher
    from edge.runtime import ModelError, model_path
    from edge.traits import TraitsError

    try:
        faces = read_labelled_faces(folder).subset("test")
        if max_faces is not None:
            faces = LabelledFaces(faces.folder, faces.files[:max_faces], faces.labels[:max_faces])
        model = LookalikeModel(model_path(models_dir, variant), num_threads=threads)
        matcher = make_matcher(model, RunOptions(models=Path(models_dir), variant=variant))[0]
        detector = make_face_detector(detector_name)
        characters = character_table(Path(models_dir), model.labels)
        progress = Progress("labelled faces", len(faces), enabled=show_progress)
        run = run_faces(model, matcher, faces, detector, keep_crops=STABILITY_FACES,
                        progress=lambda n: progress.advance(200))
        progress.close()
    except (FaceTraitsError, ModelError, DetectorError, TraitsError, ValueError) as exc:
        raise BenchmarkError(str(exc)) from exc
    gallery = matcher.gallery
    weights = gallery.trait_weights
    result = {
        "source": str(folder), "split": "test", "rule": SPLIT_RULE, "pictures": len(faces), "model": model.path.name,
        "detector": detector.name, "trait_auc": trait_auc(run),
        "with_traits": evaluate(run, gallery, weights, characters, model.labels) if weights is not None else None,
        "without_traits": evaluate(run, gallery, None, characters, model.labels),
        "weights": None if weights is None else dict(zip(TERM_NAMES, (float(w) for w in weights))),
    }
    result["stability"] = stability(model, matcher, run.crops)
    if weights is None:
        result["notes"] = ["gallery.npz carries no trait weights: the device matches without traits "
                           "(run 'python -m train.match' or 'make traits')"]
    return result
