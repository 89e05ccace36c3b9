"""Figures for the report (Matplotlib, Agg backend). Skipped with a note where Matplotlib is missing.

Every figure is drawn from the report dictionary alone, so it shows exactly what benchmark.json says.
"""
from __future__ import annotations

import io

from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.artifacts import VARIANT_TABLE, atomic_write_bytes
from benchmarks.faces import GOAL_MOST_FREQUENT_SHARE, RANKINGS

COLORS = {"keras": "#4c4c4c", **{v.name: v.colour for v in VARIANT_TABLE}, "reference": "#9467bd"}


def import_pyplot() -> Any | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: no display on a server or a headless Pi
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, figure: Any, path: Path) -> None:
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def _first_threads(report: dict[str, Any]) -> str:
    return str(report["settings"]["latency_threads"][0])


def accuracy_vs_latency(plt: Any, report: dict[str, Any]) -> Any | None:
    threads = _first_threads(report)
    rows = [r for r in report["variants"] if r.get("top1") is not None and threads in (r.get("latency_ms") or {})]
    if not rows:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        lat = row["latency_ms"][threads]
        color = COLORS.get(row["name"], "black")
        # A legend rather than labels beside the points: float32 and float16 often sit on top of each other.
        axes.errorbar(lat["p50"], 100 * row["top1"], xerr=[[0], [lat["p90"] - lat["p50"]]], fmt="o",
                      color=color, markersize=4 + 8 * np.sqrt(row["size_bytes"] / max(r["size_bytes"] for r in rows)),
                      capsize=3, alpha=0.8, label=f"{row['name']} ({row['size_bytes'] / 1e6:.1f} MB)")
    reference = next((r for r in report["variants"] if r["name"] == "reference"), None)
    if reference is not None and threads in (reference.get("latency_ms") or {}):
        axes.axvline(reference["latency_ms"][threads]["p50"], color=COLORS["reference"], linestyle="--",
                     label="reference (p50)")
    axes.legend(fontsize=8, loc="best")
    axes.set_xlabel(f"latency per image, {threads} thread(s), ms (dot: p50, bar to p90)")
    axes.set_ylabel("top-1 accuracy, %")
    axes.set_title("Accuracy versus latency (marker area ~ file size)")
    axes.grid(alpha=0.3)
    return figure


def per_class_accuracy(plt: Any, report: dict[str, Any]) -> Any | None:
    rows = [r for r in report["variants"] if r.get("per_class")]
    if not rows:
        return None
    labels = [label for label in report["labels"] if any(r["per_class"].get(label) is not None for r in rows)]
    # Sorted by the first model's accuracy (Keras where present), weakest at the top; the first
    # entry is drawn at the bottom, hence the reversal.
    first = rows[0]["per_class"]
    labels.sort(key=lambda label: (first.get(label) or 0.0, label))
    labels.reverse()
    figure, axes = plt.subplots(figsize=(7, 1.5 + 0.2 * len(labels)))
    positions = np.arange(len(labels))
    for offset, row in enumerate(rows):
        values = [row["per_class"].get(label) for label in labels]
        shown = [(100 * v, p) for v, p in zip(values, positions) if v is not None]
        if shown:
            x, y = zip(*shown)
            axes.scatter(x, np.array(y) + (offset - len(rows) / 2) * 0.08, s=14,
                         color=COLORS.get(row["name"], "black"), label=row["name"])
    axes.set_yticks(positions, labels, fontsize=7)
    axes.set_xlim(-3, 103)
    axes.set_xlabel("accuracy per class, %")
    axes.set_title("Per-class accuracy", pad=22)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(rows), frameon=False)
    return figure


def latency_distributions(plt: Any, report: dict[str, Any]) -> Any | None:
    threads = [str(t) for t in report["settings"]["latency_threads"]]
    # Reversed: boxplot draws its first box at the bottom; the table's first row belongs on top.
    rows = [r for r in report["variants"] if r.get("latency_ms")][::-1]
    if not rows:
        return None
    figure, axes_list = plt.subplots(1, len(threads), figsize=(4.5 * len(threads), 0.8 + 0.5 * len(rows)),
                                     squeeze=False, sharey=True)
    for axes, t in zip(axes_list[0], threads):
        present = [r for r in rows if t in r["latency_ms"] and r["latency_ms"][t].get("samples")]
        data = [r["latency_ms"][t]["samples"] for r in present]
        if not data:
            continue
        parts = axes.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, patch_artist=True,
                             flierprops={"markersize": 2})
        for patch, row in zip(parts["boxes"], present):
            patch.set_facecolor(COLORS.get(row["name"], "white"))
            patch.set_alpha(0.5)
        axes.set_yticks(range(1, len(present) + 1), [r["name"] for r in present])
        flat = np.concatenate([np.asarray(d) for d in data])
        if flat.max() / max(flat.min(), 1e-6) > 20:
            axes.set_xscale("log")  # Keras or a dynamic-range model can be 10x the int8 one
        axes.set_xlabel(f"ms per image, {t} thread(s)")
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle("Latency distributions (box: quartiles, whiskers: p1-p99)")
    return figure


def confusion_matrix(plt: Any, report: dict[str, Any]) -> Any | None:
    int8 = next((r for r in report["variants"] if r["name"] == "int8" and r.get("confusion")), None)
    if int8 is None:
        return None
    counts = np.asarray(int8["confusion"], dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    labels = report["labels"]
    side = 3 + 0.16 * len(labels)
    figure, axes = plt.subplots(figsize=(side, side))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    font = 8 if len(labels) <= 20 else 5
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=font)
    axes.set_yticks(range(len(labels)), labels, fontsize=font)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix, int8 (rows normalised)")
    figure.colorbar(image, ax=axes, fraction=0.03)
    return figure


def top1_counts_figure(plt: Any, report: dict[str, Any]) -> Any | None:
    """Bars: how many faces got each character as their top-1 answer, per ranking (Matplotlib figure)."""
    faces = report.get("faces") or {}
    rankings = faces.get("rankings") or {}
    if not rankings:
        return None
    names = [n for n in RANKINGS if n in rankings]
    tallest = max(len(rankings[n]["variety"]["counts"]) for n in names)
    figure, axes_list = plt.subplots(1, len(names), figsize=(4.2 * len(names), 1.4 + 0.2 * tallest),
                                     squeeze=False, sharex=True)
    for axes, name in zip(axes_list[0], names):
        counts = rankings[name]["variety"]["counts"]
        # Most frequent at the top, every panel with the same slots, so bars compare across panels.
        positions = [tallest - 1 - i for i in range(len(counts))]
        color = "#d62728" if name == faces.get("primary") else "#1f77b4"
        axes.barh(positions, list(counts.values()), color=color)
        axes.set_yticks(positions, list(counts), fontsize=7)
        axes.set_ylim(-0.6, tallest - 0.4)
        axes.axvline(GOAL_MOST_FREQUENT_SHARE * faces["faces"], color="black", linestyle="--", linewidth=1,
                     label=f"goal: at most {GOAL_MOST_FREQUENT_SHARE:.0%} of faces")
        shown = " (shown on the device)" if name == faces.get("primary") else ""
        axes.set_title(f"{name}{shown}: {len(counts)} characters", fontsize=9)
        axes.set_xlabel("faces with this top-1 answer")
        axes.grid(axis="x", alpha=0.3)
        axes.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"Top-1 answers for {faces['faces']} real faces ({faces.get('model', '')})")
    figure.tight_layout()
    return figure


FIGURES: tuple[tuple[str, str, Callable[[Any, dict[str, Any]], Any]], ...] = (
    ("accuracy_vs_latency.png", "Accuracy versus latency", accuracy_vs_latency),
    ("per_class_accuracy.png", "Per-class accuracy", per_class_accuracy),
    ("latency_distributions.png", "Latency distributions", latency_distributions),
    ("confusion_int8.png", "Confusion matrix of int8", confusion_matrix),
    ("faces_top1.png", "Top-1 answers for real faces", top1_counts_figure),
)
FACES_FIGURES = FIGURES[-1:]  # all a --faces-only run can draw


def write_plots(report: dict[str, Any], out_dir: Path, figures=FIGURES) -> tuple[list[dict[str, str]], list[str]]:
    """Draw every figure of ``figures`` the data allows: (written [{file, title}], notes)."""
    plt = import_pyplot()
    if plt is None:
        return [], ["Matplotlib is not installed (normal on the device): plots skipped"]
    written, notes = [], []
    for filename, title, draw in figures:
        figure = draw(plt, report)
        if figure is None:
            notes.append(f"{filename} not drawn: the run has no data for it")
            continue
        _save(plt, figure, out_dir / filename)
        written.append({"file": filename, "title": title})
    return written, notes
