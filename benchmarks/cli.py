"""``python -m benchmarks``: accuracy and latency of every model variant, as Markdown, JSON and plots.

    python -m benchmarks --models models --out reports
    python -m benchmarks --reference ../shared/anchors/tf2_mobilenet_v2_1.0_224_ptq.tflite
    python -m benchmarks --compare reports/benchmark.json     # mark what got worse
    python -m benchmarks --data data/emoji-characters/openmoji --max-images 200 --runs 50
    python -m benchmarks --faces-only --faces ../shared/faces  # real faces only, in seconds
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks import BenchmarkError
from benchmarks.faces import DEFAULT_VARIANT
from benchmarks.plots import FACES_FIGURES, FIGURES, write_plots
from benchmarks.progress import say
from benchmarks.report import faces_table, main_table, write_json, write_markdown
from benchmarks.run import BenchmarkConfig, run_benchmark
from edge.command import run_command
from edge.runtime import VARIANTS


FIGURE_FILES = tuple(filename for filename, _, _ in FIGURES)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _thread_list(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1 or 1,4, got {text!r}")
    return counts


class _DefaultsShown(argparse.HelpFormatter):
    """Show real defaults; options without one say theirs in [brackets] in their help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Accuracy and latency of the Keras model and every TFLite variant, side by side.",
        formatter_class=_DefaultsShown,
    )
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with the converted models")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="folder for benchmark.md, .json and plots")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of <class name>/ image folders [default: the validation split in the model card]")
    parser.add_argument("--reference", type=Path, default=None,
                        help="another TFLite file to time beside ours (latency only), e.g. Google's int8 MobileNetV2")
    parser.add_argument("--compare", type=Path, default=None, metavar="OLD.json",
                        help="an earlier benchmark.json: mark every number that got worse beyond noise")
    parser.add_argument("--runs", type=_positive_int, default=200, help="timed single-image runs per model and thread count")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs per model before timing")
    parser.add_argument("--threads", type=_thread_list, default=None,
                        help="thread counts to time, comma-separated [default: 1 and all cores]")
    parser.add_argument("--max-images", type=_positive_int, default=None,
                        help="measure accuracy on an evenly spaced subset of this many images")
    parser.add_argument("--video", type=Path, default=None,
                        help="recorded video for the camera pipeline [default: edge's 640x480 test video]")
    parser.add_argument("--pipeline-frames", type=_positive_int, default=150, help="frames of the video to run")
    parser.add_argument("--detector", default="auto",
                        help="face detector for the pipeline and the real faces, as edge's --detector: auto (YuNet "
                             "when cached, else Haar), haar, a YuNet .onnx or a Haar .xml")
    parser.add_argument("--face", type=Path, default=None,
                        help="photo the test video is made from when there is no --video [default: scikit-image's astronaut]")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the camera pipeline")
    parser.add_argument("--faces", type=Path, default=None, metavar="DIR",
                        help="folder of face photos for the real-faces section, every detected face one sample "
                             "[default: scikit-image's 100 LFW faces and astronaut]")
    parser.add_argument("--labelled-faces", type=Path, default=None, metavar="DIR",
                        help="faces labelled in CelebA's format (list_attr_celeba.txt): the trait head's AUC, the "
                             "sense of the answers per trait, variety, stability and the gender of the picture "
                             "shown, on the test split; a --faces folder in this format is taken as this")
    parser.add_argument("--max-labelled", type=_positive_int, default=None,
                        help="at most this many labelled test faces")
    parser.add_argument("--faces-only", action="store_true",
                        help="measure the real faces only (no accuracy, latency or pipeline): seconds, not minutes")
    parser.add_argument("--variant", choices=VARIANTS, default=DEFAULT_VARIANT, help="the model the real faces run through")
    parser.add_argument("--face-traits", type=Path, default=None, metavar="FILE",
                        help="the people's visible traits, photo,x,y,traits (see edge/traits.py), for the sense "
                             "measurement [default: traits.csv in the --faces folder, when there is one]")
    parser.add_argument("--character-traits", type=Path, default=None, metavar="FILE",
                        help="the characters' traits, character,traits [default: character_traits.csv beside the models]")
    parser.add_argument("--no-plots", action="store_true", help="skip the Matplotlib figures")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def labelled_folder(folder: Path | None) -> bool:
    from edge.face_traits import is_labelled_folder

    return folder is not None and is_labelled_folder(folder)


def config_from_args(args: argparse.Namespace, argv: list[str]) -> BenchmarkConfig:
    return BenchmarkConfig(
        models_dir=args.models,
        out_dir=args.out,
        data_dir=args.data,
        reference=args.reference,
        compare=args.compare,
        video=args.video,
        runs=args.runs,
        warmup=args.warmup,
        threads=args.threads,
        max_images=args.max_images,
        pipeline=not args.no_pipeline,
        pipeline_frames=args.pipeline_frames,
        detector=args.detector,
        face=args.face,
        faces=None if labelled_folder(args.faces) else args.faces,
        labelled_faces=args.labelled_faces or (args.faces if labelled_folder(args.faces) else None),
        max_labelled=args.max_labelled,
        faces_only=args.faces_only,
        faces_variant=args.variant,
        face_traits=args.face_traits,
        character_traits=args.character_traits,
        plots=not args.no_plots,
        show_progress=not args.quiet,
        command=shlex.join(["python", "-m", "benchmarks"] + argv),
    )


def write_reports(report: dict, out_dir: Path, plots: bool) -> list[Path]:
    """Plots first (their notes go into the text), then Markdown, then JSON; each one atomically."""
    if plots:
        faces_only = report["settings"].get("faces_only", False)
        written, notes = write_plots(report, out_dir, FACES_FIGURES if faces_only else FIGURES)
        report["plots"] = written
        report["notes"] += notes
    else:
        report["plots"] = []
        report["notes"].append("plots skipped (--no-plots)")
    paths = [out_dir / p["file"] for p in report["plots"]]
    paths.append(write_markdown(report, out_dir))
    paths.append(write_json(report, out_dir))
    # A figure an earlier run drew but this one could not would sit beside a report it does not match.
    for filename in FIGURE_FILES:
        if out_dir / filename not in paths:
            (out_dir / filename).unlink(missing_ok=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    config = config_from_args(args, argv)

    def body() -> None:
        report = run_benchmark(config)
        paths = write_reports(report, config.out_dir, config.plots)
        print("\n".join(faces_table(report) if config.faces_only else main_table(report)))
        regressions = (report.get("comparison") or {}).get("regressions") or []
        if regressions:
            say(f"{len(regressions)} number(s) got worse than {config.compare} beyond noise (see benchmark.md)")
        say("wrote " + ", ".join(str(p) for p in paths))

    return run_command(body, (BenchmarkError,), f"\nbenchmark: interrupted; the reports in {config.out_dir} are unchanged",
                       prefix="benchmark", error_code=2)
