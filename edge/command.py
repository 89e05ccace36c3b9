"""How every command of the project ends: one owner for the exit codes and the last line.

A user error is one line on stderr (``error: ...``, or the command's own prefix) and exit 1 (a bad
value on the command line, caught before any work: ``refuse``, exit 2, as argparse does); Ctrl-C
and SIGTERM (``kill``, systemd stopping a service) are the same interruption: the command's line
saying what was kept, and exit 130. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import contextlib
import signal
import sys
from typing import Callable, Iterator

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # a bad value on the command line, refused before any work (argparse's own code)
EXIT_INTERRUPTED = 130


def refuse(problem: str) -> int:
    """A value on the command line that cannot work, refused before any work starts: ``error: <problem>``
    on stderr; returns ``EXIT_USAGE`` for the command to exit with."""
    print(f"error: {problem}", file=sys.stderr)
    return EXIT_USAGE


@contextlib.contextmanager
def stop_signal_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, systemd stopping a service) raises KeyboardInterrupt like
    Ctrl-C, so the same clean-up runs: staging removed, finished outputs and learned state kept."""
    def stop(signum, frame):  # noqa: ARG001 - the signal module's signature
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave the handler alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(
    body: Callable[[], int | None],
    errors: tuple[type[BaseException], ...],
    interrupted: str,
    *,
    prefix: str = "error",
    error_code: int = EXIT_ERROR,
    cannot_write: str | None = None,
) -> int:
    """Run ``body()`` and return its exit code (None counts as 0).

    - an exception of ``errors``: ``<prefix>: <message>`` on stderr, ``error_code``;
    - with ``cannot_write`` set, an OSError too: ``<prefix>: <cannot_write>: <reason>``, ``error_code``;
    - Ctrl-C or SIGTERM: ``interrupted`` on stderr, ``EXIT_INTERRUPTED``.
    """
    try:
        with stop_signal_as_interrupt():
            code = body()
    except errors as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return error_code
    except OSError as exc:
        if cannot_write is None:
            raise
        print(f"{prefix}: {cannot_write}: {exc.strerror or exc}", file=sys.stderr)
        return error_code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if code is None else int(code)
