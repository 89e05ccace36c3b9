"""What a run of the camera loop measures: frames, FPS over a window, milliseconds per stage, memory."""
from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field

from edge.pipeline import STAGES


@dataclass
class RunSummary:
    """What a run did and how fast: returned as data, printed as one line."""

    frames: int = 0
    dropped: int = 0
    frames_with_faces: int = 0
    classifications: int = 0
    seconds: float = 0.0
    mean_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    stopped_by: str = "end"  # end, user, max_frames, interrupt
    written: list[str] = field(default_factory=list)
    interpreter: str = ""
    still: bool = False  # the source was pictures, not a stream

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        stages = ", ".join(f"{name} {ms:.1f}" for name, ms in self.mean_ms.items() if name != "total" and ms >= 0.05)
        per = f"{self.mean_ms.get('total', 0.0):.1f} ms per {'picture' if self.still else 'frame'}: {stages}"
        if self.still:
            text = f"{_count(self.frames, 'picture')} ({per}); faces found in {self.frames_with_faces}"
        else:
            text = (
                f"{_count(self.frames, 'frame')} in {self.seconds:.1f} s ({self.fps:.1f} FPS, {per}); "
                f"faces in {self.frames_with_faces} frames, {_count(self.classifications, 'classification')}"
            )
        text += f"; peak RSS {self.peak_rss_mb:.0f} MB"
        if self.dropped:
            text += f"; {_count(self.dropped, 'frame' if not self.still else 'picture')} could not be read and were skipped"
        return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


class FpsMeter:
    """Frames per second over the last ``window`` frames."""

    def __init__(self, window: int = 10):
        self._times: deque[float] = deque(maxlen=max(2, window))

    def tick(self) -> float | None:
        self._times.append(time.perf_counter())
        if len(self._times) < 2:
            return None
        return (len(self._times) - 1) / max(1e-9, self._times[-1] - self._times[0])


class StageAverages:
    """Per-stage milliseconds: a rolling mean for the screen and a run-long mean for the summary."""

    def __init__(self, window: int = 10):
        self._recent: deque[dict[str, float]] = deque(maxlen=max(1, window))
        self._totals = {name: 0.0 for name in STAGES + ("total",)}
        self.count = 0

    def add(self, ms: dict[str, float]) -> None:
        self._recent.append(ms)
        for name, value in ms.items():
            self._totals[name] = self._totals.get(name, 0.0) + value
        self.count += 1

    def recent(self) -> dict[str, float]:
        if not self._recent:
            return {}
        return {name: sum(ms.get(name, 0.0) for ms in self._recent) / len(self._recent) for name in STAGES}

    def overall(self) -> dict[str, float]:
        return {name: total / self.count for name, total in self._totals.items()} if self.count else {}


def peak_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
