"""Small helpers shared by the device-side tests."""
from __future__ import annotations

import json
from pathlib import Path

from edge.cli import main
from edge.pipeline import STAGES


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``python -m edge`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def check_record(record: dict, labels: tuple[str, ...], size: tuple[int, int] | None = None) -> None:
    """Assert one JSON line has the documented shape."""
    assert set(record) >= {"source", "faces", "ms"}
    assert isinstance(record["source"], (int, str))
    assert set(record["ms"]) >= set(STAGES) | {"total"}
    assert all(value >= 0 for value in record["ms"].values())
    for face in record["faces"]:
        x, y, w, h = face["box"]
        assert all(isinstance(v, int) for v in face["box"]) and w > 0 and h > 0
        if size is not None:
            assert 0 <= x and 0 <= y and x + w <= size[0] + 1 and y + h <= size[1] + 1
        for key in ("top", "classifier"):
            rows = face[key]
            assert 1 <= len(rows) <= 3
            assert all(row["label"] in labels and 0.0 <= row["score"] <= 1.0 for row in rows)
            assert [row["score"] for row in rows] == sorted((row["score"] for row in rows), reverse=True)
        assert face["method"] in ("classifier", "gallery")


def leftovers(folder: Path) -> list[str]:
    """Temporary files a run should not leave behind."""
    return sorted(p.name for p in Path(folder).iterdir() if ".partial" in p.name)
