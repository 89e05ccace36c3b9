"""Keep native libraries' chatter off the user's terminal.

OpenCV's FFmpeg backend and the TFLite runtime write straight to file descriptor 2 ("INFO:
Created TensorFlow Lite XNNPACK delegate", "moov atom not found"), around the one clear line a
user should see. Python cannot filter those, so the few calls that produce them run with file
descriptor 2 pointed at /dev/null; their failures still reach the user as Python exceptions that
say what went wrong. Set LOOKALIKE_NATIVE_LOGS=1 to see the native messages when debugging.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

NATIVE_LOGS_ENV = "LOOKALIKE_NATIVE_LOGS"


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    if os.environ.get(NATIVE_LOGS_ENV) == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield  # no real file descriptor 2 (an embedded interpreter): nothing to silence
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
