"""Draw the results onto a frame: face boxes, top characters with bars, the match's picture, timings."""
from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from edge.contract import read_rgb
from edge.matcher import Ranked
from edge.pipeline import FaceResult
from edge.state import ENROLLED_PREFIX

FONT = cv2.FONT_HERSHEY_SIMPLEX
BOX_COLOR = (80, 220, 80)  # BGR
BAR_COLOR = (200, 125, 45)  # a calm blue under white text
BAR_TRACK = (70, 70, 70)
PANEL_COLOR = (30, 30, 30)
TEXT_COLOR = (255, 255, 255)
NO_FACE_TEXT = "No face in view"
THUMBNAIL = 64
PANEL_WIDTH = 190
COMPACT_WIDTH = 140
COMPACT_ABOVE = 2  # more faces than this: compact panels
ROW_HEIGHT = 20


def display_name(label: str) -> str:
    return label.replace("_", " ")


def drawable(text: str) -> str:
    """Text OpenCV's built-in fonts can draw (ASCII): accents dropped ("Zoë" -> "Zoe"); a letter with
    no ASCII form (other scripts) becomes "?", as OpenCV would draw it. The web page and the JSON
    keep every name as it is."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c if ord(c) < 128 else "?" for c in folded if not unicodedata.combining(c))


def why_text(lookalike) -> str:
    """"glasses, grey hair": the person's traits the shown character shares, for the user."""
    return ", ".join(WORDS.get(t, t.replace("_", " ")) for t in lookalike.why)


WORDS = {"white_hair": "grey hair", "blond_hair": "blond hair", "beard": "facial hair"}


class CharacterPictures:
    """The characters' pictures: ``characters/<label>.png``, or the variant the match chose
    (``characters/<label>/<file>.png``); loaded once and resized on demand."""

    def __init__(self, folder: str | Path | None, enrolled: str | Path | None = None):
        self.folder = Path(folder) if folder else None
        self.enrolled = Path(enrolled) if enrolled else None  # the state folder's enrolled/ pictures
        self._cache: dict[tuple[str, str | None, int], np.ndarray | None] = {}

    def picture(self, label: str, size: int, file: str | None = None) -> np.ndarray | None:
        """BGR ``size`` x ``size`` picture of a character (``file``: the variant), or None if it was not shipped."""
        key = (label, file, size)
        if key not in self._cache:
            self._cache[key] = self._load(file or f"{label}.png", size)
            if self._cache[key] is None and file:
                self._cache[key] = self._load(f"{label}.png", size)
        return self._cache[key]

    def _load(self, name: str, size: int) -> np.ndarray | None:
        folder = self.folder
        if name.startswith(ENROLLED_PREFIX):
            folder, name = self.enrolled, name[len(ENROLLED_PREFIX):]
        if folder is None:
            return None
        path = folder / name
        # Only files inside the folder: a name comes from the gallery or, with --serve, from a request.
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file():
            return None
        try:
            rgb = read_rgb(str(path))
        except ValueError:
            return None
        interpolation = cv2.INTER_AREA if size < max(rgb.shape[:2]) else cv2.INTER_LINEAR
        return cv2.cvtColor(cv2.resize(rgb, (size, size), interpolation=interpolation), cv2.COLOR_RGB2BGR)


def draw_frame(bgr: np.ndarray, faces: Sequence[FaceResult], pictures: CharacterPictures,
               fps: float | None = None, stage_ms: Mapping[str, float] | None = None,
               paused: bool = False) -> np.ndarray:
    """A copy of the frame with every face's lookalikes and the run's speed drawn on it."""
    canvas = bgr.copy()
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w, y + h), BOX_COLOR, 2)
    taken = [tuple(face.box) for face in faces]
    compact = len(faces) > COMPACT_ABOVE  # a crowd: names and bars only, no pictures
    for face in faces:
        panel = place_panel(face.box, panel_size(face, compact), canvas.shape[1], canvas.shape[0], taken)
        taken.append(panel)
        draw_panel(canvas, face, pictures, panel, compact)
    if not faces:
        draw_banner(canvas, NO_FACE_TEXT)
    draw_timings(canvas, fps, stage_ms, paused)
    return canvas


def panel_size(face: FaceResult, compact: bool = False) -> tuple[int, int]:
    rows = ROW_HEIGHT * max(1, len(face.lookalike.top)) + 8
    return (COMPACT_WIDTH, rows) if compact else (PANEL_WIDTH, THUMBNAIL + 4 + rows)


def place_panel(box: Sequence[int], size: tuple[int, int], width: int, height: int,
                taken: Sequence[Sequence[int]]) -> tuple[int, int, int, int]:
    """Where a face's panel covers the fewest faces and other panels: right, left, below, above it."""
    x, y, w, h = box
    pw, ph = size
    candidates = [(x + w + 6, y), (x - 6 - pw, y), (x, y + h + 6), (x, y - 6 - ph)]
    best, best_cost = None, None
    for left, top in candidates:
        left, top = max(0, min(width - pw, left)), max(0, min(height - ph, top))
        panel = (left, top, pw, ph)
        cost = sum(_overlap(panel, other) for other in taken)
        if best_cost is None or cost < best_cost:
            best, best_cost = panel, cost
    return best


def draw_panel(canvas: np.ndarray, face: FaceResult, pictures: CharacterPictures, panel: Sequence[int],
               compact: bool = False) -> None:
    """The match's picture and name, then one bar per top character."""
    left, top, width, height = panel
    _fill(canvas, left, top, width, height, PANEL_COLOR)
    if compact:
        draw_ranking(canvas, face.lookalike.top, left + 4, top + 4, width - 8)
        return
    best = face.lookalike.best
    if best is not None:
        _paste(canvas, pictures.picture(best.label, THUMBNAIL, best.picture), left + 4, top + 4)
        _text(canvas, display_name(best.label), left + THUMBNAIL + 10, top + 24, 0.5)
        _text(canvas, f"{best.score:.0%} ({face.lookalike.method})", left + THUMBNAIL + 10, top + 44, 0.4)
        why = why_text(face.lookalike)
        if why:
            _text(canvas, why, left + THUMBNAIL + 10, top + 62, 0.38)
    draw_ranking(canvas, face.lookalike.top, left + 4, top + THUMBNAIL + 8, width - 8)


def draw_ranking(canvas: np.ndarray, rows: Sequence[Ranked], left: int, top: int, width: int) -> None:
    """One row per character: a bar as long as its score, the name and the score over it."""
    for i, row in enumerate(rows):
        y = top + i * ROW_HEIGHT
        bar = int(round(width * min(max(row.score, 0.0), 1.0)))
        _fill(canvas, left, y + 2, width, ROW_HEIGHT - 4, BAR_TRACK)
        _fill(canvas, left, y + 2, bar, ROW_HEIGHT - 4, BAR_COLOR)
        _text(canvas, f"{display_name(row.label)} {row.score:.2f}", left + 3, y + ROW_HEIGHT - 6, 0.42)


def draw_banner(canvas: np.ndarray, message: str) -> None:
    height, width = canvas.shape[:2]
    (tw, th), _ = cv2.getTextSize(message, FONT, 0.8, 2)
    x, y = max(0, (width - tw) // 2), height - 24
    _fill(canvas, x - 8, y - th - 8, tw + 16, th + 16, PANEL_COLOR)
    _text(canvas, message, x, y, 0.8, 2)


def draw_timings(canvas: np.ndarray, fps: float | None, stage_ms: Mapping[str, float] | None, paused: bool) -> None:
    lines = []
    if fps is not None:
        lines.append(f"FPS {fps:.1f}" + ("  PAUSED" if paused else ""))
    if stage_ms:
        shown = [f"{name} {ms:.1f}" for name, ms in stage_ms.items() if ms >= 0.05]
        for start in range(0, len(shown), 4):
            lines.append("  ".join(shown[start : start + 4]) + (" ms" if start + 4 >= len(shown) else ""))
    for i, line in enumerate(lines):
        _text(canvas, line, 8, 18 + 18 * i, 0.45, outline=True)


def _overlap(a: Sequence[int], b: Sequence[int]) -> int:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def _fill(canvas: np.ndarray, x: int, y: int, w: int, h: int, color: tuple[int, int, int]) -> None:
    if w > 0 and h > 0:
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), color, -1)


def _paste(canvas: np.ndarray, picture: np.ndarray | None, x: int, y: int) -> None:
    if picture is None:
        return
    h, w = picture.shape[:2]
    height, width = canvas.shape[:2]
    h, w = min(h, height - y), min(w, width - x)
    if h > 0 and w > 0 and x >= 0 and y >= 0:
        canvas[y : y + h, x : x + w] = picture[:h, :w]


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float, thickness: int = 1, outline: bool = False) -> None:
    text = drawable(text)
    if outline:  # dark outline keeps the text readable on any background
        cv2.putText(canvas, text, (x, y), FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), FONT, scale, TEXT_COLOR, thickness, cv2.LINE_AA)
