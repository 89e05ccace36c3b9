"""``--compare OLD.json``: which numbers got worse than an earlier report, beyond noise.

Noise, as defined here (the same rules are written into the report):
- accuracy (top-1, top-5, macro per-class, agreement): a drop of more than 1 point. Accuracy on a
  fixed image set is deterministic, so anything above float round-off is real; 1 point keeps a
  single flipped image on a small set from being flagged.
- latency p50 / p90: more than 10 % slower than before AND slower than the old run's next
  percentile up (p90 for the median, p99 for p90). Timings on a shared machine wander by a few
  percent; a change has to leave the old distribution's bulk to count.
- file size: more than 1 % larger (sizes are exact; 1 % ignores metadata such as timestamps).
- memory: more than 10 % and more than 2 MB above the old peak attributable to the model.
- load time: more than 50 % and more than 20 ms slower (one cold measurement, so noisy).
- camera pipeline: FPS more than 10 % lower; a stage's mean ms per frame more than 10 % and 0.5 ms
  higher.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import BenchmarkError

ACCURACY_KEYS = ("top1", "top5", "macro_per_class", "agreement")
ACCURACY_DROP = 0.01
LATENCY_RATIO = 1.10
SIZE_RATIO = 1.01
MEMORY_RATIO, MEMORY_BYTES = 1.10, 2 * 1024 * 1024
LOAD_RATIO, LOAD_MS = 1.5, 20.0
FPS_RATIO = 0.90
STAGE_RATIO, STAGE_MS = 1.10, 0.5

RULES = (
    "accuracy: > 1 point lower",
    "latency p50/p90: > 10% slower and slower than the old p90/p99",
    "size: > 1% larger",
    "memory: > 10% and > 2 MB more",
    "load time: > 50% and > 20 ms slower",
    "pipeline: FPS > 10% lower; stage ms per frame > 10% and > 0.5 ms higher",
)


@dataclass(frozen=True)
class Regression:
    subject: str  # a variant name, or "pipeline"
    metric: str  # dotted path into the report, e.g. "latency_ms.1.p50"
    old: float
    new: float
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "metric": self.metric, "old": self.old, "new": self.new, "rule": self.rule}


def read_old_report(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    hint = "pass a benchmark.json written by an earlier 'make benchmark'"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BenchmarkError(f"report to compare with, {path}, does not exist: {hint}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"cannot read {path} as JSON ({exc}): {hint}") from exc
    if not isinstance(report, dict) or not isinstance(report.get("variants"), list):
        raise BenchmarkError(f"{path} is not a benchmark report (no 'variants' list): {hint}")
    return report


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _variant_regressions(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[Regression]:
    found = []
    for key in ACCURACY_KEYS:
        was, now = _number(old.get(key)), _number(new.get(key))
        if was is not None and now is not None and now < was - ACCURACY_DROP:
            found.append(Regression(name, key, was, now, "accuracy > 1 point lower"))
    for threads, summary in (new.get("latency_ms") or {}).items():
        before = (old.get("latency_ms") or {}).get(threads) or {}
        for stat, ceiling in (("p50", "p90"), ("p90", "p99")):
            was, now, old_ceiling = _number(before.get(stat)), _number(summary.get(stat)), _number(before.get(ceiling))
            if was is None or now is None:
                continue
            if now > was * LATENCY_RATIO and (old_ceiling is None or now > old_ceiling):
                found.append(Regression(name, f"latency_ms.{threads}.{stat}", was, now,
                                        f"> 10% slower and above the old {ceiling}"))
    checks = (
        ("size_bytes", lambda was, now: now > was * SIZE_RATIO, "> 1% larger"),
        ("model_rss_bytes", lambda was, now: now > was * MEMORY_RATIO and now - was > MEMORY_BYTES, "> 10% and > 2 MB more memory"),
        ("load_ms", lambda was, now: now > was * LOAD_RATIO and now - was > LOAD_MS, "> 50% and > 20 ms slower load"),
    )
    for key, worse, rule in checks:
        was, now = _number(old.get(key)), _number(new.get(key))
        if was is not None and now is not None and worse(was, now):
            found.append(Regression(name, key, was, now, rule))
    return found


def _pipeline_regressions(old: dict[str, Any], new: dict[str, Any]) -> list[Regression]:
    found = []
    was, now = _number(old.get("fps")), _number(new.get("fps"))
    if was is not None and now is not None and now < was * FPS_RATIO:
        found.append(Regression("pipeline", "fps", was, now, "FPS > 10% lower"))
    for stage, summary in (new.get("stages_ms") or {}).items():
        before = (old.get("stages_ms") or {}).get(stage) or {}
        was, now = _number(before.get("mean")), _number(summary.get("mean"))
        if was is not None and now is not None and now > was * STAGE_RATIO and now - was > STAGE_MS:
            found.append(Regression("pipeline", f"stages_ms.{stage}.mean", was, now, "> 10% and > 0.5 ms slower"))
    return found


def find_regressions(old: dict[str, Any], new: dict[str, Any]) -> list[Regression]:
    """Every number in ``new`` that is worse than in ``old`` beyond noise (rules in the module doc)."""
    old_variants = {v.get("name"): v for v in old.get("variants", []) if isinstance(v, dict)}
    found = []
    for variant in new.get("variants", []):
        if variant["name"] in old_variants:
            found += _variant_regressions(variant["name"], old_variants[variant["name"]], variant)
    if isinstance(old.get("pipeline"), dict) and isinstance(new.get("pipeline"), dict):
        found += _pipeline_regressions(old["pipeline"], new["pipeline"])
    return found


def comparison_block(old_path: Path, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What goes into the new report's ``comparison``: the rules, the regressions, and caveats."""
    regressions = find_regressions(old, new)
    notes = []
    old_cpu = (old.get("machine") or {}).get("cpu")
    new_cpu = (new.get("machine") or {}).get("cpu")
    if old_cpu and new_cpu and old_cpu != new_cpu:
        notes.append(f"the old report was measured on another CPU ({old_cpu}): latency changes may be the machine")
    return {
        "against": str(old_path),
        "against_created": old.get("created"),
        "rules": list(RULES),
        "regressions": [r.to_dict() for r in regressions],
        "notes": notes,
    }
