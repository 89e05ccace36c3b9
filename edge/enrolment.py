"""Characters enrolled on the device: a few pictures of a new character join the gallery, no retraining.

``python -m edge enroll NAME PHOTOS...`` copies the pictures into the state folder
(``edge.state``); every run embeds them with the model it runs (the whole picture, mirrored, as the
device sees a drawing) and adds the character to the gallery: its row is the mean of its pictures'
unit embeddings, its pictures are what the card shows. The classifier does not know enrolled
characters, so they take part wherever the gallery ranks (faces, and ``--full-frame`` once any
character is enrolled).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.contract import prepare_image, read_rgb
from edge.matcher import GalleryScoring, PictureSet, unit_rows
from edge.runtime import LookalikeModel
from edge.state import ENROLLED_PREFIX, EnrolledCharacter, StateFolder, warn
from edge.traits import CHARACTER_TRAITS, TERMS, picture_terms

MAX_PICTURE_SIDE = 512  # enrolled pictures are stored at most this large (they are shown and embedded)


@dataclass
class EnrolledRows:
    """The enrolled characters as the gallery needs them (embedded by one model)."""

    names: tuple[str, ...]
    embeddings: np.ndarray  # (K, D) unit mean of each character's picture embeddings
    replaces: tuple[bool, ...]
    files: tuple[str, ...]  # (P,) enrolled:<name>/<file>
    owners: np.ndarray  # (P,) index into names
    picture_embeddings: np.ndarray  # (P, D) unit
    traits: np.ndarray  # (P, len(CHARACTER_TRAITS)) 0/1
    traits_known: np.ndarray  # (P,) 1 when the user gave the character's traits


def embed_picture(model: LookalikeModel, rgb: np.ndarray) -> np.ndarray:
    """A whole picture's unit embedding as the device computes it for a drawing (mirror-averaged)."""
    return model.predict_mirrored(prepare_image(rgb, model.contract)).embedding


def embed_enrolled(model: LookalikeModel, state: StateFolder, characters: list[EnrolledCharacter]) -> EnrolledRows | None:
    if not characters:
        return None
    names, rows, replaces, files, owners, embeddings, traits, known = [], [], [], [], [], [], [], []
    for character in characters:
        own = []
        for picture in character.pictures:
            path = state.picture_path(character.name, picture)
            try:
                own.append(embed_picture(model, read_rgb(str(path))))
            except (ValueError, OSError) as exc:
                warn(f"enrolled picture {path} cannot be read ({exc}); it is left out")
                continue
            files.append(f"{ENROLLED_PREFIX}{character.name}/{picture}")
            owners.append(len(names))
            traits.append([1.0 if t in character.traits else 0.0 for t in CHARACTER_TRAITS])
            known.append(1.0 if character.traits else 0.0)
        if not own:
            continue
        embeddings.extend(own)
        names.append(character.name)
        rows.append(np.mean(own, axis=0))
        replaces.append(character.replaces)
    if not names:
        return None
    return EnrolledRows(tuple(names), unit_rows(np.asarray(rows, np.float32)), tuple(replaces), tuple(files),
                        np.asarray(owners, np.int64), unit_rows(np.asarray(embeddings, np.float32)),
                        np.asarray(traits, np.float32).reshape(-1, len(CHARACTER_TRAITS)),
                        np.asarray(known, np.float32))


def _centre(rows: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    return unit_rows(rows - mean[None, :]) if mean is not None else rows


def extend_gallery(base: GalleryScoring, extra: EnrolledRows | None) -> GalleryScoring:
    """``base`` with the enrolled characters added (a trained character of the same name stays unless
    the enrolled one ``replaces`` it). The face domain, temperature and trait weights are shared."""
    if extra is None:
        return base
    hidden = {name for name, replace in zip(extra.names, extra.replaces) if replace}
    keep = np.array([label not in hidden for label in base.labels], bool)
    kept_index = np.cumsum(keep) - 1  # old row -> new row
    labels = tuple(label for label, k in zip(base.labels, keep) if k) + extra.names
    embeddings = np.concatenate([base.embeddings[keep], _centre(extra.embeddings, base.character_mean)])
    pictures = None
    if base.pictures is not None:
        old = base.pictures
        mask = keep[old.owners] if len(old.owners) else np.zeros(0, bool)
        trained = int(keep.sum())
        # Traits the user did not give count as unknown (neither side of any term), not as "absent".
        extra_terms = picture_terms(extra.traits)
        extra_terms[extra.traits_known == 0] = 0.5
        old_terms = old.terms if old.terms is not None else np.full((len(old.files), len(TERMS)), 0.5, np.float32)
        old_traits = old.traits if old.traits is not None else np.zeros((len(old.files), len(CHARACTER_TRAITS)), np.float32)
        plain = None
        if old.plain is not None:
            plain = np.concatenate([old.plain[mask], np.ones(len(extra.files), np.float32)])
        pictures = PictureSet(
            tuple(f for f, m in zip(old.files, mask) if m) + extra.files,
            np.concatenate([kept_index[old.owners[mask]], trained + extra.owners]).astype(np.int64),
            len(labels),
            np.concatenate([old.embeddings[mask], _centre(extra.picture_embeddings, base.character_mean)]),
            np.concatenate([old_traits[mask], extra.traits]),
            np.concatenate([old_terms[mask], extra_terms]).astype(np.float32),
            plain,
            old.plain_weight,
            old.similarity_weight,
        )
    return dataclasses.replace(base, labels=labels, embeddings=embeddings.astype(np.float32), pictures=pictures)


class EnrolledGallery:
    """Keeps a matcher's gallery in step with the state folder's enrolled characters (checked at most
    once a second, so an enrolment from another shell counts from the next frames on)."""

    def __init__(self, model: LookalikeModel, state: StateFolder, base: GalleryScoring, interval_s: float = 1.0):
        self.model = model
        self.state = state
        self.base = base
        self.interval_s = interval_s
        self._stamp: object = object()  # never equal: the first refresh loads
        self._checked = 0.0
        self.names: tuple[str, ...] = ()

    def refresh(self, gallery: GalleryScoring, force: bool = False) -> GalleryScoring | None:
        """A new gallery when the enrolled characters changed, else None. The base's adaptive face
        domain (``gallery.faces``) carries over."""
        now = time.monotonic()
        if not force and now - self._checked < self.interval_s:
            return None
        self._checked = now
        stamp = self.state.enrolled_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        characters = self.state.load_enrolled()
        rows = embed_enrolled(self.model, self.state, characters)
        self.names = rows.names if rows is not None else ()
        extended = extend_gallery(dataclasses.replace(self.base, faces=gallery.faces), rows)
        return extended


def store_picture(rgb: np.ndarray, path: Path) -> None:
    """An enrolled picture as PNG, at most MAX_PICTURE_SIDE on its longer side."""
    h, w = rgb.shape[:2]
    scale = MAX_PICTURE_SIDE / max(h, w)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode {path}")
    path.write_bytes(encoded.tobytes())
