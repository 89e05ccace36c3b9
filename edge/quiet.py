"""Keep native libraries' chatter off the user's terminal: the one owner of file-descriptor redirection.

OpenCV's FFmpeg backend and the TFLite runtime write straight to file descriptor 2 ("INFO:
Created TensorFlow Lite XNNPACK delegate", "moov atom not found"), around the one clear line a
user should see; the TFLite converter prints hundreds of lines to descriptors 1 and 2. Python
cannot filter those, so the few calls that produce them run with the descriptors pointed
elsewhere (``fds_redirected``): /dev/null on the device (``native_stderr_silenced``), a log file
whose tail goes into the error message in ``convert.export``. Their failures still reach the
user as Python exceptions that say what went wrong. Set LOOKALIKE_NATIVE_LOGS=1 to see the
device's native messages when debugging.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import IO, Iterator, Sequence, Union

NATIVE_LOGS_ENV = "LOOKALIKE_NATIVE_LOGS"

Target = Union[int, IO, None]


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass  # closed or missing (an embedded interpreter)


@contextmanager
def fds_redirected(target: Target = None, fds: Sequence[int] = (2,)) -> Iterator[None]:
    """Point the file descriptors ``fds`` (default: 2, stderr) at ``target`` for the block.

    ``target`` is an open file (anything with ``fileno()``) or a file descriptor; None means
    /dev/null. What Python buffered for stdout and stderr is flushed on entry (so it lands where it
    was meant to) and before the descriptors are restored (so what the block printed lands in the
    target). Without real descriptors to redirect (an embedded interpreter) the block runs as it is.
    """
    _flush_python_streams()
    saved: list[int] = []
    try:
        for fd in fds:
            saved.append(os.dup(fd))
    except OSError:
        for copy in saved:
            os.close(copy)
        yield  # no real file descriptors: nothing to redirect
        return
    opened = os.open(os.devnull, os.O_WRONLY) if target is None else None
    destination = opened if opened is not None else (target if isinstance(target, int) else target.fileno())
    try:
        for fd in fds:
            os.dup2(destination, fd)
        yield
    finally:
        _flush_python_streams()
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        if opened is not None:
            os.close(opened)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block, unless LOOKALIKE_NATIVE_LOGS=1."""
    if os.environ.get(NATIVE_LOGS_ENV) == "1":
        yield
        return
    with fds_redirected(None, fds=(2,)):
        yield
