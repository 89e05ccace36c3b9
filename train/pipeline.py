"""Training, top to bottom: data, features, head, model, evaluation, artifacts.

The recipe, and why:
1. The MobileNetV2 backbone (ImageNet weights) stays frozen, cut at a middle layer (see
   ``train.model``: mid-level features carry across art styles). Its pooled features for the training
   images and for several augmented copies of each are computed once (augmentation toward other art
   styles and toward photos, see ``augment.py``), so every epoch of the head costs milliseconds.
2. Each art style ("domain") is standardised by its own feature mean and spread before the head sees
   it. A classifier trained on drawings of two styles otherwise learns each style's overall look
   along with the character; standardising per domain removes the style's constant offset.
3. The head is a dense softmax over the standardised features (scaled to about unit length, times a
   fixed temperature), trained with label smoothing and dropout. The epoch is chosen on a held-out
   share of the training pictures, then the head is trained again on all of them (``fit_head``):
   the validation pictures choose nothing and give no statistics, so their figure is held out.
4. The saved model takes RGB pixels 0..255 and carries the training styles' statistics together as
   a Normalization layer: the prior for a style it has never seen. The device learns the statistics
   of the pictures it sees from there (``edge.style_domain``, with the classifier's last layer from
   ``gallery.npz``); training measures that with the device's code (``device_adapted``).
"""
from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import OUTPUT_NAMES, TRAITS_OUTPUT, InputContract, read_rgb
from edge.artifacts import CHARACTERS_DIR, GALLERY_FILE, KERAS_FILE, LABELS_FILE, MODEL_CARD_FILE
from edge.model_card import CARD_VERSION
from edge.outputs import make_staging
from edge.ranking import in_top_k, top_k_indices
from edge.runtime import sha256_file
from edge.style_domain import PRIOR_PICTURES, ClassifierHead, adapted_probabilities, floored_spread
from edge.traits import CHARACTER_TRAITS_FILE, DATASET_TRAITS_FILE, TraitsError, read_trait_rules, write_character_traits
from train.augment import AugmentConfig, augment_batch, pixel_noise
from train.data import Dataset, DatasetError, has_skin_tone, held_out_rows, load_dataset, load_images, picture_group
from train.model import DEFAULT_FEATURE_LAYER, INPUT_SMOOTHING, LOGIT_SCALE, batched_call, classifier_arrays, feature_layers


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # training roots (folders of class folders)
    val: list[str] = field(default_factory=list)  # validation roots
    val_split: float | None = None
    models_dir: str = "models"
    weights: str | None = None  # resolved by train.weights.resolve_weights
    input_size: int = 224
    alpha: float = 1.0
    feature_layer: str = DEFAULT_FEATURE_LAYER
    augment_copies: int = 3
    # Then one copy of the original pictures per amplitude, with +-a level pixel noise (train.augment.pixel_noise).
    noise_copies: tuple[int, ...] = (1, 2)
    head_l2: float = 1e-2  # L2 penalty on the head's kernel
    epochs: int = 40
    patience: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-3
    label_smoothing: float = 0.1
    dropout: float = 0.3
    seed: int = 1234
    feature_batch: int = 32
    max_per_class: int | None = None  # for quick runs and tests
    faces: str | None = None  # folder of face photos for the face domain; default: scikit-image's faces
    detector: str = "auto"  # how faces are found in those photos: the device's --detector (edge.faces)
    # The face-trait head (``train.traits``): None = the shipped head when it fits the backbone
    # (a warning and no traits when it does not); a path = that head, and an error when it does not fit.
    traits: str | None = None
    use_traits: bool = True
    loso_int8: bool = True  # --protocol loso: also convert each fold's model to int8 and measure it (--no-int8: not)


# ---------------------------------------------------------------- features and domains


def feature_extractor(contract: InputContract, weights: str | None, alpha: float, feature_layer: str):
    """(pixels -> pooled features model, the backbone it wraps)."""
    import keras

    from train.model import backbone_features, build_backbone, model_input, pool_features

    size = contract.input_size
    inputs = keras.Input((size, size, 3), name="image")
    x = model_input(inputs, contract)
    backbone = build_backbone(contract, weights, alpha, feature_layer)
    pooled = pool_features(backbone_features(backbone, x))
    return keras.Model(inputs, pooled, name="features"), backbone


def copy_plan(config: "TrainConfig") -> list[tuple[str, int]]:
    """What each training copy is, in order: ("original", 0), ("augmented", 0) per augmented copy, then
    ("noise", a) per amplitude of ``config.noise_copies``; the layout ``training_copies`` returns."""
    return [("original", 0)] + [("augmented", 0)] * config.augment_copies + [("noise", a) for a in config.noise_copies]


def training_copies(config: "TrainConfig", extractor, images: np.ndarray, rng: np.random.Generator, log=None) -> list[np.ndarray]:
    """Pooled features of the training pictures as the head sees them, in the order of ``copy_plan``:
    the originals, the augmented copies (``train.augment.augment_batch``), then one copy with +-a level
    pixel noise per amplitude; all drawn from ``rng`` in that order."""
    plan = copy_plan(config)
    copies = []
    for index, (kind, amplitude) in enumerate(plan):
        if kind == "original":
            batch = images
        elif kind == "augmented":
            batch = augment_batch(images, rng, AugmentConfig())
        else:
            batch = pixel_noise(images, amplitude, rng)
        copies.append(batched_call(extractor, batch, config.feature_batch))
        if log:
            log(f"features: copy {index + 1} of {len(plan)} ({kind if kind != 'noise' else f'+-{amplitude} level noise'})")
    return copies


@dataclass
class DomainStats:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> "DomainStats":
        return cls.floored(features.mean(axis=0), features.std(axis=0))

    @classmethod
    def floored(cls, mean: np.ndarray, std: np.ndarray) -> "DomainStats":
        # A floor under each channel's spread: a channel that barely varies in one domain would
        # otherwise blow up other domains' values (and the int8 range calibrated on them).
        return cls(mean, floored_spread(std))

    def apply(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std


def unit_scale(standardised: np.ndarray) -> np.ndarray:
    """What the model's ``embedding`` layer does: standardised features / sqrt(D)."""
    return standardised / np.sqrt(standardised.shape[-1])


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def domain_of(path: Path, roots: list[Path]) -> int:
    for index, root in enumerate(roots):
        if root in path.parents:
            return index
    return 0


def standardise_by_domain(features: np.ndarray, domains: np.ndarray) -> np.ndarray:
    out = np.empty_like(features)
    for d in np.unique(domains):
        rows = domains == d
        out[rows] = DomainStats.of(features[rows]).apply(features[rows])
    return out


# ---------------------------------------------------------------- head

HELD_OUT_SHARE = 0.2  # of each class's training picture groups, for choosing the epoch


def train_head(config: TrainConfig, x_train, y_train, x_val, y_val, num_classes: int, log, epochs: int | None = None):
    """The dense softmax head. With validation data: early stopping on its top-1 (best epoch
    restored); without (``x_val`` None): exactly ``epochs`` epochs."""
    import keras

    keras.utils.set_random_seed(config.seed)
    head = keras.Sequential(
        [
            keras.Input((x_train.shape[1],), name="embedding"),
            keras.layers.Dropout(config.dropout, name="dropout"),
            keras.layers.Dense(num_classes, activation="softmax", name="probabilities",
                               kernel_regularizer=keras.regularizers.L2(config.head_l2) if config.head_l2 else None),
        ],
        name="head",
    )
    head.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.TopKCategoricalAccuracy(5, name="top5")],
    )
    validated = x_val is not None
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=config.patience, restore_best_weights=True, mode="max")
    history = head.fit(
        LOGIT_SCALE * x_train,
        keras.utils.to_categorical(y_train, num_classes),
        validation_data=(LOGIT_SCALE * x_val, keras.utils.to_categorical(y_val, num_classes)) if validated else None,
        epochs=config.epochs if validated else int(epochs or config.epochs),
        batch_size=config.batch_size,
        shuffle=True,
        verbose=2,
        callbacks=[stop] if validated else [],
    )
    if validated:
        log(f"head: best epoch {int(np.argmax(history.history['val_accuracy'])) + 1} of {len(history.history['loss'])}")
    return head, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def fit_head(config: TrainConfig, dataset: Dataset, head_x, head_y, copies: int, val_x, y_val, num_classes: int, log):
    """(head, history, what chose the epoch). The epoch is chosen on a held-out share of the training
    pictures (``HELD_OUT_SHARE`` of each class's picture groups; skin-tone variants stay together),
    then the head is trained again on every training picture for that many epochs: the validation
    pictures pick nothing. With nothing to hold out (a class with one picture group only), the
    validation pictures choose the epoch, and the card says so."""
    groups = [picture_group(p) for p in dataset.train.files]
    fit, held = held_out_rows(np.asarray(dataset.train.targets), groups, HELD_OUT_SHARE, config.seed)
    if not len(held):
        log("head: no training pictures to hold out for the epoch; the validation pictures choose it")
        head, history = train_head(config, head_x, head_y, val_x, y_val, num_classes, log)
        return head, history, "validation pictures (nothing to hold out)"
    n = len(dataset.train.files)
    rows = np.concatenate([fit + copy * n for copy in range(copies)])
    _, history = train_head(config, head_x[rows], head_y[rows], head_x[held], head_y[held], num_classes, log)
    best = int(np.argmax(history["val_accuracy"])) + 1
    log(f"head: {best} epochs (chosen on {len(held)} held-out training pictures), trained again on all {n}")
    head, _ = train_head(config, head_x, head_y, None, None, num_classes, log, epochs=best)
    return head, history, f"held-out share of the training pictures ({len(held)} of {n}), then retrained on all for {best} epochs"


def device_adapted(head_weights: dict[str, np.ndarray], embeddings: np.ndarray, targets: np.ndarray,
                   labels: tuple[str, ...], seed: int) -> dict[str, Any]:
    """Top-1/top-5 of the device's adaptive classifier (``edge.style_domain``, the device's own code) over
    the pictures in a seeded random order, each answered before it is counted."""
    head = ClassifierHead(head_weights["head_kernel"], head_weights["head_bias"])
    probabilities, counted = adapted_probabilities(head, embeddings, seed)
    figures = evaluate(probabilities, np.asarray(targets), labels)
    return {"top1": figures["top1"], "top5": figures["top5"], "macro_top1": figures["macro_top1"],
            "prior_pictures": PRIOR_PICTURES, "counted": counted}


def assemble_model(contract: InputContract, backbone, head, target: DomainStats, trait_head=None):
    """image (pixels 0..255) -> [probabilities, embedding(, traits)], with the target domain's statistics inside."""
    from train.model import build_model

    model = build_model(contract, backbone=backbone, domain=(target.mean, target.std), trait_head=trait_head)
    kernel, bias = head.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights([kernel * LOGIT_SCALE, bias])
    return model


# ---------------------------------------------------------------- metrics and plots


def evaluate(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    order = top_k_indices(probabilities, 5)
    top1 = order[:, 0] == targets
    top5 = in_top_k(probabilities, targets, 5)
    num = len(labels)
    confusion = np.zeros((num, num), dtype=np.int64)
    np.add.at(confusion, (targets, order[:, 0]), 1)
    per_class = {}
    for i, name in enumerate(labels):
        rows = targets == i
        if rows.any():
            per_class[name] = float(top1[rows].mean())
    ranked = sorted(per_class.items(), key=lambda kv: kv[1])
    return {
        "images": int(len(targets)),
        "top1": float(top1.mean()),
        "top5": float(top5.mean()),
        "macro_top1": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "per_class_top1": per_class,
        "worst_classes": ranked[:5],
        "best_classes": ranked[::-1][:5],
        "confusion": confusion.tolist(),
    }


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    ax_loss.plot(epochs, history["loss"], label="train")
    ax_loss.plot(epochs, history["val_loss"], label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(epochs, history["accuracy"], label="train top-1")
    ax_acc.plot(epochs, history["val_accuracy"], label="validation top-1")
    ax_acc.plot(epochs, history["val_top5"], label="validation top-5")
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion: np.ndarray, labels: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    side = max(6.0, 0.18 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    rows = confusion.sum(axis=1, keepdims=True)
    ax.imshow(confusion / np.maximum(rows, 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=6 if n > 30 else 8)
    ax.set_yticks(range(n), labels, fontsize=6 if n > 30 else 8)
    ax.set(xlabel="predicted", ylabel="true", title="validation confusion (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- artifacts


def shown_pictures(dataset: Dataset) -> list[int]:
    """Rows of ``dataset.train`` whose pictures the device shows: every picture of the first
    training style (the variants of a character: genders, skin tones), in file order."""
    root = dataset.train_roots[0]
    return [i for i, path in enumerate(dataset.train.files) if root in path.parents]


def picture_name(dataset: Dataset, row: int) -> str:
    """``class/file.png``: where a shown picture is written under characters/."""
    path = dataset.train.files[row]
    return f"{dataset.labels[dataset.train.targets[row]]}/{path.stem}.png"


def style_relative(dataset: Dataset, path: Path) -> str:
    """style/class/file of a training picture, what a traits.csv glob with '/' matches."""
    return f"{path.parent.parent.name}/{path.parent.name}/{path.name}"


def write_characters(dataset: Dataset, rows: list[int], folder: Path, size: int = 160) -> None:
    """Every shown picture as characters/<class>/<file>.png, and the first of each class also as
    characters/<class>.png (the picture when nothing says which variant)."""
    import cv2

    from edge.contract import center_square, resize_square

    folder.mkdir(parents=True, exist_ok=True)
    seen = set()
    for row in rows:
        target = dataset.train.targets[row]
        rgb = resize_square(center_square(read_rgb(dataset.train.files[row])), size)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        name = picture_name(dataset, row)
        (folder / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / name), bgr)
        if target not in seen:
            seen.add(target)
            cv2.imwrite(str(folder / f"{dataset.labels[target]}.png"), bgr)


def picture_arrays(dataset: Dataset, rows: list[int], standardised: np.ndarray, rules, match_weights) -> dict[str, np.ndarray]:
    """The shown pictures for gallery.npz: names, classes, embeddings (the gallery's space), traits,
    and the match's trait weights (see ``edge.traits.TERMS``)."""
    from edge.traits import CHARACTER_TRAITS, trait_vector

    arrays = {
        "picture_files": np.array([picture_name(dataset, r) for r in rows]),
        "picture_plain": np.array([0.0 if has_skin_tone(dataset.train.files[r].name) else 1.0 for r in rows], np.float32),
        "picture_labels": np.array([dataset.train.targets[r] for r in rows], dtype=np.int32),
        "picture_embeddings": l2_normalise(standardised[rows]).astype(np.float32),
    }
    if rules is not None:
        arrays["picture_traits"] = np.stack([
            trait_vector(rules.picture(dataset.labels[dataset.train.targets[r]], style_relative(dataset, dataset.train.files[r])))
            for r in rows
        ])
        arrays["character_trait_names"] = np.array(CHARACTER_TRAITS)
    if match_weights is not None:
        arrays["trait_terms"] = np.array(match_weights[0])
        arrays["trait_weights"] = np.asarray(match_weights[1], dtype=np.float32)
    return arrays


def library_versions() -> dict[str, str]:
    import cv2
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def publish(staging: Path, models_dir: Path) -> None:
    """Move finished artifacts into models/; the Keras model goes last, so a reader that finds it
    finds a complete set beside it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    entries = sorted(staging.iterdir(), key=lambda p: p.name == KERAS_FILE)
    for entry in entries:
        target = models_dir / entry.name
        if entry.is_dir():
            if target.exists():
                old = models_dir / f".{entry.name}.old"
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                entry.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                entry.rename(target)
        else:
            entry.replace(target)


# ---------------------------------------------------------------- the story


def run(config: TrainConfig, log=print) -> dict[str, Any]:
    """Train and write every artifact into config.models_dir; returns the model card."""
    started = time.time()
    from train.weights import resolve_weights

    weights = resolve_weights(config.weights)
    dataset = load_dataset(
        [Path(p) for p in config.data] or None, [Path(p) for p in config.val] or None, config.val_split, config.seed
    )
    if config.max_per_class:
        dataset = _subsample(dataset, config.max_per_class, config.seed)
    contract = InputContract(labels=dataset.labels, input_size=config.input_size)
    log(f"data: {len(dataset.train)} training and {len(dataset.val)} validation images, {contract.num_classes} classes")
    traits = character_traits(dataset)

    x_train = load_images(dataset.train.files, contract)
    x_val = load_images(dataset.val.files, contract)
    y_train = np.asarray(dataset.train.targets)
    y_val = np.asarray(dataset.val.targets)
    train_domains = np.array([domain_of(p, dataset.train_roots) for p in dataset.train.files])

    import keras

    keras.utils.set_random_seed(config.seed)  # the same seed, the same model (random weights included)
    extractor, backbone = feature_extractor(contract, weights, config.alpha, config.feature_layer)
    trait_head = load_trait_head(config, backbone, contract, log)
    rng = np.random.default_rng(config.seed)
    copies = training_copies(config, extractor, x_train, rng, lambda line: log(f"{line} [{time.time() - started:.0f} s]"))
    val_features = batched_call(extractor, x_val, config.feature_batch)
    contract = dataclasses.replace(contract, embedding_dim=int(val_features.shape[1]))
    if trait_head is not None:
        contract = dataclasses.replace(contract, outputs=OUTPUT_NAMES + (TRAITS_OUTPUT,), traits=trait_head.traits,
                                       trait_thresholds=tuple(round(float(t), 4) for t in trait_head.thresholds))

    # The statistics the model ships with: those of the training styles together, the prior for a
    # style (or camera) the device has never seen; the device then learns the statistics of what it
    # sees (edge.style_domain). The validation style gives none of them, nor the epoch: it is a test.
    target = DomainStats.of(copies[0])
    head_x = unit_scale(np.concatenate([standardise_by_domain(f, train_domains) for f in copies]))
    head_y = np.tile(y_train, len(copies))
    val_x = unit_scale(target.apply(val_features))
    head, history, epochs_from = fit_head(config, dataset, head_x, head_y, len(copies), val_x, y_val, contract.num_classes, log)

    model = assemble_model(contract, backbone, head, target, trait_head)
    probabilities, embeddings = model.predict(x_val.astype(np.float32), batch_size=config.feature_batch, verbose=0)[:2]
    metrics = evaluate(probabilities, y_val, contract.labels)
    metrics["epochs_from"] = epochs_from
    head_weights = classifier_arrays(model)
    metrics["device_adaptation"] = device_adapted(head_weights, embeddings, y_val, contract.labels, config.seed)
    # The old protocol's figure, for continuity: the validation style standardised by its own
    # statistics, computed from the very pictures measured (not a held-out figure).
    own = head.predict(LOGIT_SCALE * unit_scale(DomainStats.of(val_features).apply(val_features)), verbose=0)
    metrics["own_statistics_reference"] = {k: v for k, v in evaluate(own, y_val, contract.labels).items() if k in ("top1", "top5")}
    log(f"validation ({len(y_val)} images, held out): top-1 {metrics['top1']:.3f}, top-5 {metrics['top5']:.3f}, "
        f"macro top-1 {metrics['macro_top1']:.3f} with the shipped statistics; device-adapted top-1 "
        f"{metrics['device_adaptation']['top1']:.3f}; (own statistics, not held out: {metrics['own_statistics_reference']['top1']:.3f})")

    standardised = standardise_by_domain(copies[0], train_domains)
    gallery = l2_normalise(np.stack([
        l2_normalise(standardised)[y_train == c].mean(axis=0) for c in range(contract.num_classes)
    ]))
    shown = shown_pictures(dataset)
    pictures = picture_arrays(dataset, shown, standardised, traits,
                              load_match_weights(config) if trait_head is not None else None)

    face_domain = face_calibration(config, contract, model)

    models_dir = Path(config.models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = make_staging(models_dir, ".train-")  # also removes those of runs that were killed
    try:
        model.save(staging / KERAS_FILE)
        (staging / LABELS_FILE).write_text("\n".join(contract.labels) + "\n")
        # model_sha256 binds the gallery to this model: the device refuses it beside a .tflite converted
        # from another training run (its sidecar's source_model_sha256), instead of mixing the two.
        np.savez(staging / GALLERY_FILE, labels=np.array(contract.labels), embeddings=gallery.astype(np.float32),
                 model_sha256=np.array(sha256_file(staging / KERAS_FILE)), **face_domain.pop("arrays"), **pictures,
                 **head_weights)
        (staging / "history.json").write_text(json.dumps({"head": history}, indent=1))
        plot_history(history, staging / "training_curves.png")
        plot_confusion(np.asarray(metrics["confusion"]), contract.labels, staging / "confusion_matrix.png")
        write_characters(dataset, shown, staging / CHARACTERS_DIR)
        if traits is not None:
            by_character: dict[str, list[str]] = {name: [] for name in contract.labels}
            for path, target in zip(dataset.train.files, dataset.train.targets):
                by_character[contract.labels[target]].append(style_relative(dataset, path))
            write_character_traits(traits.characters(by_character), staging / CHARACTER_TRAITS_FILE)
        card = _model_card(config, weights, dataset, contract, metrics, time.time() - started)
        card["face_domain"] = face_domain
        card["character_traits"] = CHARACTER_TRAITS_FILE if traits is not None else None
        card["trait_head"] = None if trait_head is None else {
            "file": str(config.traits or "data/face-traits/trait_head.npz"), "traits": list(trait_head.traits),
            "feature_layer": trait_head.feature_layer, "backbone_sha256": trait_head.backbone_sha256,
            "same_backbone_weights": trait_head.metrics.get("same_backbone_weights"),
            "test_auc": {t: m.get("test_auc") for t, m in trait_head.metrics.get("traits", {}).items()},
            "licence": trait_head.metrics.get("licence"),
        }
        (staging / MODEL_CARD_FILE).write_text(json.dumps(card, indent=1))
        publish(staging, models_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"wrote {models_dir / KERAS_FILE} and its model card in {time.time() - started:.0f} s")
    return card


def load_trait_head(config: TrainConfig, backbone, contract: InputContract, log):
    """The face-trait head to attach, or None (``--no-traits``, or the shipped head does not fit)."""
    from train.traits import DEFAULT_HEAD, TraitHead, TraitHeadError, check_compatible

    if not config.use_traits:
        return None
    path = config.traits or DEFAULT_HEAD
    try:
        head = TraitHead.load(path)
        same_weights = check_compatible(head, backbone, contract)
    except TraitHeadError as exc:
        if config.traits:
            raise DatasetError(str(exc)) from exc
        log(f"warning: no face traits: {exc}")
        return None
    if not same_weights:
        # Same network, other weights (Keras' ImageNet download is not byte-identical to the copy the
        # shipped head was trained on): the head still reads the same kind of features, less exactly.
        log(f"warning: the trait head {path} was trained on other backbone weights (sha256 "
            f"{head.backbone_sha256[:12]}...): its traits may be less accurate; rebuild it for these weights "
            "with 'make traits FACES=path/to/labelled/faces', or train with --no-traits")
    head.metrics["same_backbone_weights"] = same_weights
    log(f"traits: {', '.join(head.traits)} from {path}")
    return head


def load_match_weights(config: TrainConfig) -> tuple[list[str], list[float]] | None:
    """The match's trait weights (tuned by ``python -m train.match``), or None when there are none."""
    from edge.traits import TERM_NAMES
    from train.traits import MATCH_FILE, MatchWeightsError, read_match_weights

    path = Path(config.traits).with_name(MATCH_FILE.name) if config.traits else MATCH_FILE
    if not path.is_file():
        return None
    try:
        weights = read_match_weights(path)
    except MatchWeightsError as exc:
        raise DatasetError(str(exc)) from exc
    return list(TERM_NAMES), [weights[name] for name in TERM_NAMES]


def character_traits(dataset: Dataset):
    """The characters' visible traits (``edge.traits.TraitRules``) from ``traits.csv`` in a training
    folder or the folder above it, or None when there is none. A table that names characters the
    data does not have stops training before it starts."""
    for root in dataset.train_roots:
        for folder in (Path(root), Path(root).parent):
            path = folder / DATASET_TRAITS_FILE
            if path.is_file():
                try:
                    return read_trait_rules(path, dataset.labels)
                except TraitsError as exc:
                    raise DatasetError(str(exc)) from exc
    return None


def face_calibration(config: TrainConfig, contract: InputContract, model) -> dict[str, Any]:
    """The real-face domain for the device's gallery match: mean embedding of face crops."""
    from edge.faces import make_face_detector
    from train.faces import DEFAULT_TEMPERATURE, folder_faces, mirrored, package_faces

    detector = make_face_detector(config.detector)
    crops = folder_faces(Path(config.faces), contract, detector) if config.faces else package_faces(contract, detector)
    source = config.faces or "scikit-image lfw_subset (100) + astronaut"
    if not crops:
        return {"source": None, "faces": 0, "detector": detector.name, "arrays": {}}
    embeddings = model.predict(np.stack(mirrored(crops)).astype(np.float32), batch_size=config.feature_batch, verbose=0)[1]
    face_mean = l2_normalise(embeddings).mean(axis=0)
    arrays = {
        "face_mean": face_mean.astype(np.float32),
        # The gallery is already centred per art style, so the character side needs no further shift.
        "character_mean": np.zeros_like(face_mean, dtype=np.float32),
        "temperature": np.float32(DEFAULT_TEMPERATURE),
    }
    return {"source": source, "faces": len(crops), "detector": detector.name, "temperature": DEFAULT_TEMPERATURE,
            "arrays": arrays}


def _model_card(config, weights, dataset: Dataset, contract, metrics, seconds) -> dict[str, Any]:
    return {
        "format_version": CARD_VERSION,
        "model_file": KERAS_FILE,
        "contract": contract.to_dict(),
        "labels": list(contract.labels),
        "architecture": {
            "input_smoothing": INPUT_SMOOTHING,
            "backbone": f"MobileNetV2 alpha {config.alpha}, features pooled from "
                        f"{' and '.join(feature_layers(config.feature_layer))}, ImageNet weights, frozen",
            "head": "global average pooling -> domain standardisation -> / sqrt(D) (embedding) "
                    f"-> dense softmax (logit scale {LOGIT_SCALE} folded into the kernel)",
            "outputs": list(contract.outputs),
        },
        "target_domain": {
            "source": "training images (every training style together): the prior the device starts from, "
                      "then it learns the statistics of the pictures or faces it sees (edge.style_domain)",
            "roots": [str(p) for p in dataset.train_roots],
            "device_prior_pictures": PRIOR_PICTURES,
        },
        "training": {k: v for k, v in asdict(config).items() if k not in ("models_dir",)} | {
            "weights": "imagenet (download)" if weights == "imagenet" else ("random" if weights is None else str(weights)),
            "seconds": round(seconds, 1),
        },
        "data": {
            "train": [str(p) for p in dataset.train_roots],
            "val": [str(p) for p in dataset.val_roots],
            "val_split": dataset.val_split,
            "seed": config.seed,
            "train_files": [str(p) for p in dataset.train.files],
            "val_files": [str(p) for p in dataset.val.files],
            "train_images": len(dataset.train),
            "val_images": len(dataset.val),
            "skipped_files": dataset.skipped,
            "fingerprint_sha256": dataset.fingerprint(),
        },
        "metrics": {"validation": {k: v for k, v in metrics.items() if k != "confusion"}},
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def cut_split(split, per_class: int, rng: np.random.Generator):
    """At most ``per_class`` pictures of each class, drawn by ``rng`` (quick runs)."""
    from train.data import Split

    out = Split()
    targets = np.asarray(split.targets)
    for c in np.unique(targets):
        rows = np.flatnonzero(targets == c)
        keep = np.sort(rng.permutation(rows)[:per_class])
        out.files += [split.files[i] for i in keep]
        out.targets += [int(c)] * len(keep)
    return out


def _subsample(dataset: Dataset, per_class: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    dataset.train = cut_split(dataset.train, per_class, rng)
    dataset.val = cut_split(dataset.val, per_class, rng)
    return dataset
