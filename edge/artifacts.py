"""What lives in ``models/`` and how any file is written: the one owner of both.

Every stage names the files of ``models/`` through these constants (training writes the Keras
model, the labels, the gallery, the model card and the character pictures; converting writes one
``.tflite`` and its sidecar per variant, the report and the manifest), and every file written in
one go (JSON, NumPy archives, PNGs, reports, state) goes through ``atomic_write_bytes``: written
under a temporary name in the same folder, flushed to disk, then renamed into place, so a reader
(or a crash, or Ctrl-C) sees the old file or the new one, never half of one.

Device side: no TensorFlow here.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------- the files of models/

KERAS_FILE = "lookalike.keras"
LABELS_FILE = "labels.txt"
GALLERY_FILE = "gallery.npz"
MODEL_CARD_FILE = "model_card.json"
CHARACTER_TRAITS_FILE = "character_traits.csv"
CHARACTERS_DIR = "characters"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "conversion_report.json"
# What training writes that the device or the benchmarks use (the manifest lists these too).
TRAIN_ARTIFACTS = (KERAS_FILE, MODEL_CARD_FILE, LABELS_FILE, GALLERY_FILE, CHARACTER_TRAITS_FILE)


@dataclass(frozen=True)
class Variant:
    """One converted form of the model: everything each stage needs to know about it."""

    name: str
    what: str
    # Top-1 agreement with Keras below which converting flags it: a fixed value for the float
    # variants, None for the quantized ones (they take convert's --min-agreement).
    min_agreement: float | None
    colour: str  # in the benchmark's plots


# The one variant table: convert (how each is exported: convert.export.EXPORTERS, keyed by these
# names), the agreement check, the device's --variant, the benchmark and its plots all read it.
# float32 differs from Keras only in the order of float operations: under 99% means a broken
# conversion. float16 rounds every weight by up to 0.05%, which on the 60-class emoji models
# (answers on small margins) flips 1-4% of the top-1 answers (measured), so it is held to 95%.
VARIANT_TABLE = (
    Variant("float32", "float weights and math: the faithful reference", 0.99, "#1f77b4"),
    Variant("float16", "float16 weights (half the file), float math", 0.95, "#2ca02c"),
    Variant("dynamic", "int8 weights, activations quantized on the fly", None, "#ff7f0e"),
    Variant("int8", "int8 weights and activations, uint8 camera pixels in", None, "#d62728"),
)
VARIANTS = tuple(v.name for v in VARIANT_TABLE)


def variant_info(name: str) -> Variant:
    for row in VARIANT_TABLE:
        if row.name == name:
            return row
    raise KeyError(f"unknown variant {name!r}; the variants are {', '.join(VARIANTS)}")


def tflite_name(variant: str) -> str:
    return f"lookalike_{variant}.tflite"


def sidecar_name(variant: str) -> str:
    return f"lookalike_{variant}.json"


def model_path(models_dir: str | Path, variant: str) -> Path:
    return Path(models_dir) / tflite_name(variant)


def sidecar_path(tflite_path: str | Path) -> Path:
    return Path(tflite_path).with_suffix(".json")


# ---------------------------------------------------------------- pictures

# Every picture format the project reads (through ``edge.contract.read_rgb``): training data,
# calibration and validation images, photos, enrolment pictures, face folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


# ---------------------------------------------------------------- writing

def _default_file_mode() -> int:
    # mkstemp makes owner-only files; artifacts should get the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_file_mode()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
