"""The whole camera loop on a recorded 640x480 video: FPS and milliseconds per stage.

This runs the device's own command, ``python -m edge VIDEO --no-window --json FILE --max-frames N``,
in a child process (as on the device: not beside the benchmark's TensorFlow and 100 MB of decoded
images), reads the per-frame stage timings and answers from the JSON lines it writes
(``edge.records``), and its FPS from the summary line it prints when it ends. Without ``--video``
the video is edge's test video (``edge.video.write_test_video``: a face photo moving over a plain
background). Headless means no drawing: the draw and output stages read 0. It is kept apart from
the model benchmark: when edge, its test video or a face photo is not available, or the camera loop
fails, the section is skipped with a note and everything else still runs.
"""
from __future__ import annotations

import collections
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.faces import describe_detector, make_face_detector
from edge.runtime import VARIANTS, model_path

PREFERRED_VARIANT = "int8"  # what the device runs
VIDEO_SIZE = (640, 480)
ROOT = Path(__file__).resolve().parents[1]
# edge.runstats.RunSummary.describe(): "12 frames in 0.4 s (29.5 FPS, ..."
SUMMARY_LINE = re.compile(r"^(\d+) frames? in ([\d.]+) s \(([\d.]+) FPS")


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
    """The pipeline section, or {'skipped': reason} when turned off. The camera loop runs as its own
    process (``python -m edge``), so nothing of this process's memory or threads is counted."""
    if not config.enabled:
        return {"skipped": "turned off with --no-pipeline"}
    return measure_pipeline(config)


def edge_command(config: PipelineConfig, variant: str, video: Path, records: Path) -> list[str]:
    """The device's command line for a headless, timed run over ``video``."""
    command = [sys.executable, "-m", "edge", str(video), "--models", str(config.models_dir), "--variant", variant,
               "--threads", str(config.threads), "--no-window", "--json", str(records),
               "--max-frames", str(config.frames)]
    if config.detector:
        command += ["--detector", str(config.detector)]
    return command


EDGE_TIMEOUT_S = 600.0  # a camera loop over a few hundred frames takes seconds; past this it hangs


def run_edge(command: list[str], timeout_s: float = EDGE_TIMEOUT_S) -> tuple[float | None, str]:
    """Run ``python -m edge``: (its FPS, "") or (None, why it failed: its last error line, or that it hung)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    tail: collections.deque[str] = collections.deque(maxlen=20)
    fps = None
    stopped = threading.Event()
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as child:

        def stop() -> None:
            stopped.set()
            child.kill()

        watchdog = threading.Timer(timeout_s, stop)
        watchdog.start()
        try:
            for line in child.stderr:
                found = SUMMARY_LINE.match(line)
                if found:
                    fps = float(found[3])
                elif line.strip():
                    tail.append(line.rstrip())
            code = child.wait()
        finally:
            watchdog.cancel()
    if stopped.is_set():
        return None, f"python -m edge did not finish within {timeout_s:.0f} s and was stopped"
    if code != 0 or fps is None:
        errors = [line for line in tail if line.startswith("error:")]
        return None, (errors or list(tail) or [f"exit status {code}"])[-1]
    return fps, ""


def measure_pipeline(config: PipelineConfig) -> dict[str, Any]:
    """Run edge's camera loop on the video; {'skipped': reason} when edge or a video is missing."""
    if _edge_attr("edge.cli", "main") is None:
        return {"skipped": "edge provides no camera loop (python -m edge) in this checkout"}
    variant = next((v for v in (PREFERRED_VARIANT,) + VARIANTS if model_path(config.models_dir, v).is_file()), None)
    if variant is None:
        return {"skipped": f"no converted model in {config.models_dir}"}
    with tempfile.TemporaryDirectory(prefix="benchmark-pipeline-") as tmp:
        video = config.video if config.video is not None else write_test_video(Path(tmp), config.frames, config.face)
        if isinstance(video, str):
            return {"skipped": video}
        size = frame_size(video)
        records_path = Path(tmp) / "frames.jsonl"
        fps, failure = run_edge(edge_command(config, variant, video, records_path))
        if fps is None:
            return {"skipped": f"edge's camera loop failed: {failure}"}
        records = [json.loads(line) for line in records_path.read_text().splitlines() if line.strip()]
    frames = [r for r in records if "error" not in r]
    if not frames:
        return {"skipped": f"no frame of {video} could be read"}
    return {
        "video": str(video) if config.video is not None else "edge's test video (moving face, written for this run)",
        "frame_size": size,
        "model": model_path(config.models_dir, variant).name,
        "threads": config.threads,
        "detector": describe_detector(make_face_detector(config.detector)),
        "frames": len(frames),
        "fps": fps,
        "detected_frames": sum(1 for r in frames if r.get("detected")),
        "classified_frames": sum(1 for r in frames if r.get("classified")),
        "frames_with_faces": sum(1 for r in frames if r.get("faces")),
        "dropped_frames": len(records) - len(frames),
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
