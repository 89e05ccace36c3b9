"""The whole camera loop on a recorded 640x480 video: FPS and milliseconds per stage.

This runs edge's own loop (``edge.live.run``) headless, exactly as ``python -m edge VIDEO
--no-window --json FILE`` would, and reads the per-frame stage timings from its JSON lines. Without
``--video`` the video is edge's test video (``edge.video.write_test_video``: a face photo moving
over a plain background). Headless means no drawing: the draw and output stages read 0. It is
kept apart from the model benchmark: when edge, its test video or a face photo is not available,
the section is skipped with a note and everything else still runs.
"""
from __future__ import annotations

import importlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.faces import describe_detector, make_face_detector
from edge.runtime import VARIANTS, model_path

PREFERRED_VARIANT = "int8"  # what the device runs
VIDEO_SIZE = (640, 480)


@dataclass(frozen=True)
class PipelineConfig:
    models_dir: Path
    video: Path | None = None  # None: edge writes its test video from ``face``
    frames: int = 150
    detector: str = "auto"  # edge's --detector: auto (YuNet when cached, else Haar), haar, or a file
    face: Path | None = None  # photo for the test video; None: scikit-image's astronaut
    threads: int = 1  # the device default
    enabled: bool = True


def _edge_attr(module: str, name: str) -> Any | None:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def face_photo(face: Path | None) -> Path | np.ndarray | str:
    """The photo the test video is made from; a note (str) when there is none."""
    if face is not None:
        return face
    try:
        from skimage import data  # a workstation extra, absent on the device
    except ImportError:
        return "no --video and no face photo (--face PHOTO, or install scikit-image for its astronaut)"
    return data.astronaut()


def write_test_video(folder: Path, frames: int, face: Path | None) -> Path | str:
    """edge's 640x480 test video with a moving face, in ``folder``; a note (str) when impossible."""
    writer = _edge_attr("edge.video", "write_test_video")
    if writer is None:
        return "edge offers no test video writer (edge.video.write_test_video); pass --video FILE"
    photo = face_photo(face)
    if isinstance(photo, str):
        return photo
    return Path(writer(folder / "test_video.mp4", photo, frames=frames, size=VIDEO_SIZE))


def frame_size(video: Path) -> str:
    capture = cv2.VideoCapture(str(video))
    try:
        return f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
    finally:
        capture.release()


def stage_summary(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage: mean ms per frame, share of the frame time, how often it runs, and p50/p90 of
    the frames where it ran.

    Detection and classification run on some frames only (edge skips them in between), so their
    median over all frames would be 0; the mean per frame is what they cost the frame rate, the
    percentiles when run are what one run costs. Stages that never ran (drawing, when headless)
    are left out.
    """
    stages: dict[str, list[float]] = {}
    for record in records:
        for stage, ms in (record.get("ms") or {}).items():
            stages.setdefault(stage, []).append(float(ms))
    total = float(np.mean(stages["total"])) if stages.get("total") else None
    summary = {}
    for stage, values in stages.items():
        array = np.asarray(values)
        ran = array[array > 0]
        if ran.size == 0:
            continue
        p50, p90 = np.percentile(ran, [50, 90])
        summary[stage] = {"mean": float(array.mean()), "share": float(array.mean() / total) if total else None,
                          "run_fraction": float(ran.size / array.size), "p50": float(p50), "p90": float(p90)}
    return summary


def measure_pipeline_in_child(config: PipelineConfig) -> dict[str, Any]:
    """The pipeline in a fresh process, as on the device: not beside the parent's TensorFlow and
    100 MB of decoded images. An error in edge's loop becomes a skipped section with its message."""
    from benchmarks.latency import ProbeFailed, run_probe

    if not config.enabled:
        return {"skipped": "turned off with --no-pipeline"}
    request = {"mode": "pipeline", "models": [], "config": {
        "models_dir": str(config.models_dir), "video": str(config.video) if config.video else None,
        "frames": config.frames, "detector": config.detector, "face": str(config.face) if config.face else None,
        "threads": config.threads,
    }}
    try:
        return run_probe(request)
    except ProbeFailed as exc:
        return {"skipped": f"edge's camera loop failed: {exc}"}


def config_from_request(data: dict[str, Any]) -> PipelineConfig:
    return PipelineConfig(
        models_dir=Path(data["models_dir"]),
        video=Path(data["video"]) if data.get("video") else None,
        frames=int(data["frames"]),
        detector=data.get("detector") or "auto",
        face=Path(data["face"]) if data.get("face") else None,
        threads=int(data.get("threads", 1)),
    )


def measure_pipeline(config: PipelineConfig) -> dict[str, Any]:
    """Run edge's camera loop on the video; {'skipped': reason} when edge or a video is missing."""
    run = _edge_attr("edge.live", "run")
    options_class = _edge_attr("edge.live", "RunOptions")
    if run is None or options_class is None:
        return {"skipped": "edge provides no camera loop (edge.live.run) in this checkout"}
    variant = next((v for v in (PREFERRED_VARIANT,) + VARIANTS if model_path(config.models_dir, v).is_file()), None)
    with tempfile.TemporaryDirectory(prefix="benchmark-pipeline-") as tmp:
        video = config.video if config.video is not None else write_test_video(Path(tmp), config.frames, config.face)
        if isinstance(video, str):
            return {"skipped": video}
        size = frame_size(video)
        records_path = Path(tmp) / "frames.jsonl"
        options = options_class(
            source=str(video), models=config.models_dir, variant=variant, threads=config.threads,
            detector=config.detector, show_window=False, json_path=records_path,
            max_frames=config.frames, quiet=True,
        )
        summary = run(options)
        records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
    frames = [r for r in records if "error" not in r]
    if not frames:
        return {"skipped": f"no frame of {video} could be read"}
    return {
        "video": str(video) if config.video is not None else "edge's test video (moving face, written for this run)",
        "frame_size": size,
        "model": model_path(config.models_dir, variant).name,
        "threads": config.threads,
        "detector": describe_detector(make_face_detector(config.detector), config.detector),
        "frames": summary.frames,
        "fps": summary.fps,
        "detected_frames": sum(1 for r in frames if r.get("detected")),
        "classified_frames": sum(1 for r in frames if r.get("classified")),
        "frames_with_faces": summary.frames_with_faces,
        "dropped_frames": summary.dropped,
        "stages_ms": stage_summary(frames),
        "answers": answer_changes(frames),
    }


def answer_changes(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the shown answer flicker? For each followed face (track), how often its top-1 answer
    differs from the one shown on its previous frame, and how many answers were shown in all."""
    shown: dict[Any, list[str]] = {}
    for record in frames:
        for face in record.get("faces") or []:
            if not face.get("top"):
                continue
            shown.setdefault(face.get("track"), []).append(face["top"][0]["label"])

    def changes(sequences: dict[Any, list[str]]) -> tuple[int, int]:
        steps = sum(max(0, len(seq) - 1) for seq in sequences.values())
        changed = sum(sum(1 for a, b in zip(seq, seq[1:]) if a != b) for seq in sequences.values())
        return changed, steps

    changed, steps = changes(shown)
    labels = [label for seq in shown.values() for label in seq]
    most = max(set(labels), key=labels.count) if labels else None
    return {
        "tracks": len(shown),
        "face_frames": len(labels),
        "changes": changed,
        "changes_per_100_frames": 100.0 * changed / steps if steps else None,
        "distinct": len(set(labels)),
        "most_shown": most,
        "most_shown_share": labels.count(most) / len(labels) if labels else None,
    }
