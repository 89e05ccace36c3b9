"""``python -m edge enroll``: add a character of your own to the device's gallery, no retraining.

    python -m edge enroll "Aunt Jo" jo1.png jo2.png jo3.png     # a few pictures of the character
    python -m edge enroll Robot drawings/robot/                  # or a folder of them
    python -m edge enroll --list
    python -m edge enroll --remove "Aunt Jo"

The pictures are copied into the state folder (``edge.state``) and embedded by the model at every
start, so the character takes part in the match from the next run, or from the next frames of a
run that is going on (``--serve`` and the camera loop look for changes every second).
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

from edge.command import run_command
from edge.contract import read_rgb
from edge.enrolment import embed_picture, store_picture
from edge.matcher import unit_rows
from edge.ranking import top_k_indices
from edge.runtime import VARIANTS, LookalikeModel, ModelError, model_path
from edge.artifacts import IMAGE_SUFFIXES
from edge.state import EnrolledCharacter, StateError, StateFolder, check_name, warn
from edge.traits import CHARACTER_TRAITS


class EnrolError(RuntimeError):
    """Enrolment cannot go ahead; the message says why and what to do."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge enroll",
                                     description="Add a character of your own (a few pictures) to the device's gallery.")
    parser.add_argument("name", nargs="?", help="the character's name, as it will be shown")
    parser.add_argument("pictures", nargs="*", type=Path, help="pictures of the character, or folders of them")
    parser.add_argument("--list", action="store_true", help="list the enrolled characters")
    parser.add_argument("--remove", metavar="NAME", help="remove an enrolled character")
    parser.add_argument("--reset", action="store_true", help="remove every enrolled character")
    parser.add_argument("--replace", action="store_true",
                        help="allow a name that is already enrolled or trained (yours is shown instead)")
    parser.add_argument("--traits", default="",
                        help=f"the character's traits, space-separated, from: {' '.join(CHARACTER_TRAITS)}")
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with the converted model files")
    parser.add_argument("--variant", choices=VARIANTS, default="int8", help="the model the device runs")
    parser.add_argument("--state", type=Path, default=None,
                        help="state folder [default: $LOOKALIKE_STATE, else ~/.local/state/cartoon-lookalike]")
    return parser


def picture_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise EnrolError(f"folder {path} has no pictures ({', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise EnrolError(f"{path} does not exist")
    return files


def list_enrolled(state: StateFolder) -> int:
    characters = state.load_enrolled()
    if not characters:
        print(f"no characters enrolled (state folder {state.folder})")
        return 0
    for character in characters:
        traits = f"  traits: {' '.join(character.traits)}" if character.traits else ""
        replaces = "  (replaces the trained one)" if character.replaces else ""
        print(f"{character.name}: {len(character.pictures)} pictures{traits}{replaces}")
    print(f"state folder: {state.folder}")
    return 0


def remove(state: StateFolder, name: str) -> int:
    state.check_writable()
    characters = state.load_enrolled(strict=True)
    kept = [c for c in characters if c.name != name]
    if len(kept) == len(characters):
        names = ", ".join(c.name for c in characters) or "none"
        raise EnrolError(f"{name!r} is not enrolled (enrolled: {names})")
    state.save_enrolled(kept)  # the index first: a crash now leaves only unused pictures
    shutil.rmtree(state.pictures_folder / name, ignore_errors=True)
    print(f"removed {name}")
    return 0


def enroll(args: argparse.Namespace, state: StateFolder) -> int:
    try:
        name = check_name(args.name)
    except ValueError as exc:
        raise EnrolError(str(exc)) from None
    traits = args.traits.replace(",", " ").split()
    unknown = sorted(set(traits) - set(CHARACTER_TRAITS))
    if unknown:
        raise EnrolError(f"unknown trait {', '.join(unknown)}: use {' '.join(CHARACTER_TRAITS)}")
    if not args.pictures:
        raise EnrolError(f"give pictures of {name}: python -m edge enroll {name!r} picture1.png picture2.png ...")
    files = picture_files(args.pictures)
    state.check_writable()
    characters = state.load_enrolled(strict=True)
    model = LookalikeModel(model_path(args.models, args.variant), num_threads=2)
    if name in model.labels and not args.replace:
        raise EnrolError(f"{name!r} is a trained character: pass --replace to show yours instead, or pick another name")
    if any(c.name == name for c in characters) and not args.replace:
        raise EnrolError(f"{name!r} is already enrolled: pass --replace to enroll it again, or --remove it first")

    started = time.perf_counter()
    images, embeddings, unreadable = [], [], []
    for path in files:
        try:
            rgb = read_rgb(str(path))
            embeddings.append(embed_picture(model, rgb))
        except (ValueError, OSError) as exc:
            unreadable.append(f"skipped {path}: {exc}")
            continue
        images.append((path, rgb))
    if not images:
        raise EnrolError(f"none of the {len(files)} pictures could be read as an image "
                         f"({files[0].name} first): pass JPEG or PNG pictures")
    for line in unreadable:
        warn(line)
    seconds = time.perf_counter() - started

    folder = state.pictures_folder / name
    stored = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for index, (path, rgb) in enumerate(images):
            tag = hashlib.sha256(rgb.tobytes()).hexdigest()[:10]
            file = f"{index + 1:02d}-{tag}.png"
            store_picture(rgb, folder / file)
            stored.append(file)
        others = [c for c in characters if c.name != name]
        # The index is replaced last, in one step: until then the earlier state is what every reader sees.
        state.save_enrolled(others + [EnrolledCharacter(name, stored, traits, name in model.labels)])
    except OSError as exc:
        raise StateError(f"cannot write into {state.folder} ({exc.strerror or exc}): nothing was enrolled") from exc
    for old in folder.iterdir():  # pictures of an earlier enrolment under this name
        if old.name not in stored:
            old.unlink(missing_ok=True)

    print(f"enrolled {name} from {len(stored)} picture{'s' if len(stored) != 1 else ''} "
          f"({seconds / len(images):.2f} s each) in {state.folder}")
    print(_closest(model, np.mean(embeddings, axis=0), name))
    return 0


def _closest(model: LookalikeModel, row: np.ndarray, name: str) -> str:
    """Which trained characters the new one is closest to (a hint when two look alike)."""
    from edge.live import RunOptions, make_matcher  # the gallery as the device builds it

    matcher, _ = make_matcher(model, RunOptions(match="auto"))
    gallery = matcher.gallery
    if gallery is None:
        return "this model has no gallery: enrolled characters are matched only by models that have one"
    rows = gallery.embeddings
    if gallery.character_mean is not None:
        row = row - gallery.character_mean
    query = unit_rows(row[None, :])[0]
    similarity = rows @ query
    order = top_k_indices(similarity, 3)
    near = ", ".join(f"{gallery.labels[i]} {similarity[i]:.2f}" for i in order if gallery.labels[i] != name)
    return f"closest trained characters (cosine similarity): {near}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    state = StateFolder(args.state)

    def body() -> int:
        if args.list:
            if args.name is not None or args.remove:
                parser.error("--list takes no name")
            return list_enrolled(state)
        if args.reset:
            if args.name is not None or args.remove:
                parser.error("--reset takes no name")
            state.check_writable()
            removed = state.reset_enrolled()
            print("removed every enrolled character" if removed else "no characters were enrolled")
            return 0
        if args.remove:
            if args.name is not None or args.pictures:
                parser.error("--remove NAME takes no pictures")
            return remove(state, args.remove)
        if args.name is None:
            parser.error("give a NAME and pictures, or --list, or --remove NAME")
        return enroll(args, state)

    return run_command(body, (EnrolError, StateError, ModelError), "stopped: nothing was enrolled")
