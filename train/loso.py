"""Leave-one-style-out evaluation (`python -m train --protocol loso`): a figure nothing was tuned to.

The default protocol trains on two art styles and validates on the third, and the validation style
also gives the model its domain statistics and its epoch, so its figure is not a held-out test.
Here each style in turn is the test style, and nothing the fold's model carries comes from it:

- the head trains on the other styles, minus a held-out share of each (``--val-split``, 0.2 by
  default; skin-tone variants of one emoji stay on one side), and that held-out share picks the epoch;
- each training style is standardised by the statistics of its own training share;
- the test style is standardised by the *shipped prior*: the statistics of the training styles'
  training shares together (what the device would carry for a style it has never seen). A second
  figure lets the device adapt as it could in the field: a running estimate that starts from the
  prior and counts each test picture only after that picture has been answered
  (``causal_standardise``), over the test pictures in a seeded random order. A third, labelled as a
  reference only, standardises the test style by its own statistics (the old protocol's way).

The backbone is frozen, so every picture's pooled features (and those of its augmented copies) are
computed once and reused by every fold; the whole protocol costs one feature pass over all styles
plus a few seconds of head training per fold. Only ``loso_report.json`` is written, atomically.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.artifacts import atomic_write_json
from edge.contract import InputContract
from edge.style_domain import PRIOR_PICTURES, causal_standardise
from train.data import (DEFAULT_TRAIN_STYLES, DEFAULT_VAL_STYLES, DatasetError, Styles, check_loso_args, held_out_rows,
                        load_images, load_styles, picture_group)
from train.model import INPUT_SMOOTHING, LOGIT_SCALE
from train.pipeline import (HELD_OUT_SHARE, DomainStats, TrainConfig, copy_plan, cut_split, evaluate, feature_extractor,
                            train_head, training_copies, unit_scale)

LOSO_REPORT_FILE = "loso_report.json"
REP_SIZE = 300  # calibration pictures of a fold's int8 model, as make convert's --rep-size default


@dataclass
class StyleFeatures:
    """One style's pooled features: ``copies[0]`` the originals, then the augmented and noisy copies (each (N, D); ``train.pipeline.training_copies``)."""

    name: str
    targets: np.ndarray
    groups: list[str]  # pictures that differ only by skin tone share a group
    copies: list[np.ndarray]
    files: tuple[Path, ...] = ()  # the pictures, in the order of the rows (for converting a fold's model)


def head_scores(head, standardised: np.ndarray) -> np.ndarray:
    return head.predict(LOGIT_SCALE * unit_scale(standardised), verbose=0)


def top_figures(probabilities: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> dict[str, float]:
    metrics = evaluate(probabilities, targets, labels)
    return {"top1": round(metrics["top1"], 4), "top5": round(metrics["top5"], 4), "macro_top1": round(metrics["macro_top1"], 4)}


def train_fold(config: TrainConfig, styles: list[StyleFeatures], test: int, num_classes: int, log):
    """The head and the shipped prior for one fold; nothing here reads ``styles[test]``."""
    share = config.val_split if config.val_split is not None else HELD_OUT_SHARE
    xs, ys, val_x, val_y, prior_rows = [], [], [], [], []
    sizes = {"fit_images": 0, "held_out_images": 0}
    for index, style in enumerate(styles):
        if index == test:
            continue
        fit, held = held_out_rows(style.targets, style.groups, share, config.seed)
        stats = DomainStats.of(style.copies[0][fit])
        xs += [stats.apply(copy[fit]) for copy in style.copies]
        ys += [style.targets[fit]] * len(style.copies)
        val_x.append(stats.apply(style.copies[0][held]))
        val_y.append(style.targets[held])
        prior_rows.append(style.copies[0][fit])
        sizes["fit_images"] += len(fit)
        sizes["held_out_images"] += len(held)
    if not sizes["held_out_images"]:
        raise DatasetError("the training styles have no pictures to hold out for early stopping "
                           "(each class needs two pictures or more per style)")
    head, history = train_head(config, unit_scale(np.concatenate(xs)), np.concatenate(ys),
                               unit_scale(np.concatenate(val_x)), np.concatenate(val_y), num_classes, log)
    best = int(np.argmax(history["val_accuracy"]))
    sizes.update(best_epoch=best + 1, epochs_run=len(history["loss"]), held_out_top1=round(history["val_accuracy"][best], 4))
    return head, DomainStats.of(np.concatenate(prior_rows)), sizes


def evaluate_fold(config: TrainConfig, styles: list[StyleFeatures], test: int, labels: tuple[str, ...], log,
                  int8=None) -> dict[str, Any]:
    """One fold's figures; with ``int8`` (a ``FoldConversion``), also its model's int8 variant's."""
    head, prior, sizes = train_fold(config, styles, test, len(labels), log)
    style = styles[test]
    features, targets = style.copies[0], style.targets
    order = np.random.default_rng(config.seed).permutation(len(targets))  # the order the device meets them in
    return {
        "test_style": style.name,
        "train_styles": [s.name for i, s in enumerate(styles) if i != test],
        "test_images": len(targets),
        **sizes,
        "shipped_prior": top_figures(head_scores(head, prior.apply(features)), targets, labels),
        "device_adaptation": top_figures(head_scores(head, causal_standardise(prior.apply(features[order]))), targets[order],
                                         labels),
        "test_statistics_reference": top_figures(head_scores(head, DomainStats.of(features).apply(features)), targets, labels),
        **noise_agreement(config, head, prior, style, order),
        **({"int8": int8_figures(config, int8, head, prior, styles, test, labels, order, log)} if int8 is not None else {}),
    }


@dataclass
class FoldConversion:
    """What converting a fold's model needs: the contract, and the frozen backbone the features came from."""

    contract: InputContract
    backbone: Any


def calibration_files(styles: list[StyleFeatures], test: int, seed: int) -> list[Path]:
    """The pictures that calibrate a fold's int8 model: ``REP_SIZE`` of the training styles' pictures,
    class-balanced as ``make convert`` takes them; none of the test style's."""
    from convert.dataset import balanced_sample

    return balanced_sample([f for i, s in enumerate(styles) if i != test for f in s.files], REP_SIZE, seed)


def int8_figures(config: TrainConfig, conversion: FoldConversion, head, prior: DomainStats, styles: list[StyleFeatures],
                 test: int, labels: tuple[str, ...], order: np.ndarray, log) -> dict[str, Any]:
    """The fold's model (its backbone, the shipped prior, its head) converted as ``make convert`` builds
    the int8 variant, calibrated on training-style pictures only (``REP_SIZE``, class-balanced), and
    run by LiteRT on the test style: its top-1 and its top-1 agreement with the fold's Keras answers,
    with the shipped prior and device-adapted (the device's code on the int8 model's embeddings, the
    same order). The Keras answers are the fold's head on the backbone's features: what its Keras
    model computes."""
    import tempfile

    from convert.export import inspect_tflite
    from convert.interpreters import outputs_for
    from convert.pipeline import int8_of
    from train.pipeline import assemble_model

    started = time.time()
    style = styles[test]
    rep = load_images(calibration_files(styles, test, config.seed), conversion.contract)
    model = assemble_model(conversion.contract, conversion.backbone, head, prior)
    with tempfile.TemporaryDirectory(prefix="loso-int8-") as folder:
        exported = int8_of(model, conversion.contract, rep, Path(folder))
    layout = inspect_tflite(exported.model_bytes, conversion.contract)
    positions = {name: layout.outputs[name] for name in ("probabilities", "embedding")}
    outputs = outputs_for(exported.model_bytes, positions, load_images(style.files, conversion.contract))
    features = style.copies[0]
    keras_answer = head_scores(head, prior.apply(features)).argmax(axis=1)
    keras_adapted = head_scores(head, causal_standardise(prior.apply(features[order]))).argmax(axis=1)
    # the embedding output is the standardised features / sqrt(D): back to standardised, then adapted as on the device
    standardised = outputs["embedding"] * np.sqrt(outputs["embedding"].shape[1])
    int8_adapted = head_scores(head, causal_standardise(standardised[order]))
    int8_answer = outputs["probabilities"].argmax(axis=1)
    figures = {
        "agreement": round(float(np.mean(int8_answer == keras_answer)), 4),
        "top1": top_figures(outputs["probabilities"], style.targets, labels)["top1"],
        "keras_top1": round(float(np.mean(keras_answer == style.targets)), 4),
        "device_adaptation": {"agreement": round(float(np.mean(int8_adapted.argmax(axis=1) == keras_adapted)), 4),
                              "top1": top_figures(int8_adapted, style.targets[order], labels)["top1"]},
        "size_bytes": len(exported.model_bytes),
        "calibration_images": len(rep),
        "seconds": round(time.time() - started, 1),
    }
    log(f"  int8: agrees with Keras on {figures['agreement']:.1%} of {style.name} (top-1 {figures['top1']:.3f}, "
        f"Keras {figures['keras_top1']:.3f}); device-adapted {figures['device_adaptation']['agreement']:.1%} "
        f"[{figures['seconds']:.0f} s]")
    return figures


def noise_agreement(config: TrainConfig, head, prior: DomainStats, style: StyleFeatures, order: np.ndarray) -> dict[str, Any]:
    """On the held-out style: the share of pictures whose top-1 is unchanged when every pixel moves by
    +-1 level (the style's +-1 noise copy, ``training_copies``), with the shipped prior and device-adapted
    (the same order, the noisy pictures adapting their own estimate); {} without a +-1 noise copy."""
    plan = copy_plan(config)
    if ("noise", 1) not in plan:
        return {}
    noisy = style.copies[plan.index(("noise", 1))]
    clean = style.copies[0]

    def same(a: np.ndarray, b: np.ndarray) -> float:
        return round(float(np.mean(head_scores(head, a).argmax(axis=1) == head_scores(head, b).argmax(axis=1))), 4)

    return {"noise_agreement": {
        "shipped_prior": same(prior.apply(clean), prior.apply(noisy)),
        "device_adaptation": same(causal_standardise(prior.apply(clean[order])), causal_standardise(prior.apply(noisy[order]))),
    }}


def default_protocol_figure(config: TrainConfig, styles: list[StyleFeatures], labels: tuple[str, ...], log) -> dict[str, Any] | None:
    """The default protocol's figure (twemoji + noto -> openmoji, statistics and epoch from openmoji),
    from the same features, for continuity; None when the styles are not the embedded dataset's."""
    by_name = {s.name: s for s in styles}
    if not set(DEFAULT_TRAIN_STYLES + DEFAULT_VAL_STYLES) <= set(by_name):
        return None
    train = [by_name[n] for n in DEFAULT_TRAIN_STYLES]
    val = by_name[DEFAULT_VAL_STYLES[0]]
    xs, ys = [], []
    for style in train:
        stats = DomainStats.of(style.copies[0])
        xs += [stats.apply(copy) for copy in style.copies]
        ys += [style.targets] * len(style.copies)
    target = DomainStats.of(val.copies[0])
    head, history = train_head(config, unit_scale(np.concatenate(xs)), np.concatenate(ys),
                               unit_scale(target.apply(val.copies[0])), val.targets, len(labels), log)
    return {
        "what": f"the default protocol: trained on {' + '.join(DEFAULT_TRAIN_STYLES)}, validated on {val.name}, whose "
                "own statistics the model carries and on which the epoch was chosen: the tuned-on style, not held out",
        "style": val.name,
        "best_epoch": int(np.argmax(history["val_accuracy"])) + 1,
        **top_figures(head_scores(head, target.apply(val.copies[0])), val.targets, labels),
    }


def style_features(config: TrainConfig, styles: Styles, extractor, rng: np.random.Generator, contract, log, started) -> list[StyleFeatures]:
    out = []
    for name, split in zip(styles.names, styles.splits):
        images = load_images(split.files, contract)
        copies = training_copies(config, extractor, images, rng)
        out.append(StyleFeatures(name, np.asarray(split.targets), [picture_group(p) for p in split.files], copies,
                                 tuple(Path(p) for p in split.files)))
        log(f"features: {name}, {len(images)} pictures x {len(copies)} copies [{time.time() - started:.0f} s]")
    return out


def int8_summary(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The folds' int8 figures: mean and lowest agreement (the goal is per style), mean top-1 of int8 and Keras."""
    agreement = [f["int8"]["agreement"] for f in folds]
    adapted = [f["int8"]["device_adaptation"]["agreement"] for f in folds]
    return {"agreement": round(float(np.mean(agreement)), 4), "lowest_agreement": min(agreement),
            "device_adaptation_agreement": round(float(np.mean(adapted)), 4),
            "top1": round(float(np.mean([f["int8"]["top1"] for f in folds])), 4),
            "keras_top1": round(float(np.mean([f["int8"]["keras_top1"] for f in folds])), 4)}


def mean_of(folds: list[dict[str, Any]], key: str, measures=("top1", "top5", "macro_top1")) -> dict[str, float]:
    return {m: round(float(np.mean([f[key][m] for f in folds])), 4) for m in measures}


def table(report: dict[str, Any]) -> str:
    rows = [f"{'held-out style':<16}{'images':>7}  {'top-1':>6}{'top-5':>7}  {'device-adapted top-1':>21}{'top-5':>7}  "
            f"{'(own statistics) top-1':>23}"]
    for f in report["folds"] + [{"test_style": "mean", "test_images": sum(f["test_images"] for f in report["folds"]),
                                 **report["mean"]}]:
        a, d, r = f["shipped_prior"], f["device_adaptation"], f["test_statistics_reference"]
        rows.append(f"{f['test_style']:<16}{f['test_images']:>7}  {a['top1']:>6.3f}{a['top5']:>7.3f}  {d['top1']:>21.3f}"
                    f"{d['top5']:>7.3f}  {r['top1']:>23.3f}")
    if "noise_agreement" in report["mean"]:
        rows.append("top-1 unchanged under +-1 level pixel noise: " + ", ".join(
            f"{f['test_style']} {f['noise_agreement']['shipped_prior']:.3f} ({f['noise_agreement']['device_adaptation']:.3f} adapted)"
            for f in report["folds"]) + f"; mean {report['mean']['noise_agreement']['shipped_prior']:.3f} "
            f"({report['mean']['noise_agreement']['device_adaptation']:.3f} adapted)")
    if "int8" in report["mean"]:
        rows.append("int8 top-1 agreement with Keras: " + ", ".join(
            f"{f['test_style']} {f['int8']['agreement']:.3f} ({f['int8']['device_adaptation']['agreement']:.3f} adapted)"
            for f in report["folds"]) + f"; mean {report['mean']['int8']['agreement']:.3f}, lowest "
            f"{report['mean']['int8']['lowest_agreement']:.3f}; top-1 int8 {report['mean']['int8']['top1']:.3f} "
            f"against Keras {report['mean']['int8']['keras_top1']:.3f}")
    old = report.get("default_protocol")
    if old:
        rows.append(f"for continuity, {old['style']} under the default protocol (validation = the tuned-on style): "
                    f"top-1 {old['top1']:.3f}, top-5 {old['top5']:.3f}")
    return "\n".join(rows)


def run_loso(config: TrainConfig, log=print) -> dict[str, Any]:
    """Evaluate leave-one-style-out and write ``loso_report.json`` into config.models_dir; returns the report."""
    started = time.time()
    from train.weights import resolve_weights

    styles = load_styles([Path(p) for p in config.data] or None)
    check_loso_args(config.val, config.val_split)
    weights = resolve_weights(config.weights)
    if config.max_per_class:
        rng = np.random.default_rng(config.seed)
        styles.splits = [cut_split(split, config.max_per_class, rng) for split in styles.splits]
    contract = InputContract(labels=styles.labels, input_size=config.input_size)
    log(f"data: {len(styles.roots)} styles ({', '.join(styles.names)}), {contract.num_classes} classes, "
        f"{sum(len(s) for s in styles.splits)} pictures")
    extractor, backbone = feature_extractor(contract, weights, config.alpha, config.feature_layer)
    features = style_features(config, styles, extractor, np.random.default_rng(config.seed), contract, log, started)
    feature_seconds = time.time() - started
    conversion = FoldConversion(contract, backbone) if config.loso_int8 else None
    folds = []
    for test in range(len(features)):
        log(f"fold {test + 1} of {len(features)}: test style {features[test].name}")
        folds.append(evaluate_fold(config, features, test, contract.labels, log, conversion))
    report = {
        "protocol": "leave-one-style-out",
        "data_from": {
            "head": "the training styles minus a held-out share of each",
            "early_stopping": "the held-out share of the training styles (never the test style)",
            "shipped_prior": "standardisation statistics of the training styles' training shares",
            "device_adaptation": f"running statistics from the shipped prior (worth {PRIOR_PICTURES:g} pictures), each "
                                 "test picture answered before it is counted; test pictures in a seeded random order",
            "test_statistics_reference": "the test style's own statistics (computed from the test pictures): "
                                         "a reference only, not a held-out figure",
        },
        "styles": styles.names,
        "roots": [str(r) for r in styles.roots],
        "held_out_share": config.val_split if config.val_split is not None else HELD_OUT_SHARE,
        "folds": folds,
        "mean": {key: mean_of(folds, key) for key in ("shipped_prior", "device_adaptation", "test_statistics_reference")}
        | ({"noise_agreement": mean_of(folds, "noise_agreement", ("shipped_prior", "device_adaptation"))}
           if all("noise_agreement" in f for f in folds) else {})
        | ({"int8": int8_summary(folds)} if all("int8" in f for f in folds) else {}),
        "default_protocol": default_protocol_figure(config, features, contract.labels, log),
        "training": {"weights": "imagenet (download)" if weights == "imagenet" else ("random" if weights is None else str(weights)),
                     "input_size": config.input_size, "feature_layer": config.feature_layer,
                     "input_smoothing": INPUT_SMOOTHING, "augment_copies": config.augment_copies,
                     "noise_copies": list(config.noise_copies), "head_l2": config.head_l2, "epochs": config.epochs, "patience": config.patience,
                     "seed": config.seed, "max_per_class": config.max_per_class,
                     "int8": "make convert's default recipe, calibrated on training-style pictures" if config.loso_int8 else None},
        "seconds": {"features": round(feature_seconds, 1), "total": round(time.time() - started, 1)},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    log(table(report))
    models_dir = Path(config.models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(models_dir / LOSO_REPORT_FILE, report, indent=1)
    log(f"wrote {models_dir / LOSO_REPORT_FILE} in {report['seconds']['total']:.0f} s "
        f"(features {report['seconds']['features']:.0f} s)")
    return report

