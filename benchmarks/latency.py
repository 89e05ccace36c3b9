"""Latency, load time and memory of every model, measured in child processes (``benchmarks.probe``).

The plan, per thread count: one child times all TFLite models (and the reference) interleaved;
the Keras model gets a child of its own, because TensorFlow's thread count is fixed per process
and TensorFlow's idle worker threads should not sit beside the TFLite timings. Load time and
peak memory come from one fresh child per model (the Keras one doubles as its 1-thread latency
run, which saves importing TensorFlow a third time).
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import BenchmarkError
from benchmarks.models import KERAS, ModelEntry
from benchmarks.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
STDERR_LINES_KEPT = 12


@dataclass(frozen=True)
class LatencyPlan:
    warmup: int = 20  # untimed runs per model first: XNNPACK packs weights, caches fill, clocks rise
    runs: int = 200  # timed single-image runs per model and thread count (p99 needs a few hundred)
    block: int = 10  # consecutive runs of one model before the next model's turn
    threads: tuple[int, ...] = (1,)


class ProbeFailed(RuntimeError):
    """A measuring child process exited with an error; carries the end of its stderr."""


def all_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def summarize(samples_ms: list[float]) -> dict[str, Any]:
    """Percentiles of a list of per-run times in ms (the samples are kept for plots and comparisons)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "runs": int(values.size),
        "samples": [round(float(v), 4) for v in values],
    }


def run_probe(request: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """Run ``python -m benchmarks.probe`` on one request; forward its progress; return its result."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="benchmark-probe-") as tmp:
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request))
        command = [sys.executable, "-m", "benchmarks.probe", str(request_path), str(result_path)]
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        with subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as child:
            for line in child.stderr:
                if line.startswith("@progress ") and progress is not None:
                    done, total = line.split()[1].split("/")
                    progress.set(round(progress.total * int(done) / max(int(total), 1)))
                elif line.strip():
                    tail.append(line.rstrip())
            code = child.wait()
        if code != 0 or not result_path.is_file():
            subject = ", ".join(m["name"] for m in request["models"]) or request.get("mode", "child process")
            last = tail[-1] if tail else f"exit status {code}"
            raise ProbeFailed(f"measuring {subject} failed: {last}")
        return json.loads(result_path.read_text())


def _request(entries: list[ModelEntry], threads: int, plan: LatencyPlan, memory: bool, runs: int) -> dict[str, Any]:
    return {
        "models": [entry.to_dict() for entry in entries],
        "threads": threads,
        "warmup": plan.warmup if runs else 0,
        "runs": runs,
        "block": plan.block,
        "measure_memory": memory,
    }


@dataclass
class Measurements:
    """Latency summaries per model and thread count, memory per model, and what went wrong."""

    latency: dict[str, dict[str, dict[str, Any]]]  # name -> str(threads) -> summary
    memory: dict[str, dict[str, Any]]
    notes: list[str]


def measure_all(entries: list[ModelEntry], plan: LatencyPlan, show_progress: bool = True) -> Measurements:
    """Every latency and memory measurement for ``entries``; a failing Keras child becomes a note."""
    result = Measurements({entry.name: {} for entry in entries}, {}, [])
    keras = [entry for entry in entries if entry.kind == KERAS]
    others = [entry for entry in entries if entry.kind != KERAS]
    for entry in others:
        progress = Progress(f"memory and load time, {entry.name}", 1, enabled=show_progress)
        measured = run_probe(_request([entry], 1, plan, memory=True, runs=0))
        result.memory.update(measured["memory"])
        progress.set(1)
        progress.close()
    for threads in plan.threads:
        progress = Progress(f"latency, {threads} thread(s), {len(others)} TFLite models", 100, enabled=show_progress)
        measured = run_probe(_request(others, threads, plan, memory=False, runs=plan.runs), progress)
        progress.close()
        for name, samples in measured["samples_ms"].items():
            result.latency[name][str(threads)] = summarize(samples)
    for entry in keras:
        _measure_keras(entry, plan, result, show_progress)
    return result


def _measure_keras(entry: ModelEntry, plan: LatencyPlan, result: Measurements, show_progress: bool) -> None:
    for threads in plan.threads:
        first = threads == plan.threads[0]
        progress = Progress(f"latency, {threads} thread(s), Keras", 100, enabled=show_progress)
        try:
            measured = run_probe(_request([entry], threads, plan, memory=first, runs=plan.runs), progress)
        except ProbeFailed as exc:
            progress.close("failed")
            result.notes.append(f"Keras latency with {threads} thread(s) not measured ({exc})")
            continue
        progress.close()
        result.memory.update(measured["memory"])
        result.latency[entry.name][str(threads)] = summarize(measured["samples_ms"][entry.name])


def thread_counts(requested: tuple[int, ...] | None) -> tuple[int, ...]:
    """1 thread (the device default) and all cores, unless the user asked for specific counts."""
    if requested:
        counts = requested
    else:
        counts = (1, all_cores())
    unique = tuple(dict.fromkeys(int(c) for c in counts))
    if any(c < 1 for c in unique):
        raise BenchmarkError(f"thread counts must be at least 1, got {requested}")
    return unique
