"""The face-trait head: glasses, hat, bald, grey hair, blond hair, facial hair, gender, age from a face.

It reads the same frozen MobileNetV2 the character model runs, at a tensor inside the part the
device already computes (``block_12_depthwise_relu``, 576 channels at 1/16 resolution), so the
traits cost the device no second backbone pass: a 2x2 grid average (where on the face a thing is
matters: glasses sit at the eyes, a hat on top) and one logistic unit per trait.

Measured on celeba-dev crops framed the way the device frames faces (YuNet boxes; linear probe on
2,000 faces, tested on 990 others; ROC AUC): the pooled block_12_add features the character model
uses give glasses 0.88, grey 0.90, blond 0.90; the grid of block_12_depthwise_relu gives glasses
0.96, hat 0.98, bald 0.99, grey 0.95, blond 0.94, male 0.98. The grid of block_13_expand_relu is
no better and costs an extra layer.

Recipe: faces found by the device's detectors (Haar, and YuNet when given: either can run on the
device, and they frame faces differently), cropped per the input contract; features standardised;
L2-regularised logistic regression per trait, its strength chosen on the validation split; then
Platt scaling on the validation split, so that a probability of 0.8 means about 80%; a decision
threshold per trait (best F1 on validation) for saying "glasses" on the card. Everything folds
into one dense layer on the raw pooled features. The test split is only measured.

``python -m train.traits --faces DIR`` (``make traits FACES=DIR``) writes the head file; ``make
train`` attaches it to the character model as its third output ``traits``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge.contract import InputContract  # noqa: E402
from edge.style_domain import floored_spread  # noqa: E402
from edge.face_traits import (  # noqa: E402
    FACE_TRAITS, SPLIT_RULE, FaceTraitsError, LabelledFaces, face_crops, read_labelled_faces, roc_auc,
)

HEAD_FORMAT = 2  # 2 records the input smoothing; a format-1 head was trained on unsmoothed pictures
TRAIT_LAYER = "block_12_depthwise_relu"
GRID = 2
DEFAULT_HEAD = Path(__file__).resolve().parent.parent / "data" / "face-traits" / "trait_head.npz"
MATCH_FILE = DEFAULT_HEAD.with_name("match.json")  # the match's trait weights (python -m train.match)
STRENGTHS = (0.003, 0.01, 0.03)  # L2 penalty per sample on standardised features, chosen on validation


class TraitHeadError(ValueError):
    """A trait head file that cannot be used with this backbone; the message says how to rebuild."""


class MatchWeightsError(ValueError):
    """A match weights file that cannot be used."""


def read_match_weights(path: Path) -> dict[str, float]:
    """{term: weight} from a match.json written by ``python -m train.match``; every term of
    ``edge.traits.TERMS`` must be there (an older file is refused, not filled in)."""
    from edge.runtime import read_json_object
    from edge.traits import TERM_NAMES

    data = read_json_object(path, MatchWeightsError, "rebuild it with 'make traits'")
    weights = data.get("weights")
    if not isinstance(weights, dict) or sorted(weights) != sorted(TERM_NAMES):
        raise MatchWeightsError(f"{path}: 'weights' must give exactly the terms {', '.join(TERM_NAMES)}: rebuild it with 'make traits'")
    try:
        return {name: float(weights[name]) for name in TERM_NAMES}
    except (TypeError, ValueError) as exc:
        raise MatchWeightsError(f"{path}: weights must be numbers: rebuild it with 'make traits'") from exc


@dataclass
class TraitHead:
    """The trained head: probabilities = sigmoid(grid_pooled_features @ kernel + bias)."""

    traits: tuple[str, ...]
    kernel: np.ndarray  # (F, T)
    bias: np.ndarray  # (T,)
    thresholds: np.ndarray  # (T,)
    feature_layer: str
    grid: int
    input_size: int
    backbone_sha256: str
    metrics: dict
    input_smoothing: str  # the model's input smoothing it was trained behind (train.model.INPUT_SMOOTHING)

    def save(self, path: Path) -> None:
        """Atomic (``edge.artifacts.atomic_write_bytes``): a reader never sees half a head."""
        from edge.artifacts import atomic_write_bytes

        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, format_version=HEAD_FORMAT, traits=np.array(self.traits), kernel=self.kernel.astype(np.float32),
                 bias=self.bias.astype(np.float32), thresholds=self.thresholds.astype(np.float32),
                 feature_layer=self.feature_layer, grid=self.grid, input_size=self.input_size,
                 backbone_sha256=self.backbone_sha256, metrics=json.dumps(self.metrics),
                 input_smoothing=self.input_smoothing)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "TraitHead":
        path = Path(path)
        rebuild = "rebuild it with 'make traits FACES=path/to/labelled/faces'"
        if not path.is_file():
            raise TraitHeadError(f"trait head {path} does not exist: {rebuild}, or train with --no-traits")
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["format_version"])
                if version not in (1, HEAD_FORMAT):
                    raise TraitHeadError(f"{path} has an unsupported format: {rebuild}")
                head = cls(tuple(str(t) for t in data["traits"]), data["kernel"].astype(np.float32),
                           data["bias"].astype(np.float32), data["thresholds"].astype(np.float32),
                           str(data["feature_layer"]), int(data["grid"]), int(data["input_size"]),
                           str(data["backbone_sha256"]), json.loads(str(data["metrics"])),
                           str(data["input_smoothing"]) if version >= 2 else "none")
        except TraitHeadError:
            raise
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise TraitHeadError(f"{path} is not a readable trait head ({exc}): {rebuild}") from exc
        t = len(head.traits)
        if head.kernel.ndim != 2 or head.kernel.shape[1] != t or head.bias.shape != (t,) or head.thresholds.shape != (t,):
            raise TraitHeadError(f"{path}: the arrays do not fit {t} traits: {rebuild}")
        unknown = sorted(set(head.traits) - set(FACE_TRAITS))
        if unknown:
            raise TraitHeadError(f"{path}: unknown trait {unknown[0]!r}: {rebuild}")
        return head


# ---------------------------------------------------------------- backbone side


def tap_layer(backbone, layer: str):
    """The backbone's symbolic tensor at ``layer``, where the trait head reads."""
    try:
        return backbone.get_layer(layer).output
    except ValueError as exc:
        raise TraitHeadError(f"the backbone has no layer {layer!r} for the trait head (it ends at "
                             f"{backbone.layers[-1].name}): rebuild the head with 'make traits'") from exc


def tap_model(backbone, layer: str):
    """The backbone from its input to ``layer`` (shares the backbone's weights)."""
    import keras

    return keras.Model(backbone.input, tap_layer(backbone, layer), name="trait_tap")


def backbone_fingerprint(backbone, layer: str) -> str:
    """sha256 of the weights the trait head depends on (the backbone up to ``layer``)."""
    digest = hashlib.sha256()
    for weights in tap_model(backbone, layer).get_weights():
        digest.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    return digest.hexdigest()


def grid_pool_layer(feature_size: int, grid: int):
    import keras

    if feature_size % grid:
        raise TraitHeadError(f"a {feature_size}x{feature_size} feature map does not split into a {grid}x{grid} grid")
    pool = feature_size // grid
    return keras.layers.AveragePooling2D(pool_size=pool, strides=pool, name="trait_grid")


def check_compatible(head: TraitHead, backbone, contract: InputContract) -> bool:
    """TraitHeadError (one line) when the head cannot sit on this backbone (another input size, no such
    layer, another feature count); else whether the backbone's weights are the ones it was trained on."""
    from train.model import INPUT_SMOOTHING

    rebuild = "rebuild it with 'make traits FACES=path/to/labelled/faces' (same WEIGHTS), or train with --no-traits"
    if head.input_smoothing != INPUT_SMOOTHING:
        raise TraitHeadError(f"the trait head was trained on pictures with input smoothing {head.input_smoothing!r}, "
                             f"this model's is {INPUT_SMOOTHING!r}: {rebuild}")
    if head.input_size != contract.input_size:
        raise TraitHeadError(f"the trait head was trained at {head.input_size} px, this model takes "
                             f"{contract.input_size} px: {rebuild}")
    tap = tap_layer(backbone, head.feature_layer)
    side, channels = int(tap.shape[1]), int(tap.shape[-1])
    features = channels * head.grid * head.grid if side % head.grid == 0 else None
    if features != head.kernel.shape[0]:
        raise TraitHeadError(f"the trait head reads {head.kernel.shape[0]} features, this backbone's "
                             f"{head.feature_layer} gives {channels} channels on a {side}x{side} map: {rebuild}")
    return backbone_fingerprint(backbone, head.feature_layer) == head.backbone_sha256


def trait_branch(tap, head: TraitHead):
    """Keras tensors: the backbone's tap -> grid pooling -> traits (sigmoid), weights from ``head``."""
    import keras

    pooled = keras.layers.Flatten(name="trait_features")(grid_pool_layer(int(tap.shape[1]), head.grid)(tap))
    dense = keras.layers.Dense(len(head.traits), activation="sigmoid", name="traits")
    out = dense(pooled)
    if int(pooled.shape[-1]) != head.kernel.shape[0]:
        raise TraitHeadError(f"the trait head expects {head.kernel.shape[0]} features, the backbone gives "
                             f"{int(pooled.shape[-1])}: rebuild it with 'make traits'")
    dense.set_weights([head.kernel, head.bias])
    return out


# ---------------------------------------------------------------- training


def grid_features(extractor, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    from train.model import batched_call

    return batched_call(extractor, crops, batch).reshape(len(crops), -1)


def fit_logistic(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression (L-BFGS): weights and bias."""
    from scipy.optimize import minimize

    n, d = x.shape
    target = y.astype(np.float64)

    def loss(params):
        w, b = params[:d], params[d]
        z = x @ w + b
        # log(1 + exp(-z)) for positives, log(1 + exp(z)) for negatives, computed stably
        nll = np.logaddexp(0.0, z) - target * z
        p = 1.0 / (1.0 + np.exp(-z))
        grad_z = (p - target) / n
        value = nll.mean() + 0.5 * strength * float(w @ w)
        grad = np.concatenate([x.T @ grad_z + strength * w, [grad_z.sum()]])
        return value, grad

    start = np.zeros(d + 1)
    start[d] = np.log((target.mean() + 1e-3) / (1 - target.mean() + 1e-3))
    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return result.x[:d], float(result.x[d])


def finite(value: float) -> float | None:
    """A metric for JSON: rounded, or None where it is undefined (a split without positives)."""
    return None if value != value else round(float(value), 4)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    candidates = np.linspace(0.05, 0.95, 91)
    best, best_f1 = 0.5, -1.0
    for t in candidates:
        said = p >= t
        tp = float((said & y).sum())
        f1 = 2 * tp / max(1.0, float(said.sum()) + float(y.sum()))
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |mean probability - observed rate| weighted over 10 bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.mean() * abs(float(p[rows].mean()) - float(y[rows].mean()))
    return total


def train_head(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], log) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Per trait: logistic regression (strength by validation AUC), Platt scaling and a threshold on
    validation; folded into (kernel, bias) on the raw features. Returns kernel, bias, thresholds, metrics."""
    x_train, x_val = features["train"], features["val"]
    mean = x_train.mean(axis=0)
    # The floor keeps a channel that barely varies on the training faces from getting a weight
    # thousands of times the others once folded into the kernel (w / std): int8 and dynamic-range
    # conversion could not hold such a kernel or its input, and the traits fell to chance there.
    std = floored_spread(x_train.std(axis=0))
    z_train, z_val = (x_train - mean) / std, (x_val - mean) / std
    kernel = np.zeros((x_train.shape[1], len(FACE_TRAITS)))
    bias = np.zeros(len(FACE_TRAITS))
    thresholds = np.zeros(len(FACE_TRAITS))
    metrics: dict = {}
    for t, trait in enumerate(FACE_TRAITS):
        y_train, y_val = labels["train"][:, t], labels["val"][:, t]
        fits = []
        for strength in STRENGTHS:
            w, b = fit_logistic(z_train, y_train, strength)
            fits.append((roc_auc(y_val, z_val @ w + b), strength, w, b))
        val_auc, strength, w, b = max(fits, key=lambda f: f[0])
        # Platt scaling on validation: p = sigmoid(a * logit + c)
        a, c = fit_logistic((z_val @ w + b)[:, None], y_val, 0.0)
        a = float(a[0])
        kernel[:, t] = a * w / std
        bias[t] = a * (b - float((w / std) @ mean)) + c
        p_val = 1.0 / (1.0 + np.exp(-(x_val @ kernel[:, t] + bias[t])))
        thresholds[t] = best_f1_threshold(y_val, p_val)
        metrics[trait] = {"l2": strength, "val_auc": finite(val_auc), "val_positives": int(y_val.sum()),
                          "val_calibration_error": round(calibration_error(y_val, p_val), 4),
                          "threshold": round(float(thresholds[t]), 2)}
        log(f"  {trait:11s} val AUC {metrics[trait]['val_auc']} (l2 {strength}), threshold {thresholds[t]:.2f}, "
            f"calibration error {metrics[trait]['val_calibration_error']:.3f}")
    return kernel.astype(np.float32), bias.astype(np.float32), thresholds.astype(np.float32), metrics


def trait_detectors(detector: str | None) -> list:
    """The detectors that frame the labelled faces: always Haar (the device's fallback), plus YuNet: the
    file given, or for 'auto' (the default) the one the device would pick; 'haar' alone for Haar only."""
    from edge.faces import AUTO, HaarFaceDetector, make_face_detector

    extra = make_face_detector(detector or AUTO)
    return [HaarFaceDetector()] + ([extra] if extra.name != "haar" else [])


def build(faces_dir: Path, out: Path, weights: str | None, detector_path: str | None, input_size: int = 224,
          max_per_split: int | None = None, log=print) -> TraitHead:
    import keras

    from train.model import INPUT_SMOOTHING, build_backbone, model_input
    from train.weights import resolve_weights

    started = time.time()
    faces = read_labelled_faces(faces_dir)
    contract = InputContract(labels=("a", "b"), input_size=input_size)
    detectors = trait_detectors(detector_path)
    backbone = build_backbone(contract, resolve_weights(weights), feature_layer=TRAIT_LAYER)
    inputs = keras.Input((input_size, input_size, 3))
    tap = backbone(model_input(inputs, contract), training=False)
    extractor = keras.Model(inputs, grid_pool_layer(int(tap.shape[1]), GRID)(tap))
    features, labels, counts = {}, {}, {}
    for split in ("train", "val", "test"):
        part = faces.subset(split)
        if max_per_split:
            part = LabelledFaces(part.folder, part.files[:max_per_split], part.labels[:max_per_split])
        if len(part) == 0:
            raise FaceTraitsError(f"{faces_dir}: no pictures fall in the {split} split ({SPLIT_RULE})")
        crops, rows = face_crops(part, detectors, contract, log)
        features[split] = grid_features(extractor, crops)
        labels[split] = part.labels[rows]
        counts[split] = {"pictures": len(part), "crops": int(len(rows))}
        log(f"{split}: {len(part)} pictures, {len(rows)} face crops ({', '.join(d.name for d in detectors)}) "
            f"[{time.time() - started:.0f} s]")
    kernel, bias, thresholds, metrics = train_head(features, labels, log)
    for t, trait in enumerate(FACE_TRAITS):
        p = 1.0 / (1.0 + np.exp(-(features["test"] @ kernel[:, t] + bias[t])))
        y = labels["test"][:, t]
        metrics[trait]["test_auc"] = finite(roc_auc(y, p))
        metrics[trait]["test_positives"] = int(y.sum())
    head = TraitHead(FACE_TRAITS, kernel, bias, thresholds, TRAIT_LAYER, GRID, input_size,
                     backbone_fingerprint(backbone, TRAIT_LAYER),
                     {"traits": metrics, "split": SPLIT_RULE, "counts": counts, "source": str(faces_dir),
                      "detectors": [d.name for d in detectors], "seconds": round(time.time() - started, 1),
                      "licence": "trained on CelebA attributes: non-commercial research use only"},
                     INPUT_SMOOTHING)
    head.save(out)
    log("test AUC: " + ", ".join(f"{t} {metrics[t]['test_auc']}" for t in FACE_TRAITS))
    log(f"wrote {out} in {time.time() - started:.0f} s")
    return head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.traits", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     description="Train the face-trait head from faces labelled in CelebA's format.")
    parser.add_argument("--faces", required=True, help="folder with list_attr_celeba.txt and the pictures (or images/)")
    parser.add_argument("--out", default=str(DEFAULT_HEAD), help="the head file to write")
    parser.add_argument("--weights", default=None, help="as for python -m train: imagenet, a .weights.h5 file, or random")
    parser.add_argument("--detector", default="auto",
                        help="frame the faces with Haar and also with this YuNet .onnx; auto: the YuNet the device "
                             "would use (python -m edge detector), if any; haar: Haar only")
    parser.add_argument("--size", type=int, default=224, help="model input size (the character model's)")
    parser.add_argument("--max-per-split", type=int, default=None, help="at most this many pictures per split (quick runs)")
    args = parser.parse_args(argv)
    from edge.command import refuse, run_command

    if args.max_per_split is not None and args.max_per_split < 1:
        return refuse("--max-per-split must be at least 1")
    if not 96 <= args.size <= 224:
        return refuse(f"--size {args.size} is out of range (96..224, the sizes a model can be trained at)")
    from convert.files import check_writable
    from edge.faces import DetectorError
    from train.weights import WeightsError

    def body() -> None:
        check_writable(Path(args.out))
        build(Path(args.faces), Path(args.out), args.weights, args.detector, args.size, args.max_per_split,
              log=lambda m: print(m, flush=True))

    return run_command(body, (FaceTraitsError, TraitHeadError, WeightsError, DetectorError),
                       "interrupted: the trait head file was not changed", cannot_write=f"cannot write {args.out}")


if __name__ == "__main__":
    sys.exit(main())
