"""Which character does a face look like: classifier scores and a gallery match, side by side.

The model gives two views of a face: softmax ``probabilities`` over the characters it was trained
on, and an L2-normalised ``embedding``. ``gallery.npz`` (written by training, named by the
sidecar) holds one embedding per character; cosine similarity against it is the second view.

How gallery similarities become readable scores is meant to change (domain centring, temperature
calibration), so it lives in one place, ``GalleryScoring``, configured from the files, not from
code:
- ``gallery.npz`` arrays ``labels`` (G,) and ``embeddings`` (G, D) are required; optional
  ``character_mean`` (D,) and ``face_mean`` (D,) switch on centred cosine similarity (each side
  minus its domain's mean, renormalised), and an optional scalar ``temperature`` turns the
  similarities into a softmax distribution over the characters;
- the sidecar may hold ``"matching": {"method": ..., "temperature": ...}``, which wins over the
  gallery file (so a recalibration does not need new embeddings).

The face mean shipped in ``gallery.npz`` comes from the faces training saw (small grey LFW crops and
one colour portrait by default), so it centres the faces of another camera or light only in part. So
the matcher adapts it at run time (``FaceDomain``): each new person seen pulls the mean toward their
embedding, one observation per person (the pipeline observes a face once, when it is first
classified, and a face that matches one of the last people observed is not counted again, so one
user in front of the camera all day does not become the mean). The shipped mean counts as
``FaceDomain.prior`` faces: after a few dozen people the camera's own faces decide.

Scores are full vectors (one value per class) so that they can be averaged over frames before
ranking; ``rank`` turns them into (label, score 0..1) lists.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.ranking import top_k_indices
from edge.runtime import ModelError, Prediction, Sidecar
from edge.style_domain import ClassifierHead, StyleAdaptation
from edge.traits import CHARACTER_TRAITS, MATCHED_BY, PERSON_TRAITS, TERM_NAMES, person_terms, picture_terms

METHODS = ("auto", "classifier", "gallery")


@dataclass(frozen=True)
class Ranked:
    label: str
    score: float  # 0..1
    picture: str | None = None  # the character's picture for this face (characters/<class>/<file>), when known


@dataclass
class MatchScores:
    """Per-class scores for one face: classifier probabilities and (optionally) gallery scores."""

    classifier: np.ndarray  # (C,)
    gallery: np.ndarray | None = None  # (G,)
    traits: np.ndarray | None = None  # (T,) the face's trait probabilities
    pictures: np.ndarray | None = None  # (G,) index of the picture chosen for each character

    def blend(self, newer: "MatchScores", weight: float) -> "MatchScores":
        """Exponential moving average: ``weight`` of the newer scores, the rest of these (the
        pictures are the newer choice)."""
        def mix(old: np.ndarray | None, new: np.ndarray | None) -> np.ndarray | None:
            if old is None or new is None:
                return new
            return (1.0 - weight) * old + weight * new

        return MatchScores(mix(self.classifier, newer.classifier), mix(self.gallery, newer.gallery),
                           mix(self.traits, newer.traits), newer.pictures)


@dataclass
class Lookalike:
    """What the user sees for one face: the primary ranking and both views behind it."""

    top: list[Ranked]
    classifier: list[Ranked]
    gallery: list[Ranked]
    method: str  # which view ``top`` comes from
    traits: list[str] = field(default_factory=list)  # the person's traits read (``edge.traits.PERSON_TRAITS`` words)
    why: list[str] = field(default_factory=list)  # of those, the ones the top character's picture shares
    trait_scores: dict[str, float] = field(default_factory=dict)  # every trait probability read

    @property
    def best(self) -> Ranked | None:
        return self.top[0] if self.top else None


@dataclass
class FaceDomain:
    """The mean embedding of real faces, starting from the shipped mean and adapting to the faces seen."""

    shipped: np.ndarray  # (D,) the training-time face mean
    prior: float = 3.0  # the shipped mean weighs as much as this many observed faces
    memory: int = 500  # past this many faces the mean becomes a moving average (keeps adapting)
    # Cosine similarity of the (uncentred) embeddings above which a face is someone already observed.
    # Measured with the int8 model on 66 real faces: the same face shifted by 6%, reframed 20% larger
    # or in 20% more or less light stays above 0.985 in 98% of cases; two different people reach it
    # in 1.5% of pairs of the small grey LFW faces and never among the colour photos. (Centring
    # would separate people better, but only once the mean fits the camera: against a mean from
    # other faces every new face looks alike, and none would be counted.)
    same_person: float = 0.985
    recent: int = 16  # how many of the last observed faces are checked for "already observed"
    mean: np.ndarray = field(init=False)
    count: int = field(init=False, default=0)
    _recent: list = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.shipped = np.asarray(self.shipped, dtype=np.float32)
        if not self.prior > 0:
            raise ValueError(f"the face prior must be positive, got {self.prior}")
        self.mean = self.shipped.copy()

    def observe(self, embedding: np.ndarray) -> bool:
        """Count one face in the mean; False (and nothing changes) when it looks like a face just
        observed, the same person again."""
        unit = _unit(np.asarray(embedding, dtype=np.float32))
        if unit is None:
            return False
        if any(float(unit @ seen) >= self.same_person for seen in self._recent):
            return False
        self.count += 1
        weight = 1.0 / (self.prior + min(self.count, self.memory))
        self.mean = ((1.0 - weight) * self.mean + weight * unit).astype(np.float32)
        self._recent = (self._recent + [unit])[-self.recent:]
        return True


@dataclass
class GalleryScoring:
    """Gallery embeddings prepared for scoring, with the optional calibration parameters."""

    labels: tuple[str, ...]
    embeddings: np.ndarray  # (G, D), unit rows (centred first when means are given)
    face_mean: np.ndarray | None = None  # the shipped face mean
    temperature: float | None = None
    faces: FaceDomain | None = None  # set by ``adapt``: the face mean follows the faces seen
    pictures: "PictureSet | None" = None  # every picture shown for the characters (variants)
    trait_weights: np.ndarray | None = None  # (M,) weight of each ``edge.traits.TERMS`` term
    character_mean: np.ndarray | None = None  # the drawings' mean (subtracted from the rows)
    drawings: bool = False  # the queries are drawings (--full-frame): centred like the rows, not like faces

    @property
    def centred(self) -> bool:
        return self.face_mean is not None

    @property
    def adaptive(self) -> bool:
        return self.faces is not None

    def adapt(self, prior: float = FaceDomain.prior) -> None:
        """Let the face mean adapt to the faces observed (needs a shipped face mean)."""
        if self.face_mean is None:
            raise ValueError("adapting the face mean needs a gallery with face_mean and character_mean")
        self.faces = FaceDomain(self.face_mean, prior)

    def observe(self, embedding: np.ndarray) -> bool:
        """One new face for the adaptive face mean; False when not adaptive or not counted."""
        return self.faces.observe(embedding) if self.faces is not None else False

    def current_face_mean(self) -> np.ndarray | None:
        return self.faces.mean if self.faces is not None else self.face_mean

    @property
    def calibrated(self) -> bool:
        return self.temperature is not None

    @classmethod
    def build(
        cls,
        labels: tuple[str, ...],
        embeddings: np.ndarray,
        character_mean: np.ndarray | None = None,
        face_mean: np.ndarray | None = None,
        temperature: float | None = None,
    ) -> "GalleryScoring":
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if (character_mean is None) != (face_mean is None):
            raise ValueError("centring needs both character_mean and face_mean")
        if character_mean is not None:
            embeddings = embeddings - np.asarray(character_mean, dtype=np.float32)
            face_mean = np.asarray(face_mean, dtype=np.float32)
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        mean = None if character_mean is None else np.asarray(character_mean, dtype=np.float32)
        return cls(tuple(labels), unit_rows(embeddings), face_mean, temperature, character_mean=mean)

    def similarities(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine similarity of one embedding with every character, in [-1, 1]."""
        query = self.query(embedding)
        return self.embeddings @ query if query is not None else np.zeros(len(self.labels), np.float32)

    def query(self, embedding: np.ndarray) -> np.ndarray | None:
        """The embedding as the gallery compares it: unit length, centred on the face mean, unit again."""
        query = np.asarray(embedding, dtype=np.float32)
        length = float(np.linalg.norm(query))
        if length > 0.0:
            query = query / length  # the face mean is a mean of unit embeddings: centre on the same sphere
        mean = self.character_mean if self.drawings else self.current_face_mean()
        if mean is not None:
            query = query - mean
        norm = float(np.linalg.norm(query))
        return query / norm if norm > 0.0 else None

    def scores(self, embedding: np.ndarray, person: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Readable 0..1 scores and the picture chosen for each character (None without pictures).

        Calibrated (a temperature is given): a softmax over the characters of similarity /
        temperature plus, when the face's traits are known (``person``: its side of each
        ``edge.traits.TERMS`` term) and the gallery has trait weights, the weighted agreement of the
        person's traits with the character's best-agreeing picture. That picture is the one shown:
        the variant closest to the person (gender, hair, glasses ...), ties broken by similarity.
        Uncalibrated: the cosine similarity mapped from [-1, 1] to [0, 1] (0.5 "unrelated")."""
        query = self.query(embedding)
        similarity = self.embeddings @ query if query is not None else np.zeros(len(self.labels), np.float32)
        if self.temperature is None:
            return ((similarity + 1.0) / 2.0).astype(np.float32), None
        logits = similarity / self.temperature
        chosen = None
        if self.pictures is not None:
            # The trait head reads faces: a drawing's "traits" would only add noise to its match.
            person = None if self.drawings else person
            bonus, chosen = self.pictures.choose(query, person, self.trait_weights, self.temperature)
            logits = logits + bonus
        logits = logits - logits.max()
        weights = np.exp(logits)
        return (weights / weights.sum()).astype(np.float32), chosen


@dataclass
class PictureSet:
    """The pictures shown for the characters (several per character: genders, skin tones ...)."""

    files: tuple[str, ...]  # (P,) characters/<class>/<file>
    owners: np.ndarray  # (P,) index of each picture's character in the gallery
    characters: int  # how many characters the gallery has (some may have no picture)
    embeddings: np.ndarray  # (P, D) unit, in the gallery's (centred) space
    traits: np.ndarray | None = None  # (P, K) 0/1 over ``edge.traits.CHARACTER_TRAITS``
    terms: np.ndarray | None = None  # (P, M) each picture's side of ``edge.traits.TERMS``
    plain: np.ndarray | None = None  # (P,) 1 for a picture drawn without a skin tone (emoji's default)
    # Choosing among a character's pictures: the traits first; then a picture without a skin tone
    # (the device does not estimate skin tone, and the embedding's nearest variant is no estimate of it:
    # measured, it picked the darkest tone for most faces); the embedding's similarity only breaks ties.
    plain_weight: float = 0.5
    similarity_weight: float = 0.001

    def __post_init__(self) -> None:
        self.groups = [np.flatnonzero(self.owners == g) for g in range(self.characters)]
        if self.traits is not None and self.terms is None:
            self.terms = picture_terms(self.traits)

    def choose(self, query: np.ndarray | None, person: np.ndarray | None, weights: np.ndarray | None,
               temperature: float) -> tuple[np.ndarray, np.ndarray]:
        """Per character: the trait agreement of its chosen picture (added to its logit) and the
        picture's index (-1 for a character without pictures)."""
        similarities = None if query is None else (self.embeddings @ query)[None, :]
        bonus, chosen = self.choose_many(similarities, None if person is None else person[None, :], weights,
                                         temperature, 1)
        return bonus[0], chosen[0]

    def choose_many(self, similarities: np.ndarray | None, person: np.ndarray | None, weights: np.ndarray | None,
                    temperature: float, faces: int) -> tuple[np.ndarray, np.ndarray]:
        """``choose`` for many faces at once: ``similarities`` (N, P) each face's cosine with every
        picture, ``person`` (N, M) each face's side of the terms; returns (N, G) bonus and chosen."""
        agree = np.zeros((faces, len(self.files)), np.float32)
        if person is not None and weights is not None and self.terms is not None:
            agree = ((person * weights[None, :]) @ (2.0 * self.terms - 1.0).T).astype(np.float32)
        preference = agree.copy()
        if self.plain is not None:
            preference += self.plain_weight * self.plain[None, :]
        if similarities is not None:
            preference += self.similarity_weight * similarities / temperature
        bonus = np.zeros((faces, len(self.groups)), np.float32)
        chosen = np.full((faces, len(self.groups)), -1, np.int64)
        every = np.arange(faces)
        for g, rows in enumerate(self.groups):
            if len(rows):
                best = rows[np.argmax(preference[:, rows], axis=1)]
                bonus[:, g], chosen[:, g] = agree[every, best], best
        return bonus, chosen

    def traits_of(self, index: int) -> frozenset[str]:
        if self.traits is None or index < 0:
            return frozenset()
        return frozenset(name for name, v in zip(CHARACTER_TRAITS, self.traits[index]) if v >= 0.5)


def traits_read(probabilities: np.ndarray, names: tuple[str, ...], thresholds: tuple[float, ...]) -> list[str]:
    """The person's traits as words of ``edge.traits.PERSON_TRAITS`` (each above its threshold;
    "older" when "young" is below its own)."""
    said = {name for name, p, t in zip(names, probabilities, thresholds) if p >= t}
    if "young" in names and "young" not in said:
        said.add("older")
    return [t for t in PERSON_TRAITS if t in said]


def shared_traits(read: list[str], picture: frozenset[str]) -> list[str]:
    """The person's traits that the picture has too (``MATCHED_BY``): why this character."""
    return [t for t in read if MATCHED_BY[t] & picture]


class LookalikeMatcher:
    """Classifier probabilities + gallery scores -> ranked lookalikes."""

    def __init__(self, labels: tuple[str, ...], gallery: GalleryScoring | None = None, method: str = "auto",
                 traits: tuple[str, ...] = (), thresholds: tuple[float, ...] = ()):
        if method not in METHODS:
            raise ValueError(f"matching method must be one of {', '.join(METHODS)}, got {method!r}")
        if method == "gallery" and gallery is None:
            raise ModelError("--match gallery needs gallery.npz beside the model: run 'make train' and 'make convert'")
        if len(traits) != len(thresholds):
            raise ValueError("each trait needs its threshold")
        self.labels = tuple(labels)
        self.gallery = gallery
        self.method = method
        self.traits = tuple(traits)  # names of the model's traits output; empty: traits are not used
        self.thresholds = tuple(thresholds)
        # The classifier with feature statistics that follow the pictures seen (``edge.style_domain``);
        # None: the model's own probabilities, standardised by the shipped statistics.
        self.style: StyleAdaptation | None = None

    @property
    def primary(self) -> str:
        """Which view ranks the answer: a calibrated gallery when there is one, else the classifier."""
        if self.method != "auto":
            return self.method
        return "gallery" if self.gallery is not None and self.gallery.calibrated else "classifier"

    def observe(self, prediction: Prediction) -> bool:
        """A new face (or picture) was seen, after it was answered: let an adaptive gallery's face mean
        (``FaceDomain``, faces only) and the adaptive classifier's statistics (``StyleAdaptation``) count it."""
        counted = False
        if self.gallery is not None and not self.gallery.drawings:
            counted = self.gallery.observe(prediction.embedding)
        if self.style is not None and prediction.features is not None:
            counted = self.style.observe(prediction.features) or counted
        return counted

    def score(self, prediction: Prediction) -> MatchScores:
        traits = prediction.traits if self.traits and prediction.traits is not None else None
        classifier = np.asarray(prediction.probabilities, dtype=np.float32)
        embedding = prediction.embedding
        if self.style is not None and prediction.features is not None:
            adapted = self.style.embedding(prediction.features)
            classifier = self.style.head.probabilities(adapted)
            if self.gallery is not None and self.gallery.drawings:
                embedding = adapted  # a drawing meets the gallery in its style's statistics too
        gallery = pictures = None
        if self.gallery is not None:
            person = person_terms(traits, self.traits, self.thresholds) if traits is not None else None
            gallery, pictures = self.gallery.scores(embedding, person)
        return MatchScores(classifier, gallery, None if traits is None else np.asarray(traits, np.float32), pictures)

    def rank(self, scores: MatchScores, k: int = 3) -> Lookalike:
        classifier = top_k(self.labels, scores.classifier, k)
        gallery = []
        if self.gallery is not None and scores.gallery is not None:
            pictures = self.gallery.pictures
            files = None
            if pictures is not None and scores.pictures is not None:
                files = [pictures.files[i] if i >= 0 else None for i in scores.pictures]
            gallery = top_k(self.gallery.labels, scores.gallery, k, files)
        read, probabilities = [], {}
        if scores.traits is not None:
            read = traits_read(scores.traits, self.traits, self.thresholds)
            probabilities = {name: round(float(p), 3) for name, p in zip(self.traits, scores.traits)}
        if self.primary == "gallery" and gallery:
            why = []
            if self.gallery.pictures is not None and scores.pictures is not None:
                best = int(scores.pictures[self.gallery.labels.index(gallery[0].label)])
                why = shared_traits(read, self.gallery.pictures.traits_of(best))
            return Lookalike(gallery, classifier, gallery, "gallery", read, why, probabilities)
        return Lookalike(classifier, classifier, gallery, "classifier", read, [], probabilities)

    @classmethod
    def from_sidecar(cls, tflite_path: str | Path, sidecar: Sidecar, labels: tuple[str, ...],
                     embedding_dim: int, method: str = "auto", adapt: bool = True, traits: tuple[str, ...] = (),
                     thresholds: tuple[float, ...] = (), adapt_style: bool = True) -> "LookalikeMatcher":
        """The matcher a converted model was shipped with: its gallery and matching parameters.
        ``adapt``: let a centred gallery's face mean follow the faces seen (``FaceDomain``).
        ``adapt_style``: let the classifier's feature statistics follow the pictures seen
        (``edge.style_domain``; needs a gallery with the classifier's weights).
        ``traits``/``thresholds``: the model's trait output (the contract's); empty: match without traits."""
        shipped = shipped_gallery_arrays(sidecar)
        gallery = head = None
        if shipped is not None:
            gallery = gallery_from_arrays(*shipped, sidecar, tflite_path, embedding_dim)
            head = classifier_head(*shipped, embedding_dim, len(labels)) if adapt_style else None
        matching = sidecar.matching
        if gallery is not None and matching.get("temperature") is not None:
            gallery.temperature = _positive(matching["temperature"], sidecar.path)
        if gallery is not None and gallery.centred and adapt:
            gallery.adapt()
        if method == "auto" and matching.get("method") in METHODS:
            method = matching["method"]
        matcher = cls(labels, gallery, method, traits, thresholds)
        if head is not None:
            matcher.style = StyleAdaptation.start(head)
        return matcher


def classifier_head(path: Path, arrays: dict[str, np.ndarray], embedding_dim: int, classes: int) -> ClassifierHead | None:
    """The classifier's last layer from the gallery (``head_kernel`` (D, C), ``head_bias`` (C,)), or
    None when the gallery has none (a model trained before they were shipped)."""
    if "head_kernel" not in arrays and "head_bias" not in arrays:
        return None
    try:
        kernel = np.asarray(arrays["head_kernel"], dtype=np.float32)
        bias = np.asarray(arrays["head_bias"], dtype=np.float32).reshape(-1)
    except KeyError as exc:
        raise ModelError(f"{path} has no {exc.args[0]!r} array beside the other half of the classifier: run 'make train' again") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: the classifier's weights are not numbers ({exc}): run 'make train' again") from exc
    if kernel.shape != (embedding_dim, classes) or bias.shape != (classes,) \
            or not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
        raise ModelError(f"{path}: the classifier's weights have shapes {kernel.shape} and {bias.shape}, the model needs "
                         f"({embedding_dim}, {classes}) and ({classes},) of finite numbers: run 'make train' again")
    return ClassifierHead(kernel, bias)


def shipped_gallery_arrays(sidecar: Sidecar) -> tuple[Path, dict[str, np.ndarray]] | None:
    """The gallery file the sidecar names and its arrays, or None when the sidecar names none."""
    if not sidecar.gallery:
        return None
    path = sidecar.beside(sidecar.gallery)
    if not path.is_file():
        raise ModelError(f"{path} (named by {sidecar.path.name}) is missing: copy it with the model, or run 'make train' and 'make convert'")
    return path, read_gallery_file(path)


def load_gallery(tflite_path: str | Path, sidecar: Sidecar, embedding_dim: int) -> GalleryScoring | None:
    """The gallery named by the sidecar, or None when the sidecar names none."""
    shipped = shipped_gallery_arrays(sidecar)
    return None if shipped is None else gallery_from_arrays(*shipped, sidecar, tflite_path, embedding_dim)


def gallery_from_arrays(path: Path, arrays: dict[str, np.ndarray], sidecar: Sidecar, tflite_path: str | Path,
                        embedding_dim: int) -> GalleryScoring:
    labels, embeddings = gallery_classes(arrays, path)
    check_generation(arrays, sidecar, path, tflite_path)
    if embeddings.ndim != 2 or embeddings.shape != (len(labels), embedding_dim):
        raise ModelError(
            f"{path} holds embeddings of shape {embeddings.shape}, the model needs ({len(labels)}, {embedding_dim}): "
            "the gallery comes from another model, run 'make train' and 'make convert' again"
        )
    temperature = arrays.get("temperature")
    try:
        scoring = GalleryScoring.build(
            labels,
            embeddings,
            _optional_vector(arrays, "character_mean", embedding_dim, path),
            _optional_vector(arrays, "face_mean", embedding_dim, path),
            None if temperature is None else _positive(float(np.asarray(temperature).reshape(-1)[0]), path),
        )
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}: run 'make train' again") from exc
    scoring.pictures = _picture_set(arrays, scoring, embedding_dim, path)
    scoring.trait_weights = _trait_weights(arrays, path)
    return scoring


def read_gallery_file(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a ``gallery.npz``, read without pickles: the project's one reader of the file
    (the device's ``load_gallery``, convert's gallery check, ``train.match`` rewriting its weights).
    Raises ModelError, naming the file, when it cannot be read."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{path} is not a readable gallery ({exc}): run 'make train' and 'make convert' again") from exc


def gallery_classes(arrays: dict[str, np.ndarray], path: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """The arrays every gallery has: ``labels`` (G,) and ``embeddings`` (G, D) as float32."""
    try:
        labels = tuple(str(v) for v in arrays["labels"])
        embeddings = np.asarray(arrays["embeddings"], dtype=np.float32)
    except KeyError as exc:
        raise ModelError(f"{path} has no {exc.args[0]!r} array: run 'make train' again") from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path} holds embeddings that are not numbers ({exc}): run 'make train' again") from exc
    return labels, embeddings


def check_generation(arrays: dict, sidecar: Sidecar, path: Path, tflite_path: str | Path) -> None:
    """The gallery and the .tflite must come from one training run: training writes the Keras model's
    sha256 into gallery.npz, converting writes it into the sidecar. Retraining without converting
    (or a convert that failed) would otherwise match one model's faces against another's gallery."""
    made_by = arrays.get("model_sha256")
    if made_by is None:
        raise ModelError(f"{path} does not say which training run made it (an older version wrote it): "
                         "run 'make train' and 'make convert' again")
    if str(np.asarray(made_by).reshape(-1)[0]) != sidecar.source_model_sha256:
        raise ModelError(f"{path} comes from another training run than {Path(tflite_path).name} (retrained since "
                         "the last convert, or a convert that failed): run 'make convert'")


def _picture_set(arrays: dict, scoring: GalleryScoring, dim: int, path: Path) -> PictureSet | None:
    if "picture_files" not in arrays:
        return None
    files = tuple(str(v) for v in arrays["picture_files"])
    owners = np.asarray(arrays.get("picture_labels", []), dtype=np.int64).reshape(-1)
    embeddings = np.asarray(arrays.get("picture_embeddings", np.zeros((0, dim))), dtype=np.float32)
    traits = arrays.get("picture_traits")
    ok = (len(owners) == len(files) and embeddings.shape == (len(files), dim)
          and (len(owners) == 0 or (owners.min() >= 0 and owners.max() < len(scoring.labels))))
    if traits is not None:
        names = tuple(str(v) for v in arrays.get("character_trait_names", []))
        traits = np.asarray(traits, dtype=np.float32)
        ok = ok and names == CHARACTER_TRAITS and traits.shape == (len(files), len(CHARACTER_TRAITS))
    if not ok:
        raise ModelError(f"{path}: the picture arrays do not fit together or the gallery: run 'make train' again")
    plain = arrays.get("picture_plain")
    if plain is not None:
        plain = np.asarray(plain, dtype=np.float32).reshape(-1)
        if plain.shape != (len(files),):
            raise ModelError(f"{path}: picture_plain does not fit the pictures: run 'make train' again")
    return PictureSet(files, owners, len(scoring.labels), unit_rows(embeddings), traits, plain=plain)


def _trait_weights(arrays: dict, path: Path) -> np.ndarray | None:
    if "trait_weights" not in arrays:
        return None
    terms = tuple(str(v) for v in arrays.get("trait_terms", []))
    if terms != TERM_NAMES:
        raise ModelError(f"{path}: its trait weights are for the terms {', '.join(terms) or '(none)'}, this "
                         f"device matches by {', '.join(TERM_NAMES)}: run 'make train' again")
    weights = np.asarray(arrays["trait_weights"], dtype=np.float32).reshape(-1)
    if weights.shape != (len(TERM_NAMES),) or not np.all(np.isfinite(weights)):
        raise ModelError(f"{path}: trait_weights must be {len(TERM_NAMES)} numbers, one per term: run 'make train' again")
    return weights


def _optional_vector(arrays: dict, key: str, dim: int, path: Path) -> np.ndarray | None:
    value = arrays.get(key)
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float32).reshape(-1)
    if value.shape != (dim,):
        raise ModelError(f"{path}: {key} has {value.size} values, the model's embedding has {dim}: run 'make train' again")
    return value


def _positive(value: Any, path: Path) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0:
        raise ModelError(f"{path}: temperature must be a positive number, got {value!r}: run 'make convert' again")
    return number


def _unit(vector: np.ndarray) -> np.ndarray | None:
    length = float(np.linalg.norm(vector))
    return vector / length if length > 0.0 else None


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def top_k(labels: tuple[str, ...], scores: np.ndarray | None, k: int, pictures: list[str | None] | None = None) -> list[Ranked]:
    if scores is None:
        return []
    order = top_k_indices(scores, k)
    return [Ranked(labels[i], float(np.clip(scores[i], 0.0, 1.0)), pictures[i] if pictures else None) for i in order]
