"""The OpenCV window of the camera loop: shown frames and the keys pressed (Esc, q, s, space)."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

WINDOW_NAME = "Cartoon lookalike"
ESC = 27


class WindowError(RuntimeError):
    """No window can be shown here; the message says how to run headless instead."""


class Window:
    """An OpenCV window; fails early, with what to do, when OpenCV was built without a GUI."""

    def __init__(self, name: str = WINDOW_NAME):
        self.name = name
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise WindowError(
                "no display to open a window on (DISPLAY is not set): run with --no-window and --output/--json/--card, "
                "or start it from the desktop"
            )
        try:
            cv2.namedWindow(name, cv2.WINDOW_AUTOSIZE)
        except cv2.error as exc:
            raise WindowError(
                "this OpenCV cannot open a window (opencv-python-headless, or no display): run with --no-window "
                "and --output/--json/--card, or install opencv-python instead of opencv-python-headless"
            ) from exc

    def show(self, bgr: np.ndarray, wait_ms: int) -> int:
        """Show a frame; the key pressed (lower-case code) or -1. ``wait_ms`` 0 waits for a key.

        Closing the window counts as Esc. Waiting for a key polls, because a blocking
        waitKey(0) does not return when the window is closed with the mouse on some backends.
        """
        cv2.imshow(self.name, bgr)
        while True:
            key = cv2.waitKey(wait_ms if wait_ms > 0 else 100)
            if key != -1:
                return key & 0xFF
            if self.closed():
                return ESC
            if wait_ms > 0:
                return -1

    def closed(self) -> bool:
        try:
            return cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.name)
        except cv2.error:
            pass
