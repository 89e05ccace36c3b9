"""The manifest of everything in models/ (sizes and sha256), and checking an output path can be written.

The file names and the atomic writer it uses live in ``edge.artifacts``.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from edge.artifacts import (
    CHARACTERS_DIR,
    MANIFEST_FILE,
    REPORT_FILE,
    TRAIN_ARTIFACTS,
    VARIANTS,
    atomic_write_json,
    sidecar_name,
    tflite_name,
)
from edge.runtime import sha256_file

MANIFEST_VERSION = 1


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_writable(path: Path) -> Path:
    """Fail in a second, not after an hour of work: OSError (one line) when ``path`` cannot be written
    (a folder, a parent that is a file or cannot be created, a read-only folder)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)  # raises for a parent that is a file, or not allowed
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"{path} cannot be written (folder {path.parent} is read-only)")
    return path


def artifact_entry(path: Path, root: Path) -> dict[str, Any]:
    return {
        "path": path.relative_to(root).as_posix(),
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def manifest_files(models_dir: Path) -> list[Path]:
    """Every artifact a stage wrote into models_dir that exists now, in a stable order."""
    names = list(TRAIN_ARTIFACTS)
    for variant in VARIANTS:
        names += [tflite_name(variant), sidecar_name(variant)]
    names.append(REPORT_FILE)
    files = [models_dir / name for name in names if (models_dir / name).is_file()]
    characters = models_dir / CHARACTERS_DIR
    if characters.is_dir():
        files += sorted(p for p in characters.iterdir() if p.is_file() and not p.name.startswith("."))
    return files


def write_manifest(models_dir: Path, extra: Iterable[Path] = ()) -> dict[str, Any]:
    """models_dir/manifest.json: each artifact with its size and sha256."""
    models_dir = Path(models_dir)
    files = manifest_files(models_dir) + [Path(p) for p in extra]
    manifest = {
        "format_version": MANIFEST_VERSION,
        "created": utc_now(),
        "artifacts": [artifact_entry(path, models_dir) for path in files],
    }
    atomic_write_json(models_dir / MANIFEST_FILE, manifest)
    return manifest
