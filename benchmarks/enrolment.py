"""``python -m benchmarks.enrolment``: are enrolled characters recognised, and what does it cost?

    python -m benchmarks.enrolment --models heldout-models --characters headscarf,mechanic,pilot

For each style in ``--styles``: every character in ``--characters`` (which the model must not
have been trained on: train on a copy of the dataset without them) is enrolled with
``python -m edge enroll`` from ``--shots`` of its pictures in that style, chosen at random
(``--seed``); then its other pictures in the same style go through ``python -m edge DIR
--full-frame --json`` and count as matched when the enrolled character is the top answer. The
same characters drawn in the dataset's other styles are a harder test, reported beside it.
Enrolling is timed as the whole command (start-up and model load included) per picture.

Also measured: the trained characters' pictures in ``--check-style`` (the model's validation
style) without enrolled characters (the classifier ranks) and with them (the gallery ranks, as
it must to name an enrolled character).

Writes ``enrolment.json`` and ``enrolment.md`` in ``--out``. Device side only: no TensorFlow.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import machine_info
from edge.artifacts import IMAGE_SUFFIXES
from edge.artifacts import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def pictures(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def edge(args: list, state: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "edge", *[str(a) for a in args]], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, "LOOKALIKE_STATE": str(state)}, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"python -m edge {' '.join(map(str, args[:3]))} ... failed: {result.stderr[-1500:]}")
    return result


def top_answers(files: dict[str, str], models: Path, variant: str, state: Path, scratch: Path) -> dict[str, str]:
    """file name -> the top label of ``python -m edge DIR --full-frame --json``."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    for name, source in files.items():
        (folder / name).symlink_to(Path(source).resolve())
    out = folder / "results.jsonl"
    edge([folder, "--models", models, "--variant", variant, "--full-frame", "--no-window", "--quiet", "--json", out],
         state)
    answers = {}
    for line in out.read_text().splitlines():
        record = json.loads(line)
        faces = record.get("faces") or []
        answers[Path(record["source"]).name] = faces[0]["top"][0]["label"] if faces else None
    return answers


def enrol_style(style: str, args, labels: set[str], scratch: Path) -> dict:
    rng = random.Random(args.seed)
    state = scratch / f"state-{style}"
    rows, tests = [], {}
    seconds = count = 0
    for character in args.characters:
        files = pictures(args.data / style / character)
        if len(files) <= args.shots:
            raise SystemExit(f"error: {character} has {len(files)} pictures in {style}: need more than {args.shots}")
        chosen = sorted(rng.sample(files, args.shots))
        started = time.perf_counter()
        edge(["enroll", character, *chosen, "--models", args.models, "--variant", args.variant], state)
        seconds += time.perf_counter() - started
        count += len(chosen)
        for path in files:
            if path not in chosen:
                tests[f"{character}__{path.name}"] = str(path)
        rows.append({"character": character, "enrolled_from": [p.name for p in chosen],
                     "trained_on": character in labels})
    # The same characters drawn in the other styles: a harder test than the enrolled style's variants.
    other_styles = sorted(p.name for p in args.data.iterdir() if p.is_dir() and p.name != style)
    for other in other_styles:
        for character in args.characters:
            if (args.data / other / character).is_dir():
                for path in pictures(args.data / other / character):
                    tests[f"{character}__{other}__{path.name}"] = str(path)
    answers = top_answers(tests, args.models, args.variant, state, scratch)
    cross = {}
    for other in other_styles:
        mine = {k: v for k, v in answers.items() if k.split("__")[1:2] == [other]}
        hits = sum(v == k.split("__")[0] for k, v in mine.items())
        cross[other] = {"tested": len(mine), "matched": hits,
                        "matched_share": round(hits / len(mine), 4) if mine else None}
    answers = {k: v for k, v in answers.items() if k.count("__") == 1}
    for row in rows:
        mine = {k: v for k, v in answers.items() if k.startswith(row["character"] + "__")}
        wrong = collections.Counter(v for v in mine.values() if v != row["character"])
        row.update({"test_pictures": len(mine), "matched": sum(v == row["character"] for v in mine.values()),
                    "wrong_answers": dict(wrong.most_common(3))})
    matched = sum(r["matched"] for r in rows)
    tested = sum(r["test_pictures"] for r in rows)
    result = {"style": style, "characters": rows, "matched": matched, "tested": tested,
              "matched_share": round(matched / tested, 4) if tested else None,
              "seconds_per_picture": round(seconds / count, 3), "other_styles": cross, "state": state}
    return result


def trained_check(args, labels: set[str], states: list[Path], scratch: Path) -> dict | None:
    if not args.check_style:
        return None
    folder = args.data / args.check_style
    files = {}
    for character in sorted(labels):
        if (folder / character).is_dir():
            for path in pictures(folder / character):
                files[f"{character}__{path.name}"] = str(path)
    empty = scratch / "state-empty"

    def share(answers: dict[str, str]) -> float:
        return round(sum(v == k.split("__")[0] for k, v in answers.items()) / len(answers), 4)

    result = {"style": args.check_style, "pictures": len(files),
              "top1_without_enrolled": share(top_answers(files, args.models, args.variant, empty, scratch))}
    result["top1_with_enrolled"] = share(top_answers(files, args.models, args.variant, states[0], scratch))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.enrolment", description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="a model trained without --characters")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "emoji-characters")
    parser.add_argument("--styles", default="twemoji,noto")
    parser.add_argument("--characters", required=True, help="comma-separated held-out characters")
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-style", default="openmoji", help="trained characters checked in this style ('' skips)")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    args.characters = [c.strip() for c in args.characters.split(",") if c.strip()]
    labels = set((args.models / "labels.txt").read_text(encoding="utf-8").split())
    held_in = [c for c in args.characters if c in labels]
    if held_in:
        print(f"warning: the model was trained on {', '.join(held_in)}: their figures are not held out", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        styles = [enrol_style(s, args, labels, scratch) for s in args.styles.split(",") if s]
        check = trained_check(args, labels, [s["state"] for s in styles], scratch)
    for style in styles:
        del style["state"]
    result = {"machine": machine_info(), "models": str(args.models), "variant": args.variant, "shots": args.shots,
              "seed": args.seed, "styles": styles, "trained_characters": check}
    atomic_write_text(args.out / "enrolment.json", json.dumps(result, indent=1) + "\n")
    lines = ["# Enrolled characters (`python -m edge enroll`)", "",
             f"Model `{args.models}` ({args.variant}), {args.shots} enrolment pictures per character (seed {args.seed}); "
             "the other pictures of the same style through `python -m edge DIR --full-frame`.", "",
             "| style | character | test pictures | matched | most common wrong answers |", "|---|---|---|---|---|"]
    for style in styles:
        for row in style["characters"]:
            wrong = ", ".join(f"{k} {v}" for k, v in row["wrong_answers"].items()) or "-"
            held = "" if not row["trained_on"] else " (trained on!)"
            lines.append(f"| {style['style']} | {row['character']}{held} | {row['test_pictures']} | "
                         f"{row['matched']} | {wrong} |")
        lines.append(f"| **{style['style']}** | **all** | {style['tested']} | "
                     f"**{100 * style['matched_share']:.1f}%** | {style['seconds_per_picture']:.2f} s per enrolled "
                     "picture (whole command) |")
        for other, row in style["other_styles"].items():
            lines.append(f"| {style['style']} -> {other} | all, drawn in {other} | {row['tested']} | "
                         f"{100 * row['matched_share']:.1f}% | enrolled in {style['style']}, shown in {other} |")
    if check:
        lines += ["", f"Trained characters, {check['pictures']} {check['style']} pictures: top-1 "
                  f"{100 * check['top1_without_enrolled']:.1f}% without enrolled characters (classifier), "
                  f"{100 * check['top1_with_enrolled']:.1f}% with them (gallery)."]
    atomic_write_text(args.out / "enrolment.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
