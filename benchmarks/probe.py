"""The measuring child process: latency samples, load time and peak memory, away from the parent.
(The camera pipeline is measured by the device's own command, ``python -m edge``: see
``benchmarks.pipeline``.)

Why a child process: the thread count of TensorFlow is fixed once per process; peak memory
(``VmHWM``) is per process, so a variant's memory can only be told apart from the others' and from
the parent's 100 MB of decoded validation images in a fresh process; and a probe that runs only
TFLite models never imports TensorFlow, exactly as on the device.

Run by ``benchmarks.latency`` (never by hand):
    python -m benchmarks.probe REQUEST.json RESULT.json
Progress goes to stderr as ``@progress done/total`` lines, which the parent turns into its count.
"""
from __future__ import annotations

import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.models import KERAS, REFERENCE, ModelEntry

Runner = Callable[[], None]
MEMORY_RUNS = 3  # inferences after loading, so the peak includes the interpreter's working memory


# --- memory --------------------------------------------------------------------------------------

def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes (Linux); None elsewhere."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark so the next peak belongs to what runs after (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def current_rss() -> int:
    rss = _status_bytes("VmRSS")
    return rss if rss is not None else peak_rss()


def peak_rss() -> int:
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024  # bytes on macOS, kB on Linux


# --- one inference per model kind ------------------------------------------------------------------

def sample_input(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A fixed pseudo-random input; a CNN's run time does not depend on the pixel values."""
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def tflite_runner(path: Path, threads: int) -> Runner:
    """What the device pays per face: ``LookalikeModel.predict`` (set input, invoke, read outputs)."""
    from edge.runtime import LookalikeModel

    model = LookalikeModel(path, num_threads=threads)
    size = model.contract.input_size
    image = sample_input((size, size, 3), np.dtype(np.uint8))
    return lambda: model.predict(image)


def reference_runner(path: Path, threads: int) -> Runner:
    """The same three steps on a bare interpreter (the reference file has no sidecar)."""
    from edge.runtime import interpreter_class

    cls, _ = interpreter_class()
    interpreter = cls(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    outputs = [d["index"] for d in interpreter.get_output_details()]
    batch = sample_input(tuple(int(v) for v in detail["shape"]), np.dtype(detail["dtype"]))

    def run() -> None:
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        for index in outputs:
            interpreter.get_tensor(index)

    return run


def keras_runner(path: Path, threads: int) -> Runner:
    from benchmarks import keras_model

    keras_model.set_threads(threads)
    model = keras_model.load_keras_model(path)
    size = int(model.inputs[0].shape[1])
    return keras_model.single_image_runner(model, sample_input((size, size, 3), np.dtype(np.uint8)))


def make_runner(entry: ModelEntry, threads: int) -> Runner:
    if entry.kind == KERAS:
        return keras_runner(entry.path, threads)
    if entry.kind == REFERENCE:
        return reference_runner(entry.path, threads)
    return tflite_runner(entry.path, threads)


def preload(entry: ModelEntry) -> None:
    """Import the runtime before the memory baseline, so imports are not counted as the model's."""
    if entry.kind == KERAS:
        from benchmarks import keras_model

        keras_model.import_tensorflow()
        import keras  # noqa: F401
    else:
        from edge.runtime import interpreter_class

        interpreter_class()


# --- the two measurements ----------------------------------------------------------------------------

def load_with_memory(entry: ModelEntry, threads: int) -> tuple[Runner, dict[str, Any]]:
    """Load one model and run it a few times, measuring load time, first run and peak memory."""
    preload(entry)
    gc.collect()
    reset_ok = reset_peak_rss()
    baseline = current_rss()
    started = time.perf_counter()
    runner = make_runner(entry, threads)
    loaded = time.perf_counter()
    runner()
    first = time.perf_counter()
    for _ in range(MEMORY_RUNS - 1):
        runner()
    peak = peak_rss()
    return runner, {
        "load_ms": (loaded - started) * 1000.0,
        "first_run_ms": (first - loaded) * 1000.0,
        "rss_before_load_bytes": baseline,
        "peak_rss_bytes": peak,
        "model_rss_bytes": max(peak - baseline, 0),
        "peak_was_reset": reset_ok,
    }


def measure_latency(
    runners: dict[str, Runner], warmup: int, runs: int, block: int, report: Callable[[int, int], None]
) -> dict[str, list[float]]:
    """Timed single-image runs, interleaved across models in blocks of ``block``.

    Interleaving spreads any change in background load (other processes on a shared machine,
    CPU frequency) over every model alike, so ratios between models stay fair. The first run
    after switching models is untimed: it pays for caches the other model evicted, which a
    camera loop running one model does not. The order of models rotates every round.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    rounds = -(-runs // block) if runs > 0 else 0
    for round_index in range(rounds):
        count = min(block, runs - round_index * block)
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run = runners[name]
            run()
            for _ in range(count):
                started = time.perf_counter()
                run()
                samples[name].append((time.perf_counter() - started) * 1000.0)
        report(round_index + 1, rounds)
    return samples


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    threads = int(request["threads"])
    entries = [ModelEntry.from_dict(item) for item in request["models"]]
    result: dict[str, Any] = {"threads": threads, "memory": {}, "samples_ms": {}}
    runners: dict[str, Runner] = {}
    if request.get("measure_memory"):
        if len(entries) != 1:
            raise ValueError("memory is measured for one model per process")
        runners[entries[0].name], result["memory"][entries[0].name] = load_with_memory(entries[0], threads)
    else:
        runners = {entry.name: make_runner(entry, threads) for entry in entries}

    def report(done: int, total: int) -> None:
        print(f"@progress {done}/{total}", file=sys.stderr, flush=True)

    result["samples_ms"] = measure_latency(
        runners, int(request["warmup"]), int(request["runs"]), int(request["block"]), report
    )
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m benchmarks.probe REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text())
    result = run_request(request)
    out = Path(argv[1])
    partial = out.with_name(out.name + ".tmp")
    partial.write_text(json.dumps(result))
    partial.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
