"""The lookalike card: your face, the character it matches, and the top characters with scores."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from edge.contract import InputContract, crop_face, prepare_image
from edge.outputs import write_image
from edge.overlay import FONT, CharacterPictures, display_name, drawable, why_text
from edge.pipeline import FaceResult

CARD_WIDTH = 720
PICTURE = 300
MARGIN = 30
BACKGROUND = (250, 246, 240)  # BGR
INK = (40, 40, 40)
BAR_COLOR = (60, 180, 255)
BAR_TRACK = (225, 220, 215)


def render_card(face: FaceResult, pictures: CharacterPictures, caption: str = "",
                frame: np.ndarray | None = None, contract: InputContract | None = None) -> np.ndarray:
    """A BGR card image for one classified face.

    With the frame (BGR) and the contract, the face is cut from the frame at card resolution with
    the model's own framing; otherwise the model input itself is enlarged.
    """
    rows = face.lookalike.top
    why = why_text(face.lookalike)
    height = MARGIN + 40 + PICTURE + 40 + (30 if why else 0) + 36 * len(rows) + 30 + MARGIN
    card = np.full((height, CARD_WIDTH, 3), BACKGROUND, np.uint8)
    best = face.lookalike.best
    title = f"You look like: {display_name(best.label)}" if best else "No lookalike found"
    _centered(card, title, MARGIN + 24, 0.9, 2)

    top = MARGIN + 40
    left_x, right_x = MARGIN, CARD_WIDTH - MARGIN - PICTURE
    you = _face_picture(face, frame, contract)
    if you is not None:
        card[top : top + PICTURE, left_x : left_x + PICTURE] = you
    character = pictures.picture(best.label, PICTURE, best.picture) if best else None
    if character is not None:
        card[top : top + PICTURE, right_x : right_x + PICTURE] = character
    else:
        cv2.rectangle(card, (right_x, top), (right_x + PICTURE, top + PICTURE), BAR_TRACK, -1)
        _put(card, "(no picture shipped)", right_x + 60, top + PICTURE // 2, 0.5)
    _put(card, "=", CARD_WIDTH // 2 - 12, top + PICTURE // 2 + 14, 1.4, 3)
    _put(card, "you", left_x, top + PICTURE + 26, 0.6)
    if best:
        _put(card, f"{display_name(best.label)} ({best.score:.0%})", right_x, top + PICTURE + 26, 0.6)
    y = top + PICTURE + 40
    if why:
        _centered(card, f"you both have: {why}", y + 20, 0.6, 1)
        y += 30
    bar_left, bar_width = MARGIN + 230, CARD_WIDTH - 2 * MARGIN - 230 - 60
    for rank, row in enumerate(rows, start=1):
        _put(card, f"{rank}. {display_name(row.label)}", MARGIN, y + 22, 0.6)
        cv2.rectangle(card, (bar_left, y + 8), (bar_left + bar_width, y + 26), BAR_TRACK, -1)
        filled = int(round(bar_width * min(max(row.score, 0.0), 1.0)))
        if filled > 0:
            cv2.rectangle(card, (bar_left, y + 8), (bar_left + filled, y + 26), BAR_COLOR, -1)
        _put(card, f"{row.score:.2f}", bar_left + bar_width + 8, y + 22, 0.55)
        y += 36
    footer = f"scores: {face.lookalike.method}" + (f"  |  {caption}" if caption else "")
    _put(card, footer, MARGIN, height - MARGIN + 6, 0.45)
    return card


def save_card(path: str | Path, face: FaceResult, pictures: CharacterPictures, caption: str = "",
              frame: np.ndarray | None = None, contract: InputContract | None = None) -> Path:
    return write_image(path, render_card(face, pictures, caption, frame, contract))


def main_face(faces: list[FaceResult]) -> FaceResult | None:
    """The face a card is about: the largest in the picture."""
    return max(faces, key=lambda f: f.box[2] * f.box[3], default=None)


def _face_picture(face: FaceResult, frame: np.ndarray | None, contract: InputContract | None) -> np.ndarray | None:
    if frame is not None and contract is not None and face.box[2] > 0 and face.box[3] > 0:
        framing = dataclasses.replace(contract, input_size=PICTURE)
        if face.box == (0, 0, frame.shape[1], frame.shape[0]):  # the whole picture (--full-frame)
            return prepare_image(frame, framing)
        return crop_face(frame, face.box, framing)
    if face.crop is not None:
        return _square(cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR), PICTURE)
    return None


def _square(bgr: np.ndarray, size: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if size < bgr.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(bgr, (size, size), interpolation=interpolation)


def _put(card: np.ndarray, text: str, x: int, y: int, scale: float, thickness: int = 1) -> None:
    cv2.putText(card, drawable(text), (x, y), FONT, scale, INK, thickness, cv2.LINE_AA)


def _centered(card: np.ndarray, text: str, y: int, scale: float, thickness: int) -> None:
    (width, _), _ = cv2.getTextSize(drawable(text), FONT, scale, thickness)
    _put(card, text, max(0, (card.shape[1] - width) // 2), y, scale, thickness)
