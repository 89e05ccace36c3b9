"""What the device learns and keeps between runs: the adapted face mean and the enrolled characters.

One folder (``--state DIR``, else ``$LOOKALIKE_STATE``, else ``$XDG_STATE_HOME/cartoon-lookalike``,
else ``~/.local/state/cartoon-lookalike``) holds:

    face_mean.json            the face mean adapted to the people this camera saw, and for which model
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
from typing import Any

import numpy as np

from edge.artifacts import atomic_write_text

STATE_VERSION = 1
FACE_MEAN_FILE = "face_mean.json"
ENROLLED_FILE = "enrolled.json"
ENROLLED_FOLDER = "enrolled"
STATE_FOLDER_NAME = "cartoon-lookalike"
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
        for name in (FACE_MEAN_FILE, ENROLLED_FILE, ENROLLED_FOLDER):
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
        path = self.folder / FACE_MEAN_FILE
        if path.is_file():
            path.unlink()
            removed.append(FACE_MEAN_FILE)
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

    # ------------------------------------------------------------- face mean

    def load_face_mean(self, model: str, dim: int) -> SavedFaceMean | None:
        """The saved face mean for this model (its .tflite sha256), or None (one warning when damaged
        or saved for another model)."""
        path = self.folder / FACE_MEAN_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, this device reads {STATE_VERSION}")
            mean = np.asarray(data["mean"], dtype=np.float32).reshape(-1)
            count = int(data["count"])
            saved_for = str(data["model"])
            if mean.shape != (dim,) or not np.all(np.isfinite(mean)) or count < 0:
                raise ValueError(f"a mean of {mean.size} values, this model's embedding has {dim}")
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            warn(f"{path} is damaged ({exc}); starting from the shipped face mean")
            return None
        if saved_for != model:
            warn(f"{path} was learned with another model; starting from the shipped face mean")
            return None
        return SavedFaceMean(mean, count, saved_for)

    def save_face_mean(self, mean: np.ndarray, count: int, model: str) -> None:
        self._ensure()
        data = {"version": STATE_VERSION, "model": model, "count": int(count),
                "mean": [round(float(v), 7) for v in np.asarray(mean, np.float32).reshape(-1)]}
        atomic_write_text(self.folder / FACE_MEAN_FILE, json.dumps(data))

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
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
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


class FaceMeanKeeper:
    """Saves an adapting face mean (``edge.matcher.FaceDomain``: ``mean`` and ``count``) to the state
    folder now and then and at the end, and starts it from the saved one when that fits the model."""

    def __init__(self, state: StateFolder, domain: Any, model: str, interval_s: float = 10.0):
        self.state = state
        self.domain = domain
        self.model = model
        self.interval_s = interval_s
        self.restored = 0
        saved = state.load_face_mean(model, int(np.asarray(domain.mean).size))
        if saved is not None:
            domain.mean = saved.mean
            domain.count = saved.count
            self.restored = saved.count
        self._saved_count = domain.count
        self._saved_at = time.monotonic()
        self._failed = False

    def maybe_save(self, force: bool = False) -> None:
        """Save when new faces were counted (at most every ``interval_s``; always when ``force``).
        A failed write warns once and the run goes on: the camera matters more than the state."""
        if self.domain.count == self._saved_count:
            return
        if not force and time.monotonic() - self._saved_at < self.interval_s:
            return
        try:
            self.state.save_face_mean(self.domain.mean, self.domain.count, self.model)
        except (OSError, StateError) as exc:
            if not self._failed:
                warn(f"cannot save the face mean in {self.state.folder} ({exc}); it is kept for this run only")
            self._failed = True
            return
        self._saved_count = self.domain.count
        self._saved_at = time.monotonic()
