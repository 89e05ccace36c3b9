"""python -m convert --models models: Keras model -> four TFLite variants, each checked against Keras."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

# Before TensorFlow is imported anywhere: keep its C++ info lines off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from convert import ConvertError  # noqa: E402
from convert.export import ACTIVATION_RANGES, FULL_INTEGER, Int8Recipe  # noqa: E402
from convert.pipeline import ConvertConfig, run  # noqa: E402
from convert.verify import DEFAULT_MIN_AGREEMENT, FLOAT16_MIN_AGREEMENT, FLOAT_MIN_AGREEMENT  # noqa: E402
from edge.argtypes import whole  # noqa: E402
from edge.command import run_command  # noqa: E402
from edge.runtime import VARIANTS  # noqa: E402

EXIT_FLAGGED = 3


def parse_variants(text: str) -> tuple[str, ...]:
    variants = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {','.join(VARIANTS)}")
    return tuple(v for v in VARIANTS if v in variants)  # a fixed order, whatever the user typed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m convert",
        description="Convert models/lookalike.keras to TFLite variants and check each against Keras "
        "on the validation images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder make train wrote into")
    parser.add_argument("--variants", type=parse_variants, default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--rep-size", type=whole(1), default=300, help="training images (class-balanced) that calibrate the int8 variant")
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=DEFAULT_MIN_AGREEMENT,
        help=f"top-1 agreement with Keras below which the int8 and dynamic variants are flagged "
        f"(float32 is flagged below {FLOAT_MIN_AGREEMENT}, float16 below {FLOAT16_MIN_AGREEMENT})",
    )
    parser.add_argument(
        "--int8-mode",
        choices=("mixed", "full"),
        default="mixed",
        help="mixed: integer backbone with uint8 input, the layers of --int8-float-layers and the head "
        "(pooling onwards) float, float32 outputs; full: every op integer, uint8 outputs "
        "(for integer-only accelerators; measurably less faithful, see the conversion report)",
    )
    parser.add_argument(
        "--int8-float-layers",
        default=",".join(Int8Recipe().float_layers),
        help="mixed mode: backbone layer-name prefixes kept float ('none' for none); with Conv1 float, the blur "
        "and padding before it stay float too",
    )
    parser.add_argument(
        "--int8-input-scaling",
        choices=("folded", "quantized"),
        default="folded",
        help="folded: the pixel scaling (x / 127.5 - 1) is folded into the first convolution, so uint8 pixels "
        "reach it unrounded; quantized: it stays two int8 ops (the old graph, for comparison)",
    )
    parser.add_argument(
        "--int8-ranges",
        choices=ACTIVATION_RANGES,
        default=Int8Recipe().activation_ranges,
        help="mse: each activation's int8 range is the one with the least quantization error (rounding and "
        "clipping) on the representative images; minmax: the calibrator's minimum and maximum",
    )
    parser.add_argument(
        "--int8-bias-correction",
        choices=("on", "off"),
        default="on" if Int8Recipe().correct_bias else "off",
        help="mixed mode: on: the pooled features' mean int8 error on the representative images is taken out "
        "in the float head",
    )
    parser.add_argument(
        "--int8-head-weights",
        choices=("float16", "float32"),
        default="float16" if Int8Recipe().float16_head_weights else "float32",
        help="mixed mode: how the float head's weight matrices are stored (float16: half the bytes, widened "
        "to float32 when the model loads)",
    )
    parser.add_argument("--strict", action="store_true", help="exit non-zero and publish nothing if any variant is flagged")
    parser.add_argument("--val", type=Path, action="append", default=[], help="folder of class folders to validate on (repeatable; empty: the model card's validation split)")
    parser.add_argument("--rep-data", type=Path, action="append", default=[], help="folder of class folders of training images to calibrate on (repeatable; empty: the model card's training split)")
    parser.add_argument("--max-val", type=whole(1), default=None, help="check on at most this many validation images, class-balanced (None: all)")
    parser.add_argument("--threads", type=whole(1), default=2, help="TFLite interpreter threads during the check")
    parser.add_argument("--seed", type=int, default=1234, help="seed for choosing the representative images")
    parser.add_argument("--faces", type=Path, default=None,
                        help="labelled face folder (CelebA's format): check every variant's traits output against "
                             "Keras on its test split (per-trait AUC and agreement)")
    parser.add_argument("--max-faces", type=whole(1), default=300, help="labelled test faces the traits are checked on")
    parser.add_argument("--rep-faces", type=whole(0), default=0,
                        help="with --faces: this many face crops of its training split join the int8 calibration, "
                             "as the device crops them (measured: no better on faces, worse on drawings)")
    return parser


def int8_recipe(mode: str, float_layers: str, input_scaling: str = "folded", activation_ranges: str = "mse",
                bias_correction: str = "on", head_weights: str = "float16") -> Int8Recipe:
    fold = input_scaling == "folded"
    if mode == "full":
        return dataclasses.replace(FULL_INTEGER, fold_input_scaling=fold, activation_ranges=activation_ranges)
    names = tuple(n.strip() for n in float_layers.split(",") if n.strip() and n.strip() != "none")
    return Int8Recipe(float_head=True, float_layers=names, fold_input_scaling=fold, activation_ranges=activation_ranges,
                      correct_bias=bias_correction == "on", float16_head_weights=head_weights == "float16")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ConvertConfig(
        models_dir=args.models,
        variants=args.variants,
        rep_size=args.rep_size,
        min_agreement=args.min_agreement,
        strict=args.strict,
        val_dirs=tuple(args.val),
        rep_dirs=tuple(args.rep_data),
        num_threads=args.threads,
        max_val=args.max_val,
        int8_recipe=int8_recipe(args.int8_mode, args.int8_float_layers, args.int8_input_scaling, args.int8_ranges,
                                 args.int8_bias_correction, args.int8_head_weights),
        seed=args.seed,
        faces_dir=args.faces,
        max_faces=args.max_faces,
        rep_faces=args.rep_faces,
    )
    # A full disk or a read-only models folder is a file error; no file is left half-written.
    return run_command(lambda: report(run(config), config), (ConvertError,), INTERRUPTED, prefix="convert",
                       cannot_write="file error")


INTERRUPTED = ("convert: interrupted; no file in models/ is half-written (variants are published only "
               "once every one has converted and been checked)")


def report(result, config: ConvertConfig) -> int:
    """The warnings and the last line of a finished conversion; the exit code."""
    flagged = [check for check in result.checks if not check.passed]
    noise = result.report["keras"]["noise_agreement"]
    for check in flagged:
        print(
            f"convert: WARNING {check.variant} agrees with Keras on only {check.agreement:.1%} of the validation "
            f"images (threshold {check.min_agreement:.0%}; Keras agrees with itself on {noise:.1%} when pixels "
            f"move by +-1 level); see {config.models_dir / 'conversion_report.json'}",
            file=sys.stderr,
        )
    if flagged and config.strict:
        print("convert: --strict: nothing was published; the previous models are unchanged", file=sys.stderr)
        return EXIT_FLAGGED
    print(f"wrote {', '.join(f'lookalike_{v}.tflite' for v in config.variants)} and manifest.json to {config.models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
