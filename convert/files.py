"""Writing artifacts safely: atomic writes, sha256, the manifest of everything in models/."""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from edge.runtime import VARIANTS, sha256_file

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
REPORT_NAME = "conversion_report.json"
# What make train writes that the device or the benchmarks use (the manifest lists them too).
TRAIN_ARTIFACTS = ("lookalike.keras", "model_card.json", "labels.txt", "gallery.npz", "character_traits.csv")
CHARACTERS_DIR = "characters"


def _default_file_mode() -> int:
    # mkstemp makes owner-only files; artifacts should get the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_file_mode()


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


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
        names += [f"lookalike_{variant}.tflite", f"lookalike_{variant}.json"]
    names.append(REPORT_NAME)
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
    atomic_write_json(models_dir / MANIFEST_NAME, manifest)
    return manifest
