"""What the camera loop writes and prints for each frame or picture: JSON records and one-line answers."""
from __future__ import annotations

from typing import Any, Union

from edge.pipeline import FaceResult, FrameResult


def face_record(face: FaceResult) -> dict[str, Any]:
    """One face as JSON: the ``--json`` lines carry it as it is, and the live view's ``/api/latest``
    builds on it (``edge.serve.face_summary`` adds the names the page shows)."""
    def ranked(rows):
        return [{"label": r.label, "score": round(r.score, 4)} for r in rows]

    best = face.lookalike.best
    return {
        "box": [int(v) for v in face.box],
        "track": face.track_id,
        "fresh": face.fresh,
        "method": face.lookalike.method,
        "picture": best.picture if best is not None else None,
        "traits": face.lookalike.traits,
        "why": face.lookalike.why,
        "trait_scores": face.lookalike.trait_scores,
        "top": ranked(face.lookalike.top),
        "classifier": ranked(face.lookalike.classifier),
        "gallery": ranked(face.lookalike.gallery),
    }


def frame_record(label: Union[str, int], result: FrameResult | None, ms: dict[str, float], error: str = "") -> dict[str, Any]:
    """The JSON line for one frame or picture."""
    record: dict[str, Any] = {"source": label, "faces": [face_record(f) for f in result.faces] if result else []}
    if result is not None:
        record["detected"] = result.detected
        record["classified"] = result.classified
    if error:
        record["error"] = error
    record["ms"] = {name: round(value, 2) for name, value in ms.items()}
    return record


def describe_faces(label: Union[str, int], result: FrameResult) -> str:
    if not result.faces:
        return f"{label}: no face found"
    parts = []
    for face in result.faces:
        ranking = ", ".join(f"{r.label} {r.score:.2f}" for r in face.lookalike.top)
        where = "whole picture" if face.box == (0, 0) + tuple(result.size) else f"face at {list(face.box)}"
        parts.append(f"{where}: {ranking}")
    return f"{label}: " + "; ".join(parts)
