"""What the device learns and keeps between runs: the adapted face mean, the classifier's feature
statistics, and the enrolled characters.

One folder (``--state DIR``, else ``$LOOKALIKE_STATE``, else ``$XDG_STATE_HOME/cartoon-lookalike``,
else ``~/.local/state/cartoon-lookalike``) holds:

    face_mean.json            the face mean adapted to the people this camera saw, and for which model
    style_faces.json          the classifier's feature statistics learned from the faces seen, and for
                              which model (``edge.style_domain``)
    style_drawings.json       the same for whole pictures (``--full-frame``: drawings), kept apart
                              because drawings and faces are different domains
    enrolled.json             the enrolled characters: name, picture files, traits
    enrolled/<name>/<n>.png   their pictures (what the card and the overlay show, and what is embedded)

Every file is written under a temporary name and renamed into place, so a crash or a power cut
leaves the old file or the new one, never half of one. A damaged file gives one warning line and
the shipped defaults; it is never deleted (``--reset-state`` does that, on purpose).

Enrolled characters keep their pictures, not their embeddings: they are embedded by whichever model
runs, at start and whenever ``enrolled.json`` changes, so a retrained or re-converted model never
compares its faces with another model's numbers.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from edge.artifacts import atomic_write_text

if TYPE_CHECKING:
    from edge.style_domain import StyleStatistics

STATE_VERSION = 1
FACE_MEAN_FILE = "face_mean.json"
# What the classifier's statistics were learned from: faces, or whole pictures (--full-frame, drawings).
STYLE_KINDS = ("faces", "drawings")
STYLE_FILES = {kind: f"style_{kind}.json" for kind in STYLE_KINDS}
LEARNED_FILES = (FACE_MEAN_FILE, *STYLE_FILES.values())  # what a run learns; --reset-state forgets them
ENROLLED_FILE = "enrolled.json"
ENROLLED_FOLDER = "enrolled"
STATE_FOLDER_NAME = "cartoon-lookalike"
DAMAGED_FILE_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError)  # what reading a damaged file raises
Learned = TypeVar("Learned")
ENROLLED_PREFIX = "enrolled:"  # how the gallery names an enrolled picture: enrolled:<name>/<file>
# A name is shown on screen and becomes a folder: letters (any script), digits, spaces, _ - . ' ( ).
NAME_PATTERN = re.compile(r"^[\w][\w .'()-]{0,63}$")


class StateError(RuntimeError):
    """The state folder cannot be used (not writable, not a folder); the message says which."""


def default_state_folder() -> Path:
    if os.environ.get("LOOKALIKE_STATE"):
        return Path(os.environ["LOOKALIKE_STATE"]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / STATE_FOLDER_NAME


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def check_name(name: str) -> str:
    """A character name that is safe as a label and as a folder name, or a ValueError saying why."""
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("the character needs a name")
    if "/" in cleaned or "\\" in cleaned or cleaned in (".", "..") or "\x00" in cleaned:
        raise ValueError(f"the name {name!r} has path characters (/ \\ ..): use letters, digits, spaces, _ or -")
    if not NAME_PATTERN.match(cleaned):
        raise ValueError(f"the name {name!r} may hold letters, digits, spaces and _ - . ' ( ), at most 64, "
                         "and must start with a letter or digit")
    return cleaned


@dataclass
class SavedFaceMean:
    mean: np.ndarray
    count: int
    model: str  # sha256 of the .tflite file whose embeddings these are


@dataclass
class EnrolledCharacter:
    name: str
    pictures: list[str]  # file names inside enrolled/<name>/
    traits: list[str] = field(default_factory=list)  # edge.traits.CHARACTER_TRAITS words the user gave
    replaces: bool = False  # enrolled with --replace: hides the trained character of the same name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pictures": self.pictures, "traits": self.traits, "replaces": self.replaces}


class StateFolder:
    """The device's state folder: read at start, written atomically, damaged files survived."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder).expanduser() if folder is not None else default_state_folder()

    # ------------------------------------------------------------- checks

    def check_writable(self) -> None:
        """Fail now, with one line, when the folder cannot hold the state (before any work): the
        folder is created if needed and a file is written and removed in it (permission bits alone
        say nothing to root or on a read-only file system)."""
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise StateError(f"state folder {folder} is a file, not a folder: pass another with --state")
        self._ensure()
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise StateError(f"state folder {folder} is not writable ({exc.strerror or exc}): pass another "
                             "with --state, or fix its permissions") from exc
        for name in (*LEARNED_FILES, ENROLLED_FILE, ENROLLED_FOLDER):
            path = folder / name
            if path.exists() and not os.access(path, os.W_OK):
                raise StateError(f"{path} is not writable: pass another state folder with --state")

    def _ensure(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state folder {self.folder} ({exc.strerror or exc}): "
                             "pass another with --state") from exc

    def reset(self) -> list[str]:
        """Forget everything learned and enrolled; the names of what was removed."""
        removed = []
        for name in LEARNED_FILES:
            path = self.folder / name
            if path.is_file():
                path.unlink()
                removed.append(name)
        return removed + self.reset_enrolled()

    def reset_enrolled(self) -> list[str]:
        removed = []
        if self.enrolled_file.is_file():
            self.enrolled_file.unlink()  # the index first: pictures without an index are never used
            removed.append(ENROLLED_FILE)
        if self.pictures_folder.is_dir():
            shutil.rmtree(self.pictures_folder)
            removed.append(ENROLLED_FOLDER + "/")
        return removed

    # ------------------------------------------------------------- what a run learns

    def _load_learned(self, name: str, model: str, what: str, read: Callable[[dict], Learned]) -> Learned | None:
        """``read(data)`` of the file ``name`` saved for this model (its .tflite sha256), or None: one
        warning when the file is damaged or was saved for another model."""
        path = self.folder / name
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, this device reads {STATE_VERSION}")
            saved_for = str(data["model"])
            # Another model's numbers may have another size: that is not damage, so they are not read.
            learned = read(data) if saved_for == model else None
        except DAMAGED_FILE_ERRORS as exc:
            warn(f"{path} is damaged ({exc}); starting from the shipped {what}")
            return None
        if saved_for != model:
            warn(f"{path} was learned with another model; starting from the shipped {what}")
            return None
        return learned

    def load_face_mean(self, model: str, dim: int) -> SavedFaceMean | None:
        """The saved face mean for this model (its .tflite sha256), or None (one warning when damaged
        or saved for another model)."""
        def read(data: dict) -> SavedFaceMean:
            mean = np.asarray(data["mean"], dtype=np.float32).reshape(-1)
            count = int(data["count"])
            if mean.shape != (dim,) or not np.all(np.isfinite(mean)) or count < 0:
                raise ValueError(f"a mean of {mean.size} values, this model's embedding has {dim}")
            return SavedFaceMean(mean, count, model)

        return self._load_learned(FACE_MEAN_FILE, model, "face mean", read)

    def save_face_mean(self, mean: np.ndarray, count: int, model: str) -> None:
        self._ensure()
        data = {"version": STATE_VERSION, "model": model, "count": int(count),
                "mean": [round(float(v), 7) for v in np.asarray(mean, np.float32).reshape(-1)]}
        atomic_write_text(self.folder / FACE_MEAN_FILE, json.dumps(data))

    @staticmethod
    def style_file(kind: str) -> str:
        if kind not in STYLE_FILES:
            raise ValueError(f"style statistics are kept for {', '.join(STYLE_KINDS)}, not {kind!r}")
        return STYLE_FILES[kind]

    def restore_style_statistics(self, statistics: StyleStatistics, kind: str, model: str) -> bool:
        """Continue ``statistics`` from those saved for this kind of picture (``STYLE_KINDS``) and this
        model; False (and the shipped prior) when none fit (one warning when damaged or another model's)."""
        def read(data: dict) -> bool:
            statistics.restore(data["count"], np.asarray(data["mean"], np.float64),
                               np.asarray(data["second"], np.float64))
            return True

        return bool(self._load_learned(self.style_file(kind), model, "feature statistics", read))

    def save_style_statistics(self, statistics: StyleStatistics, kind: str, model: str) -> None:
        name = self.style_file(kind)
        self._ensure()
        # Full precision: a restart continues from exactly the estimate it stopped at.
        data = {"version": STATE_VERSION, "model": model, "count": int(statistics.count),
                "mean": [float(v) for v in statistics.mean], "second": [float(v) for v in statistics.second]}
        atomic_write_text(self.folder / name, json.dumps(data))

    # ------------------------------------------------------------- enrolled characters

    @property
    def enrolled_file(self) -> Path:
        return self.folder / ENROLLED_FILE

    @property
    def pictures_folder(self) -> Path:
        return self.folder / ENROLLED_FOLDER

    def enrolled_stamp(self) -> tuple[int, int] | None:
        """Changes whenever ``enrolled.json`` is replaced (to notice an enrolment while running)."""
        try:
            stat = self.enrolled_file.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_ino

    def load_enrolled(self, strict: bool = False) -> list[EnrolledCharacter]:
        """The enrolled characters whose pictures are there. A damaged index: one warning and none
        (``strict``: a StateError, for commands that would otherwise overwrite it)."""
        path = self.enrolled_file
        if not path.is_file():
            return []
        try:
            characters = self._read_enrolled(path)
        except DAMAGED_FILE_ERRORS as exc:
            if strict:
                raise StateError(f"{path} is damaged ({exc}): fix it, or start over with "
                                 "'python -m edge enroll --reset' and enroll again") from exc
            warn(f"{path} is damaged ({exc}); running without the enrolled characters "
                 "(enroll them again, or --reset-state)")
            return []
        present = []
        for character in characters:
            kept = [p for p in character.pictures if (self.pictures_folder / character.name / p).is_file()]
            if not kept:
                warn(f"the pictures of enrolled character {character.name!r} are missing; it is left out")
                continue
            character.pictures = kept
            present.append(character)
        return present

    @staticmethod
    def _read_enrolled(path: Path) -> list[EnrolledCharacter]:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, this device reads {STATE_VERSION}")
        characters = []
        for row in data["characters"]:
            name = check_name(str(row["name"]))
            pictures = [str(p) for p in row["pictures"]]
            if any(Path(p).name != p or p.startswith(".") for p in pictures):
                raise ValueError(f"picture names of {name!r} are not plain file names")
            characters.append(EnrolledCharacter(name, pictures, [str(t) for t in row.get("traits", [])],
                                                bool(row.get("replaces", False))))
        return characters

    def save_enrolled(self, characters: list[EnrolledCharacter]) -> None:
        self._ensure()
        data = {"version": STATE_VERSION, "characters": [c.to_dict() for c in characters]}
        atomic_write_text(self.enrolled_file, json.dumps(data, indent=1, ensure_ascii=False) + "\n")

    def picture_path(self, name: str, picture: str) -> Path:
        return self.pictures_folder / name / picture


@dataclass
class _Kept:
    """One thing a run learns, as the keeper sees it: how much it has counted, and how to save it."""

    what: str  # for messages: "the face mean"
    count: Callable[[], int]
    save: Callable[[], None]
    saved_count: int


class StateKeeper:
    """Keeps what a run learns in the state folder: the adapted face mean (``edge.matcher.FaceDomain``)
    and the classifier's feature statistics (``edge.style_domain.StyleStatistics``). Each starts from
    its saved copy when that fits the model, and is saved now and then while it counts new pictures,
    and at the end."""

    def __init__(self, state: StateFolder, model: str, interval_s: float = 10.0):
        self.state = state
        self.model = model  # sha256 of the .tflite file
        self.interval_s = interval_s
        self._kept: list[_Kept] = []
        self._saved_at = time.monotonic()
        self._failed = False

    def keep_face_mean(self, domain: Any) -> int:
        """Start ``domain`` (``mean`` and ``count``) from the saved face mean, and keep it; the count
        of faces restored (0: the shipped mean)."""
        saved = self.state.load_face_mean(self.model, int(np.asarray(domain.mean).size))
        if saved is not None:
            domain.mean = saved.mean
            domain.count = saved.count
        self._keep("the face mean", lambda: domain.count,
                   lambda: self.state.save_face_mean(domain.mean, domain.count, self.model))
        return domain.count if saved is not None else 0

    def keep_style(self, statistics: StyleStatistics, kind: str) -> int:
        """Start ``statistics`` from those saved for ``kind`` (``STYLE_KINDS``), and keep them; the
        count of pictures restored (0: the shipped prior)."""
        restored = self.state.restore_style_statistics(statistics, kind, self.model)
        self._keep(f"the feature statistics learned from {kind}", lambda: statistics.count,
                   lambda: self.state.save_style_statistics(statistics, kind, self.model))
        return statistics.count if restored else 0

    def _keep(self, what: str, count: Callable[[], int], save: Callable[[], None]) -> None:
        self._kept.append(_Kept(what, count, save, count()))

    def maybe_save(self, force: bool = False) -> None:
        """Save what counted new pictures (at most every ``interval_s``; always when ``force``).
        A failed write warns once and the run goes on: the camera matters more than the state."""
        changed = [kept for kept in self._kept if kept.count() != kept.saved_count]
        if not changed or (not force and time.monotonic() - self._saved_at < self.interval_s):
            return
        for kept in changed:
            count = kept.count()
            try:
                kept.save()
            except (OSError, StateError) as exc:
                if not self._failed:
                    warn(f"cannot save {kept.what} in {self.state.folder} ({exc}); what this run learns is "
                         "kept for this run only")
                self._failed = True
                continue
            kept.saved_count = count
        self._saved_at = time.monotonic()  # a failed write is tried again after the interval, not every frame
