"""Start ``python -m edge --serve`` in a child process and talk to it: the one client of the live view
that the live-view benchmark (``benchmarks.live_view``) and the device tests (``tests/edge``) share.

Standard library only (like ``benchmarks.webdriver``), so the device-only venv's tests import it too.

- ``start_serve``: the child process and the page address it prints (``live view: http://...``);
  the caller owns the process (the benchmark reads its summary line when it ends).
- ``served``: the same as a context manager that stops the child with SIGTERM; yields ``Served``
  (``get``, ``url``, ``latest``, ``wait_for`` on ``/api/latest``).
- MJPEG clients of ``/stream.mjpg``: ``mjpeg_frames`` returns the first JPEGs themselves (parsing
  each part's Content-Length); ``Viewer`` is a thread that only counts frames, reading raw blocks,
  so that clients sharing a machine with the camera loop cost it as little as they can.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
SERVE_START_S = 60.0
STARTED = "live view: "


class ServeNotStarted(RuntimeError):
    """The child exited, or printed no address in time; the message carries its stderr so far."""


def start_serve(args: Sequence, env: dict | None = None,
                timeout: float = SERVE_START_S) -> tuple[subprocess.Popen, str, list[str]]:
    """``python -m edge --serve --port 0 ARGS`` with ``env`` added to the environment; returns once it
    listens: (process, page address, the stderr lines read so far). The caller stops the process."""
    command = [sys.executable, "-m", "edge", "--serve", "--port", "0", *[str(a) for a in args]]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, **(env or {})})
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(STARTED):
            return process, line.split(STARTED, 1)[1].strip(), lines
    stop(process)
    lines.append(process.stderr.read())
    process.stderr.close()
    raise ServeNotStarted(f"--serve did not start: {''.join(lines)}")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (the loop finishes its outputs and prints its summary), then a kill if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def served(args: Sequence, env: dict | None = None) -> Iterator["Served"]:
    """``python -m edge --serve --port 0 ARGS``; yields once it listens; stops it with SIGTERM."""
    process, url, lines = start_serve(args, env)
    try:
        yield Served(process, url, lines)
    finally:
        stop(process)
        if process.stderr is not None:
            lines.append(process.stderr.read())
            process.stderr.close()


class Served:
    def __init__(self, process: subprocess.Popen, url: str, lines: list[str]):
        self.process = process
        self.page_url = url
        self.base = url.split("?")[0].rstrip("/")
        self.token = url.split("token=", 1)[1] if "token=" in url else None
        self.lines = lines

    def url(self, path: str, token: bool = True) -> str:
        query = f"{'&' if '?' in path else '?'}token={self.token}" if token and self.token else ""
        return self.base + path + query

    def get(self, path: str, token: bool = True, method: str = "GET", headers: dict | None = None,
            timeout: float = 10.0) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.url(path, token), method=method, headers=headers or {},
                                         data=b"" if method in ("POST", "PUT") else None)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def latest(self) -> dict:
        status, _, body = self.get("/api/latest")
        if status != 200:
            raise AssertionError(f"/api/latest answered {status}: {body!r}")
        return json.loads(body)

    def wait_for(self, condition, timeout: float = 30.0) -> dict:
        """Poll /api/latest until ``condition(latest)`` holds; the last answer."""
        deadline = time.monotonic() + timeout
        latest = self.latest()
        while not condition(latest):
            if time.monotonic() >= deadline:
                raise AssertionError(f"gave up waiting; last answer: {latest}")
            time.sleep(0.2)
            latest = self.latest()
        return latest


def mjpeg_frames(url: str, count: int, timeout: float = 20.0) -> list[bytes]:
    """The first ``count`` JPEGs of an MJPEG stream (then the connection is closed)."""
    frames: list[bytes] = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        content_type = response.headers["Content-Type"]
        if not content_type.startswith("multipart/x-mixed-replace"):
            raise AssertionError(f"{url} is not an MJPEG stream: {content_type}")
        while len(frames) < count:
            line = response.readline()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.readline()  # the blank line after the part's headers
                frames.append(response.read(length))
    return frames


def count_markers(tail: bytes, block: bytes, marker: bytes) -> tuple[int, bytes]:
    """Boundary markers in a stream read in blocks: (markers completed by ``block``, the tail to keep).
    The tail is one byte shorter than a marker, so a marker cut in two is counted once and none twice."""
    data = tail + block
    return data.count(marker), data[-(len(marker) - 1):]


class Viewer(threading.Thread):
    """An MJPEG client that reads the stream as fast as it comes and counts the frames. It reads
    raw blocks (no parsing per line), so that the viewers, which share this machine with the
    camera loop here but would sit on other machines in use, cost as little as they can."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.frames = 0
        self.started = self.ended = 0.0

    def run(self) -> None:
        from edge.serve import BOUNDARY  # edge's own parts marker (edge.serve needs OpenCV: imported late)

        marker = b"--" + BOUNDARY.encode("ascii")
        tail = b""
        try:
            with socket.create_connection(self.address, timeout=30) as sock:
                sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: viewer\r\n\r\n".encode("ascii"))
                self.started = time.perf_counter()
                while True:
                    block = sock.recv(1 << 16)
                    if not block:
                        break
                    found, tail = count_markers(tail, block, marker)
                    if found:
                        self.frames += found
                        self.ended = time.perf_counter()
        except OSError:
            pass

    @property
    def fps(self) -> float:
        return max(0, self.frames - 1) / (self.ended - self.started) if self.ended > self.started else 0.0
