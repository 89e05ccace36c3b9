"""``python -m edge``: the live camera lookalike, or a lookalike card for a photo.

    python -m edge                                   # webcam 0, window, Esc or q to quit
    python -m edge --source picamera                 # Raspberry Pi camera module
    python -m edge clip.mp4 --no-window --output annotated.mp4 --json results.jsonl
    python -m edge photo.jpg --card card.png --no-window
    python -m edge --serve --source picamera         # live view in a browser: http://127.0.0.1:8000/
    python -m edge enroll NAME pictures...           # add a character of your own (see edge/enroll.py)
    python -m edge service --source picamera         # print a systemd unit that runs --serve at boot
    python -m edge detector --fetch                  # cache the YuNet face detector (small faces), once
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge.argtypes import decimal, whole
from edge.command import EXIT_INTERRUPTED, run_command
from edge.faces import HAAR_DETECT_WIDTH, YUNET_DETECT_WIDTH, DetectorError
from edge.live import NoFaceError, RunOptions, WindowError, run
from edge.matcher import METHODS
from edge.outputs import OutputError
from edge.pipeline import PipelineOptions
from edge.runtime import VARIANTS, ModelError
from edge.serve import ServeError, ServeOptions
from edge.sources import SourceError
from edge.state import StateError
from edge.tracking import TrackerSettings

USER_ERRORS = (ModelError, SourceError, DetectorError, OutputError, WindowError, NoFaceError, ServeError, StateError)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"camera size {text} is too small")
    return width, height


_positive_int = whole(1)


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, but not the meaningless ones (None, off switches)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge",
        description="Which cartoon character does a face look like? Live camera, video, photos.",
        formatter_class=_DefaultsShown,
    )
    parser.add_argument("input", nargs="?", default=None,
                        help="a photo, video file, folder of images or camera (same as --source)")
    parser.add_argument("--source", default=None,
                        help="camera index (0) or device (/dev/video0), 'picamera', video file, image or folder "
                             "[default: 0]")
    parser.add_argument("--astronaut", action="store_true",
                        help="use scikit-image's astronaut photo (needs scikit-image)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with the converted model files")
    parser.add_argument("--variant", choices=VARIANTS, default="int8", help="which converted model to run")
    parser.add_argument("--threads", type=_positive_int, default=1, help="interpreter threads")
    parser.add_argument("--detector", default="auto",
                        help="face detector: auto (YuNet when 'python -m edge detector --fetch' has cached it or "
                             "$LOOKALIKE_DETECTOR names it, else OpenCV's Haar cascade), haar, a YuNet .onnx file "
                             "or a Haar .xml")
    parser.add_argument("--full-frame", action="store_true", help="classify the whole picture, no face detection")
    parser.add_argument("--match", choices=METHODS, default="auto",
                        help="rank by the classifier or the gallery; auto: the gallery once it is calibrated, "
                             "but the classifier for --full-frame (drawings) unless characters are enrolled")
    parser.add_argument("--no-traits", action="store_true",
                        help="match by the face's embedding alone, ignoring the traits the model reads "
                             "(glasses, hair, beard ...)")
    parser.add_argument("--fixed-face-mean", action="store_true",
                        help="keep the shipped face mean instead of adapting it to the people seen")
    parser.add_argument("--fixed-statistics", action="store_true",
                        help="keep the classifier's shipped feature statistics (those of the training styles) "
                             "instead of learning those of the pictures or faces seen")
    parser.add_argument("--no-window", action="store_true", help="headless: no window (use --output, --json, --card)")
    parser.add_argument("--output", type=Path, help="annotated video (.mp4, .avi), or image for a single photo")
    parser.add_argument("--json", type=Path, dest="json_path", help="results, one JSON object per frame or picture")
    parser.add_argument("--card", type=Path,
                        help="lookalike card (.png) of the last face seen; in the window the s key saves it")
    parser.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    parser.add_argument("--camera-size", type=_size, default="640x480", help="requested camera resolution")
    tuning = parser.add_argument_group("speed and stability")
    defaults = PipelineOptions()
    tuning.add_argument("--detect-every", type=_positive_int, default=defaults.detect_every,
                        help="run face detection every N frames (faces are tracked in between)")
    tuning.add_argument("--detect-width", type=whole(64), default=None,
                        help="width the frame is shrunk to for detection and tracking [default: the detector's: "
                             f"YuNet {YUNET_DETECT_WIDTH}, Haar {HAAR_DETECT_WIDTH}]")
    tuning.add_argument("--classify-every", type=_positive_int, default=defaults.classify_every,
                        help="re-classify each face every N frames (sooner when it moves)")
    tuning.add_argument("--max-faces", type=_positive_int, default=TrackerSettings().max_faces,
                        help="faces followed at once")
    tuning.add_argument("--smoothing", type=float, default=defaults.smoothing,
                        help="weight of the newest scores in each face's moving average (1: no smoothing)")
    tuning.add_argument("--top", type=_positive_int, default=defaults.top_k, help="characters listed per face")
    tuning.add_argument("--no-mirror", action="store_true",
                        help="classify each crop once instead of averaging it with its mirror image "
                             "(faster; the answer then depends on which way the face is turned)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    serve = parser.add_argument_group("live view in a browser (headless devices)")
    serve.add_argument("--serve", action="store_true",
                       help="serve the live view at http://HOST:PORT/ instead of opening a window")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on; anything but this machine needs --token (0.0.0.0: every network)")
    serve.add_argument("--port", type=whole(0, 65535), default=8000, help="port to listen on")
    serve.add_argument("--token", default=None,
                       help="secret viewers add as ?token=... [default: $LOOKALIKE_TOKEN]")
    serve.add_argument("--stream-fps", type=decimal(0.5, 60), default=ServeOptions().stream_fps,
                       help="frames per second sent to viewers at most (the camera loop may run faster)")
    serve.add_argument("--camera-retries", type=whole(0), default=30,
                       help="with --serve, how often a missing or lost camera is reopened (2 s apart) before giving up")
    serve.add_argument("--unpaced", action="store_true",
                       help="with --serve and a video file: process it as fast as possible, once (for measuring)")
    state = parser.add_argument_group("what the device keeps between runs")
    state.add_argument("--state", type=Path, default=None,
                       help="folder for the learned face mean and feature statistics, and the enrolled characters "
                            "[default: $LOOKALIKE_STATE, else ~/.local/state/cartoon-lookalike]")
    state.add_argument("--reset-state", action="store_true",
                       help="forget the learned face mean and feature statistics, and the enrolled characters, "
                            "before starting")
    return parser


def options_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunOptions:
    if args.input is not None and args.source is not None:
        parser.error("give the input either as an argument or with --source, not both")
    if args.astronaut and (args.input is not None or args.source is not None):
        parser.error("--astronaut replaces the input: drop the photo or --source")
    if args.serve and args.astronaut:
        parser.error("--serve shows a camera or a video: drop --astronaut")
    if args.serve and args.card:
        parser.error("--serve runs until stopped: make a card from a photo instead (drop --card)")
    try:
        pipeline = PipelineOptions(
            detect_every=args.detect_every,
            classify_every=args.classify_every,
            detect_width=args.detect_width,
            smoothing=args.smoothing,
            full_frame=args.full_frame,
            mirror=not args.no_mirror,
            top_k=args.top,
            tracker=TrackerSettings(max_faces=args.max_faces),
        )
    except ValueError as exc:
        parser.error(str(exc))
    return RunOptions(
        source=args.input if args.input is not None else (args.source if args.source is not None else "0"),
        models=args.models,
        variant=args.variant,
        threads=args.threads,
        detector=args.detector,
        show_window=not args.no_window and not args.serve,
        output=args.output,
        json_path=args.json_path,
        card=args.card,
        astronaut=args.astronaut,
        match=args.match,
        adapt_faces=not args.fixed_face_mean,
        adapt_style=not args.fixed_statistics,
        use_traits=not args.no_traits,
        max_frames=args.max_frames,
        camera_size=args.camera_size,
        quiet=args.quiet,
        pipeline=pipeline,
        serve=ServeOptions(args.host, args.port, args.token or os.environ.get("LOOKALIKE_TOKEN") or None,
                           args.stream_fps) if args.serve else None,
        state=args.state,
        reset_state=args.reset_state,
        camera_retries=args.camera_retries,
        paced=not args.unpaced,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["enroll"]:
        from edge.enroll import main as enroll_main
        return enroll_main(argv[1:])
    if argv[:1] == ["service"]:
        from edge.service import main as service_main
        return service_main(argv[1:])
    if argv[:1] == ["detector"]:
        from edge.detector_store import main as detector_main
        return detector_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from_args(args, parser)

    def body() -> int:
        summary = run(options)
        if not options.quiet:
            print(summary.describe(), file=sys.stderr)
            for path in summary.written:
                print(f"wrote {path}", file=sys.stderr)
        return EXIT_INTERRUPTED if summary.stopped_by == "interrupt" else 0

    return run_command(body, USER_ERRORS, "stopped")
