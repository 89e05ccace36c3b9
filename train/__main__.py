"""`make train` / `python -m train`: a folder of character images -> a trained lookalike model."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge.argtypes import decimal, whole
from train import DEFAULT_FEATURE_LAYER

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the lookalike classifier (MobileNetV2 + domain-standardised cosine head).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", action="append", default=[],
                        help="folder of class folders to train on (repeatable); default: the embedded "
                             "emoji dataset, twemoji + noto, validated on openmoji. A folder of style "
                             "folders is expanded")
    parser.add_argument("--val", action="append", default=[],
                        help="separate validation folder of class folders (repeatable)")
    parser.add_argument("--val-split", type=float, default=None,
                        help="share of each class held out for validation when there is no --val (default 0.2)")
    parser.add_argument("--protocol", choices=("train", "loso"), default="train",
                        help="train: train the model and write every artifact; loso: leave-one-style-out evaluation "
                             "over the style folders of --data (train on all but one, test on that one, rotate), "
                             "written to loso_report.json in --models, no model")
    parser.add_argument("--models", default="models", help="where the artifacts go")
    parser.add_argument("--weights", default=None,
                        help="'imagenet' (Keras downloads them), a local .weights.h5 file, or 'random'; "
                             "default: $LOOKALIKE_WEIGHTS, else imagenet")
    parser.add_argument("--size", type=whole(32, 640), default=224,
                        help="input size in pixels, 32..640 (ImageNet weights exist for 96, 128, 160, 192 and 224; "
                             "the face-trait head fits 224 only)")
    parser.add_argument("--epochs", type=whole(1), default=40, help="maximum epochs of the head (at least 1)")
    parser.add_argument("--patience", type=whole(1), default=8, help="early stopping patience (epochs)")
    parser.add_argument("--augment-copies", type=whole(0), default=3,
                        help="augmented copies of each training image (0: the originals only)")
    parser.add_argument("--features", default=DEFAULT_FEATURE_LAYER, metavar="LAYERS",
                        help="MobileNetV2 layers whose pooled features the head reads, joined by '+' "
                             "(the default: the middle and the last layer)")
    parser.add_argument("--noise-copies", type=whole(1, 16), nargs="*", default=[1, 2], metavar="LEVELS",
                        help="then one copy of the originals per amplitude with +-LEVELS pixel noise "
                             "(the flag alone: none)")
    parser.add_argument("--head-l2", type=decimal(0.0, 10.0), default=1e-2, help="L2 penalty on the head's kernel")
    parser.add_argument("--faces", default=None,
                        help="folder of photos of real people: the face domain the device's gallery match is "
                             "centred on (default: the faces that ship with scikit-image)")
    parser.add_argument("--detector", default="auto",
                        help="how faces are found in those photos, as on the device: auto (YuNet when cached by "
                             "'python -m edge detector --fetch', else Haar), haar, or a YuNet .onnx / Haar .xml file")
    parser.add_argument("--traits", default=None,
                        help="face-trait head file (python -m train.traits); default: the shipped "
                             "data/face-traits/trait_head.npz when it fits the backbone weights")
    parser.add_argument("--no-traits", action="store_true", help="build the model without the face-trait output")
    parser.add_argument("--no-int8", action="store_true",
                        help="--protocol loso: do not convert each fold's model to int8 (saves about 1.5 minutes a fold)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--max-per-class", type=whole(1), default=None,
                        help="use at most this many images per class (quick runs; default: all)")
    return parser.parse_args(argv)


def preflight(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, found before TensorFlow loads (seconds, not a minute); None if nothing."""
    from edge.faces import DetectorError, make_face_detector
    from train.weights import WeightsError, resolve_weights

    if args.protocol == "loso":  # it trains heads on drawings only: no face mean, no trait head
        given = [flag for flag, value in (("--faces", args.faces), ("--detector", args.detector != "auto"),
                                          ("--traits", args.traits), ("--no-traits", args.no_traits)) if value]
        if given:
            return f"{given[0]} does not apply to --protocol loso (it measures the character head on drawings alone)"
    elif args.no_int8:
        return "--no-int8 applies to --protocol loso only (make convert builds the int8 variant of a trained model)"
    for folder in [*args.data, *args.val]:
        if not Path(folder).exists():
            return f"dataset folder {folder} does not exist"
    if args.faces and not Path(args.faces).is_dir():
        return f"face folder {args.faces} does not exist (a folder of photos of people)"
    try:
        resolve_weights(args.weights)
        make_face_detector(args.detector)  # a bad --detector fails now, not after the features are computed
    except (WeightsError, DetectorError) as exc:
        return str(exc)
    if args.protocol == "loso":
        from train.data import DatasetError, check_loso_args, load_styles

        try:
            check_loso_args(args.val, args.val_split)
            load_styles([Path(p) for p in args.data] or None)  # three styles, every class in each
        except DatasetError as exc:
            return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = preflight(args)
    from edge.command import refuse, run_command

    if problem is not None:
        return refuse(problem)
    from convert import ConvertError
    from train.data import DatasetError
    from train.faces import FacesError
    from train.loso import run_loso
    from train.model import FeatureLayerError
    from train.pipeline import TrainConfig, run
    from train.weights import WeightsError

    config = TrainConfig(
        data=args.data, val=args.val, val_split=args.val_split, models_dir=args.models, weights=args.weights,
        input_size=args.size, epochs=args.epochs, patience=args.patience, augment_copies=args.augment_copies,
        noise_copies=tuple(args.noise_copies), head_l2=args.head_l2, seed=args.seed, max_per_class=args.max_per_class,
        faces=args.faces, detector=args.detector, traits=args.traits, use_traits=not args.no_traits,
        feature_layer=args.features, loso_int8=not args.no_int8,
    )
    def body() -> None:
        (run_loso if args.protocol == "loso" else run)(config, log=lambda message: print(message, flush=True))

    return run_command(body, (DatasetError, WeightsError, FacesError, FeatureLayerError, ConvertError),
                       "interrupted: nothing was written to models/ (the previous model, if any, is untouched)")


if __name__ == "__main__":
    sys.exit(main())
