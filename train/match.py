"""Tune how much each visible trait weighs in the match, on the validation split of labelled faces.

``python -m train.match --faces DIR`` runs the validation split (``edge.face_traits.SPLIT_RULE``)
of a labelled face folder through the converted device model (int8 by default) once, then searches
the weight of each term of ``edge.traits.TERMS`` (coordinate search over a small grid, three
passes) for the best ``benchmarks.labelled.objective``: people with a trait should get characters
with it, the picture shown should match their gender presentation, and no character may take over.
The test split is never looked at here.

It writes the weights to ``data/face-traits/match.json`` (shipped; training copies them into
``gallery.npz``) and into ``models/gallery.npz`` at once, so the device uses them without retraining.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path


GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
PASSES = 3


def search(run, gallery, characters, labels, log) -> tuple[dict[str, float], dict]:
    from benchmarks import labelled
    from edge.traits import TERM_NAMES

    weights = {name: 1.0 for name in TERM_NAMES}

    def value(w):
        return labelled.objective(labelled.evaluate(run, gallery, labelled.term_weights(w), characters, labels))

    best = value(weights)
    for number in range(PASSES):
        changed = False
        for name in TERM_NAMES:
            for candidate in GRID:
                trial = dict(weights, **{name: candidate})
                score = value(trial)
                if score > best + 1e-9:
                    best, weights, changed = score, trial, True
        log(f"pass {number + 1}: objective {best:.3f}, weights " + ", ".join(f"{k} {v:g}" for k, v in weights.items()))
        if not changed:
            break
    return weights, labelled.evaluate(run, gallery, labelled.term_weights(weights), characters, labels)


def update_gallery(gallery_path: Path, weights: dict[str, float]) -> None:
    """Rewrite gallery.npz with the new weights, atomically, and the models folder's manifest with it."""
    import numpy as np

    from benchmarks import labelled
    from convert.files import write_manifest
    from edge.artifacts import MANIFEST_FILE, atomic_write_bytes
    from edge.matcher import read_gallery_file
    from edge.traits import TERM_NAMES

    arrays = read_gallery_file(gallery_path)  # the device's reader: a damaged file is one ModelError line
    arrays["trait_terms"] = np.array(TERM_NAMES)
    arrays["trait_weights"] = labelled.term_weights(weights)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(gallery_path, buffer.getvalue())
    if (gallery_path.parent / MANIFEST_FILE).is_file():
        write_manifest(gallery_path.parent)  # its sha256 of gallery.npz would be stale


def summary_line(result: dict) -> str:
    s, v, g = result["sense"], result["variety"], result["gender"]
    parts = [f"{t} {s[t]['with']:.0%}/{s[t]['without']:.0%}" for t in s if s[t]["with"] is not None]
    gender_text = f"{g['match']:.0%}" if g["match"] is not None else "n/a"
    return (f"with/without top-3: {', '.join(parts)}; most frequent {v['most_frequent']} "
            f"{v['most_frequent_share']:.1%}, {v['distinct']} characters; gender {gender_text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.match", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     description="Tune the trait weights of the match on labelled faces' validation split.")
    parser.add_argument("--faces", required=True, help="labelled face folder (CelebA's format)")
    parser.add_argument("--models", default="models", help="folder with the converted model and gallery.npz")
    parser.add_argument("--variant", default="int8", help="which converted model to run (the device's)")
    parser.add_argument("--detector", default="auto",
                        help="as the device's --detector: auto (YuNet when cached, else Haar), haar, or a file")
    parser.add_argument("--out", default=None, help="where the weights are written [default: data/face-traits/match.json]")
    parser.add_argument("--max-faces", type=int, default=None, help="at most this many validation faces (quick runs)")
    args = parser.parse_args(argv)
    from edge.command import refuse, run_command

    if args.max_faces is not None and args.max_faces < 1:
        return refuse("--max-faces must be at least 1")
    started = time.time()
    from benchmarks import labelled
    from convert.files import check_writable
    from edge.artifacts import atomic_write_json
    from edge.face_traits import SPLIT_RULE, FaceTraitsError, LabelledFaces, read_labelled_faces
    from edge.faces import DetectorError, make_face_detector
    from edge.live import RunOptions, make_matcher
    from edge.runtime import LookalikeModel, ModelError, model_path
    from edge.traits import TERM_NAMES, TraitsError
    from train.traits import MATCH_FILE

    def body() -> None:
        out = Path(args.out) if args.out else MATCH_FILE
        gallery_path = Path(args.models) / "gallery.npz"
        for path in (out, gallery_path):  # both are written at the end: fail now, not after the run
            check_writable(path)
        faces = read_labelled_faces(args.faces).subset("val")
        if args.max_faces is not None:
            faces = LabelledFaces(faces.folder, faces.files[: args.max_faces], faces.labels[: args.max_faces])
        model = LookalikeModel(model_path(args.models, args.variant))
        matcher = make_matcher(model, RunOptions(models=Path(args.models), variant=args.variant))[0]
        detector = make_face_detector(args.detector)
        characters = labelled.character_table(Path(args.models), model.labels)
        print(f"validation: {len(faces)} labelled faces ({SPLIT_RULE}) through {model.path.name} ...", flush=True)
        run = labelled.run_faces(model, matcher, faces, detector)
        gallery = matcher.gallery
        before = labelled.evaluate(run, gallery, None, characters, model.labels)
        print(f"without traits: {summary_line(before)}", flush=True)
        weights, after = search(run, gallery, characters, model.labels, lambda m: print(m, flush=True))
        print(f"tuned: {summary_line(after)}", flush=True)
        data = {"format_version": 1, "weights": weights, "terms": list(TERM_NAMES),
                "tuned_on": {"faces": str(args.faces), "split": "val", "rule": SPLIT_RULE, "found": len(run.files),
                             "missed": len(run.missed), "model": model.path.name, "detector": detector.name},
                "validation": {"without_traits": before, "tuned": after}, "seconds": round(time.time() - started, 1)}
        # The device's copy first: if the shipped file then failed, the models folder is still consistent.
        update_gallery(gallery_path, weights)
        atomic_write_json(out, data)
        print(f"wrote {out} and the weights into {gallery_path} [{time.time() - started:.0f} s]")

    return run_command(body, (FaceTraitsError, ModelError, DetectorError, TraitsError, ValueError),
                       "interrupted: nothing was written", cannot_write="cannot write the weights")


if __name__ == "__main__":
    sys.exit(main())
