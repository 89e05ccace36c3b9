"""The report dictionary -> benchmark.json, benchmark.md (and plots via ``benchmarks.plots``).

The Markdown is rendered from the same dictionary that becomes benchmark.json, so the two never
disagree. Every file is written to a temporary name in the reports folder and renamed into place:
an interrupted run leaves the previous report whole.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from edge.artifacts import atomic_write_text
from benchmarks.compare import RULES
from benchmarks.machine import describe

JSON_FILE = "benchmark.json"
MARKDOWN_FILE = "benchmark.md"
WORSE = " ▼"  # marks a number that got worse than the --compare report beyond noise
MISSING = "-"
WEAKEST_CLASSES_SHOWN = 5
PER_FACE_ROWS = 20  # a per-face table for a handful of photos, not for a hundred crops


def _clean(value: Any) -> Any:
    """JSON has no NaN: a number that could not be computed is null."""
    if isinstance(value, float):
        # Six significant digits are far below measurement noise and keep the file readable.
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(value: Any, indent: int = 0) -> str:
    """Indented JSON in which a list of numbers stays on one line (samples, confusion rows)."""
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(str(k))}: {to_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def write_json(report: dict[str, Any], out_dir: Path) -> Path:
    return atomic_write_text(out_dir / JSON_FILE, to_json(_clean(report)) + "\n")


def write_markdown(report: dict[str, Any], out_dir: Path) -> Path:
    return atomic_write_text(out_dir / MARKDOWN_FILE, render_markdown(report))


# --- formatting helpers ---------------------------------------------------------------------------

def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{100.0 * value:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _megabytes(value: float | None) -> str:
    return MISSING if value is None else f"{value / 1e6:.1f}"


def _times(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}x"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """A Markdown table padded to column width, so it reads in a terminal as well as on GitHub."""
    rows = [list(r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1)) for w, r in zip(widths, right)) + "|"
    return [line(headers), rule] + [line(r) for r in rows]


def _worse_set(report: dict[str, Any]) -> set[tuple[str, str]]:
    comparison = report.get("comparison") or {}
    return {(r["subject"], r["metric"]) for r in comparison.get("regressions", [])}


def _latency(row: dict[str, Any], threads: str, stat: str) -> float | None:
    return ((row.get("latency_ms") or {}).get(threads) or {}).get(stat)


# --- sections -------------------------------------------------------------------------------------

def main_table(report: dict[str, Any]) -> list[str]:
    """One row per model: size, accuracy, agreement, latency p50/p90 per thread count, speed-up."""
    threads = [str(t) for t in report["settings"]["latency_threads"]]
    worse = _worse_set(report)
    headers = ["model", "size MB", "top-1", "top-5", "agreement"]
    for t in threads:
        headers += [f"p50 ms {t}T", f"p90 ms {t}T"]
    headers += [f"speed-up {threads[0]}T"]
    rows = []
    for row in report["variants"]:
        name = row["name"]

        def mark(text: str, metric: str) -> str:
            return text + WORSE if (name, metric) in worse else text

        cells = [
            name,
            mark(_megabytes(row.get("size_bytes")), "size_bytes"),
            mark(_percent(row.get("top1")), "top1"),
            mark(_percent(row.get("top5")), "top5"),
            mark(_percent(row.get("agreement")), "agreement"),
        ]
        for t in threads:
            cells += [mark(_ms(_latency(row, t, "p50")), f"latency_ms.{t}.p50"),
                      mark(_ms(_latency(row, t, "p90")), f"latency_ms.{t}.p90")]
        cells.append(_times((row.get("speedup_vs_float32") or {}).get(threads[0])))
        rows.append(cells)
    return table(headers, rows, [False] + [True] * (len(headers) - 1))


def details_table(report: dict[str, Any]) -> list[str]:
    threads = [str(t) for t in report["settings"]["latency_threads"]]
    worse = _worse_set(report)
    headers = ["model", "macro acc"] + [f"p99 ms {t}T" for t in threads]
    headers += ["load ms", "1st run ms", "peak RSS MB", "model RSS MB"]
    rows = []
    for row in report["variants"]:
        name = row["name"]

        def mark(text: str, metric: str) -> str:
            return text + WORSE if (name, metric) in worse else text

        cells = [name, mark(_percent(row.get("macro_per_class")), "macro_per_class")]
        cells += [_ms(_latency(row, t, "p99")) for t in threads]
        cells += [
            mark(_ms(row.get("load_ms")), "load_ms"),
            _ms(row.get("first_run_ms")),
            _megabytes(row.get("peak_rss_bytes")),
            mark(_megabytes(row.get("model_rss_bytes")), "model_rss_bytes"),
        ]
        rows.append(cells)
    return table(headers, rows, [False] + [True] * (len(headers) - 1))


def goals_section(report: dict[str, Any]) -> list[str]:
    goals = report.get("goals") or []
    if not goals:
        return []
    rows = [[g["goal"], _times(g["value"]), "yes" if g["met"] else "NO"] for g in goals]
    lines = ["## Goals", ""] + table(["goal", "measured", "met"], rows, [False, True, False])
    reference = next((r for r in report["variants"] if r["name"] == "reference"), None)
    if reference is not None:
        lines += ["", f"Reference: `{reference['file']}` (latency only; no labels)."]
    return lines + [""]


def pipeline_section(report: dict[str, Any]) -> list[str]:
    pipeline = report.get("pipeline") or {}
    lines = ["## Camera pipeline", ""]
    if pipeline.get("skipped"):
        return lines + [f"Not measured: {pipeline['skipped']}", ""]
    worse = _worse_set(report)
    fps = f"{pipeline['fps']:.1f}" + (WORSE if ("pipeline", "fps") in worse else "")
    lines.append(
        f"{pipeline['frames']} frames of `{pipeline['video']}` ({pipeline['frame_size']}), model "
        f"`{pipeline['model']}`, detector {pipeline['detector']}: **{fps} FPS** end to end "
        f"({pipeline['classified_frames']} frames classified a face, {pipeline['detected_frames']} ran the detector)."
    )
    lines.append("")
    rows = []
    for stage, summary in pipeline["stages_ms"].items():
        mark = WORSE if ("pipeline", f"stages_ms.{stage}.mean") in worse else ""
        rows.append([stage, _ms(summary["mean"]) + mark, _percent(summary.get("share")),
                     _percent(summary.get("run_fraction")), _ms(summary["p50"]), _ms(summary["p90"])])
    lines += table(["stage", "ms per frame", "share", "runs on", "p50 ms when run", "p90 ms when run"], rows,
                   [False, True, True, True, True, True])
    lines += ["", "Headless (no window), so nothing is drawn; a stage that never ran is not listed."]
    answers = pipeline.get("answers")
    if answers and answers.get("face_frames"):
        per_100 = answers["changes_per_100_frames"]
        lines += ["", f"Flicker: the shown answer changed {answers['changes']} times in {answers['face_frames']} frames "
                      f"with a face ({MISSING if per_100 is None else f'{per_100:.1f}'} per 100 frames, "
                      f"{answers['tracks']} face track(s)); {answers['distinct']} different answers were shown, "
                      f"{answers['most_shown']} on {_percent(answers['most_shown_share'])} of them."]
    return lines + [""]


FACES_CHANGES = ("flip", "brighter", "darker", "jitter")


def _ranking_name(name: str, faces: dict[str, Any]) -> str:
    return f"{name} (shown)" if name == faces.get("primary") else name


def faces_table(report: dict[str, Any]) -> list[str]:
    """One row per ranking of the real faces: variety, then top-1 stability under each small change."""
    faces = report.get("faces") or {}
    rankings = faces.get("rankings") or {}
    if not rankings:
        return [f"Real faces not measured: {faces.get('skipped', 'no faces section')}"]
    rows = []
    for name, ranking in rankings.items():
        variety, stable = ranking["variety"], ranking["stability"]
        top = variety["most_frequent"][0]
        rows.append([
            _ranking_name(name, faces),
            f"{_percent(variety['most_frequent_share'])} {top['label']}",
            f"{variety['distinct']} of {variety['characters']} ({_percent(variety['distinct_share'])})",
            *[_percent(stable.get(change)) for change in FACES_CHANGES],
            _percent(stable.get("mean")),
        ])
    headers = ["ranking", "most frequent top-1", "distinct top-1", *FACES_CHANGES, "stable (mean)"]
    return table(headers, rows, [False, False, False] + [True] * (len(FACES_CHANGES) + 1))


def _top3(ranked: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['label']} {r['score']:.2f}" for r in ranked) or MISSING


def real_faces_section(report: dict[str, Any]) -> list[str]:
    faces = report.get("faces")
    if faces is None:
        return []
    lines = ["## Real faces: variety and stability of the answers", ""]
    if faces.get("skipped"):
        return lines + [f"Not measured: {faces['skipped']}", ""]
    gallery = faces.get("gallery")
    if gallery is None:
        how = "no gallery is shipped"
    else:
        how = (f"gallery: {'centred cosine' if gallery['centred'] else 'plain cosine, no face_mean'}, "
               + (f"temperature {gallery['temperature']:g}" if gallery["calibrated"] else "no temperature")
               + (f"; **adapted**: the same, with the face mean following the faces seen, in order, the shipped "
                  f"mean counting as {gallery['face_prior']:g} faces" if gallery.get("adaptive") else ""))
    missing = faces.get("photos_without_face") or []
    lines += [
        f"{faces['faces']} faces from {faces['source']} ({faces['photos']} pictures"
        + (f"; no face found in {len(missing)}: {', '.join(missing)}" if missing else "") + "), "
        f"model `{faces['model']}`, detector {faces['detector']}. The device shows the "
        f"**{faces['primary']}** ranking ({how}).",
        "",
    ]
    lines += faces_table(report) + [""]
    lines += ["Small changes: " + "; ".join(f"{k}: {v}" for k, v in faces["perturbations"].items())
              + ". Stable: share of faces whose top-1 answer stays.", ""]
    goal_rows = [[_ranking_name(name, faces), g["goal"], _percent(g["value"]), MISSING if g["met"] is None else
                  ("yes" if g["met"] else "NO")] for name, r in faces["rankings"].items() for g in r["goals"]]
    lines += table(["ranking", "goal", "measured", "met"], goal_rows, [False, False, True, False]) + [""]
    for name, ranking in faces["rankings"].items():
        common = ", ".join(f"{m['label']} {m['count']} ({_percent(m['share'])})" for m in ranking["variety"]["most_frequent"])
        lines.append(f"- most frequent answers, {name}: {common}")
    lines.append("")
    lines += sense_lines(faces)
    per_face = faces.get("per_face") or []
    if 0 < len(per_face) <= PER_FACE_ROWS:
        names = [n for n in faces["rankings"]]
        labelled = any("traits" in f for f in per_face)
        rows = [[f["face"]] + ([" ".join(f.get("traits", [])) or MISSING] if labelled else [])
                + [_top3(f.get(n) or []) for n in names] for f in per_face]
        lines += ["Top-3 per face (score 0..1):", ""]
        lines += table(["face"] + (["traits"] if labelled else []) + [_ranking_name(n, faces) for n in names], rows,
                       [False] * (1 + labelled + len(names))) + [""]
    lines += [f"- note: {n}" for n in faces.get("notes", [])]
    return lines + ([""] if faces.get("notes") else [])


def sense_lines(faces: dict[str, Any]) -> list[str]:
    """Do visible traits pull toward the characters that have them (``benchmarks.sense``)?"""
    sense = faces.get("sense")
    if not sense:
        return []
    lines = ["### Sense: visible traits and the characters that have them", "",
             f"{sense['labelled_faces']} faces labelled ({sense['source']}). \"with\": share of the faces with the "
             "trait whose top-3 holds a character with it; \"without\": the same share for the labelled faces "
             "without the trait (chance); lift: with / without.", ""]
    rows = []
    for ranking, traits in sense["rankings"].items():
        for r in traits:
            rows.append([_ranking_name(ranking, faces), r["trait"], f"{r['faces_with']} / {r['faces_without']}",
                         _percent(r["with"]), _percent(r["without"]),
                         MISSING if r["lift"] is None else f"{r['lift']:.2f}"])
    if not rows:
        return lines + ["No labelled face has a trait.", ""]
    return lines + table(["ranking", "trait", "faces with / without", "with", "without", "lift"], rows,
                         [False, False, True, True, True, True]) + [""]


def labelled_faces_section(report: dict[str, Any]) -> list[str]:
    """Labelled faces (CelebA's format), test split: the trait head, the sense of the answers, gender."""
    block = report.get("labelled_faces")
    if not block:
        return []
    shown = block.get("with_traits") or block["without_traits"]
    lines = ["## Labelled faces: do visible traits pull the answer?", "",
             f"{shown['faces']} faces of the **test** split of `{block['source']}` ({block['rule']}; "
             f"{shown['missed']} pictures without a detected face), through `{block['model']}` with mirror averaging "
             f"and the device's matcher (face mean adapting as the faces arrive), detector {block['detector']}. "
             "Nothing here was trained or tuned on: the trait head is trained on the train split, the match's "
             "trait weights are tuned on the validation split.", ""]
    aucs = block.get("trait_auc") or {}
    lines += [f"Trait head, ROC AUC (`{block['model']}` through the device path): "
              + ", ".join(f"{k} {MISSING if v is None else format(v, '.3f')}" for k, v in aucs.items()) + ".", ""]
    rows = []
    for trait, with_traits in (shown["sense"]).items():
        plain = block["without_traits"]["sense"][trait]

        def cell(r):
            if r["with"] is None:
                return MISSING
            lift = MISSING if r["lift"] is None else f"{r['lift']:.1f}"
            return f"{_percent(r['with'])} / {_percent(r['without'])} ({lift})"

        majority = shown["sense_by_character"][trait]
        rows.append([trait, str(with_traits["faces_with"]), str(with_traits["characters"]),
                     cell(with_traits) if block.get("with_traits") else MISSING, cell(majority), cell(plain)])
    lines += ["Per trait: share of people **with** it whose top-3 holds a character with it / the same for people "
              "without it (lift = the ratio), judged by the picture shown for each of the three characters (a "
              "character's pictures differ: a man and a woman, a blond-haired one); beside it the same judged by "
              "the character's majority traits (`character_traits.csv`). Goals: lift >= 2 for 5 of glasses, hat, "
              "bald, white_hair, blond_hair, goatee, mustache; with >= 60% for glasses, bald, white_hair, "
              "blond_hair, beard.", ""]
    lines += table(["trait", "people with it", "characters with it (some picture)", "with traits (shown)",
                    "with traits, by majority", "without traits"], rows,
                   [False, True, True, True, True, True]) + [""]
    summary_rows = []
    for name in ("with_traits", "without_traits"):
        r = block.get(name)
        if not r:
            continue
        v, g, goal = r["variety"], r["gender"], r["goals"]
        summary_rows.append([name.replace("_", " "), f"{_percent(v['most_frequent_share'])} {v['most_frequent']}",
                             f"{v['distinct']} of {v['characters']}",
                             MISSING if g["match"] is None else f"{_percent(g['match'])} of {g['gendered']}",
                             f"{len(goal['lift_traits'])} of 7", f"{len(goal['rate_traits'])} of 5"])
    lines += table(["ranking", "most frequent top-1", "characters", "picture gender right", "lift >= 2", "with >= 60%"],
                   summary_rows, [False, True, True, True, True, True]) + [""]
    stab = block.get("stability") or {}
    if stab.get("mean") is not None:
        lines += [f"Stability (first {stab['faces']} faces, top-1 unchanged, with traits): flip {_percent(stab['flip'])}, "
                  f"brighter {_percent(stab['brighter'])}, darker {_percent(stab['darker'])}, jitter "
                  f"{_percent(stab['jitter'])}; mean {_percent(stab['mean'])} (goal 85%).", ""]
    if block.get("weights"):
        lines += ["Trait weights (tuned on the validation split): "
                  + ", ".join(f"{k} {v:g}" for k, v in block["weights"].items()) + ".", ""]
    lines += [f"- note: {n}" for n in block.get("notes", [])]
    return lines


def weakest_classes(report: dict[str, Any]) -> list[str]:
    rows = {r["name"]: r for r in report["variants"] if r.get("per_class")}
    name = "int8" if "int8" in rows else next(iter(rows), None)
    if name is None:
        return []
    scored = [(acc, label) for label, acc in rows[name]["per_class"].items() if acc is not None]
    scored.sort()
    shown = ", ".join(f"{label} {100 * acc:.0f}%" for acc, label in scored[:WEAKEST_CLASSES_SHOWN])
    return [f"Weakest classes ({name}): {shown}.", ""]


def comparison_section(report: dict[str, Any]) -> list[str]:
    comparison = report.get("comparison")
    if not comparison:
        return []
    lines = ["## Compared with an earlier report", "",
             f"Against `{comparison['against']}` ({comparison.get('against_created') or 'date unknown'}). "
             f"{WORSE.strip()} marks a number worse beyond noise: " + "; ".join(RULES) + ".", ""]
    regressions = comparison.get("regressions") or []
    if not regressions:
        lines.append("Nothing got worse beyond noise.")
    for r in regressions:
        lines.append(f"- {r['subject']} {r['metric']}: {r['old']:.4g} -> {r['new']:.4g} ({r['rule']})")
    lines += [f"- note: {n}" for n in comparison.get("notes", [])]
    return lines + [""]


def plots_section(report: dict[str, Any]) -> list[str]:
    plots = report.get("plots") or []
    if not plots:
        return []
    return ["## Plots", ""] + [f"![{p['title']}]({p['file']})" for p in plots] + [""]


def render_faces_only(report: dict[str, Any]) -> list[str]:
    return [
        "# Benchmark: lookalike answers for real faces",
        "",
        f"Measured {report['created']} on {describe(report['machine'])} (`--faces-only`: "
        "no accuracy, latency or pipeline).",
        "",
    ] + real_faces_section(report) + labelled_faces_section(report) + plots_section(report)


def render_markdown(report: dict[str, Any]) -> str:
    settings = report["settings"]
    if settings.get("faces_only"):
        notes = report.get("notes") or []
        lines = render_faces_only(report) + (["## Notes", ""] + [f"- {n}" for n in notes] if notes else [])
        return "\n".join(lines).rstrip("\n") + "\n"
    threads = ", ".join(str(t) for t in settings["latency_threads"])
    data = (f"{settings['images']} images from {settings['data']}" if settings["images"]
            else "no labeled images (accuracy not measured)")
    lines = [
        "# Benchmark: lookalike models, float versus quantized",
        "",
        f"Measured {report['created']} on {describe(report['machine'])}.",
        "",
        f"Accuracy: {data}, {settings['input_size']} px, TFLite with {settings['accuracy_threads']} threads. "
        f"Latency: one image per run, {settings['runs']} timed runs per model after {settings['warmup']} "
        f"warm-up, models interleaved in blocks of {settings['block']}, with {threads} thread(s) "
        "(`nT` columns). Agreement: share of images with the same top-1 class as the Keras model "
        "(or float32 TFLite where Keras is absent). Speed-up: float32 TFLite median / this median.",
        "",
    ]
    lines += main_table(report) + [""]
    lines += weakest_classes(report)
    lines += goals_section(report)
    lines += ["## Details", ""] + details_table(report) + [
        "",
        "load ms: creating the model in a fresh process (sidecar check, sha256, interpreter, weight "
        "packing); peak RSS: that process after loading and 3 runs; model RSS: peak minus the "
        "process before loading (runtime already imported).",
        "",
    ]
    lines += pipeline_section(report)
    lines += real_faces_section(report)
    lines += labelled_faces_section(report)
    lines += comparison_section(report)
    lines += plots_section(report)
    notes = report.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines).rstrip("\n") + "\n"
