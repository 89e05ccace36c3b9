"""What the numbers were measured on: CPU, cores, OS, and the versions of every library involved.

Versions come from package metadata, so TensorFlow is named without being imported (importing it
takes seconds and is not possible on the device).
"""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from benchmarks.latency import all_cores

# (shown name, distributions that provide it, first found wins)
LIBRARIES = (
    ("LiteRT", ("ai-edge-litert", "ai-edge-litert-nightly")),
    ("tflite-runtime", ("tflite-runtime",)),
    ("TensorFlow", ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos")),
    ("Keras", ("keras",)),
    ("OpenCV", ("opencv-python-headless", "opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless")),
    ("NumPy", ("numpy",)),
    ("Matplotlib", ("matplotlib",)),
)


def cpu_model() -> str:
    """The CPU's marketing name; on a Raspberry Pi the board model (its cpuinfo has no model name)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for shown, distributions in LIBRARIES:
        versions[shown] = None
        for distribution in distributions:
            try:
                versions[shown] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def machine_info() -> dict[str, Any]:
    from edge.runtime import ModelError, interpreter_class

    try:
        _, interpreter = interpreter_class()
    except ModelError:
        interpreter = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": all_cores(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "interpreter": interpreter,
        "versions": library_versions(),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for the Markdown report."""
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items() if version)
    return (
        f"{machine['cpu']}, {machine['usable_cores']} of {machine['cores']} cores, {machine['os']} "
        f"{machine['machine']}; Python {machine['python']}; {versions}; interpreter: {machine['interpreter']}"
    )
