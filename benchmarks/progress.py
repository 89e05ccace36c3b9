"""A running count on stderr while the benchmark works, so a long run never looks hung."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``label: done/total`` rewritten in place on a terminal; a line per quarter otherwise (logs, CI)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.label = label
        self.total = max(int(total), 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interactive = enabled and self.stream.isatty()
        self._started = time.perf_counter()
        self._last_quarter = 0  # non-terminal output: a line at 25, 50 and 75 %
        self._last_draw = 0.0

    def advance(self, steps: int = 1) -> None:
        self.set(self.done + steps)

    def set(self, done: int) -> None:
        self.done = min(int(done), self.total)
        if not self.enabled:
            return
        if self.interactive:
            now = time.perf_counter()
            # Redrawing on every step would cost more than a fast model's inference.
            if now - self._last_draw >= 0.1 or self.done == self.total:
                self._last_draw = now
                self.stream.write(f"\r{self.label}: {self.done}/{self.total}")
                self.stream.flush()
            return
        quarter = 4 * self.done // self.total
        if quarter > self._last_quarter and self.done < self.total:
            self._last_quarter = quarter
            self.stream.write(f"{self.label}: {self.done}/{self.total}\n")
            self.stream.flush()

    def close(self, summary: str = "") -> None:
        if not self.enabled:
            return
        seconds = time.perf_counter() - self._started
        tail = f" {summary}" if summary else ""
        line = f"{self.label}: {self.done}/{self.total} in {seconds:.1f} s{tail}"
        self.stream.write(f"\r{line}\n" if self.interactive else f"{line}\n")
        self.stream.flush()


def say(message: str, enabled: bool = True) -> None:
    """One status line on stderr (stdout carries the final table)."""
    if enabled:
        print(message, file=sys.stderr, flush=True)
