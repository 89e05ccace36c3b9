"""Start ``python -m edge --serve`` in a child process and talk to it, for the live-view tests."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from shared_paths import ROOT

SERVE_START_S = 60.0


@contextlib.contextmanager
def served(args: list, env: dict | None = None) -> Iterator["Served"]:
    """``python -m edge --serve --port 0 ARGS``; yields once it listens; stops it with SIGTERM."""
    command = [sys.executable, "-m", "edge", "--serve", "--port", "0", *[str(a) for a in args]]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, **(env or {})})
    lines: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + SERVE_START_S
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("live view: "):
                url = line.split("live view: ", 1)[1].strip()
        assert url is not None, f"--serve did not start: {''.join(lines)}"
        yield Served(process, url, lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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
        assert status == 200, body
        return json.loads(body)

    def wait_for(self, condition, timeout: float = 30.0) -> dict:
        """Poll /api/latest until ``condition(latest)`` holds; the last answer."""
        deadline = time.monotonic() + timeout
        latest = self.latest()
        while not condition(latest):
            assert time.monotonic() < deadline, f"gave up waiting; last answer: {latest}"
            time.sleep(0.2)
            latest = self.latest()
        return latest


def mjpeg_frames(url: str, count: int, timeout: float = 20.0) -> list[bytes]:
    """The first ``count`` JPEGs of an MJPEG stream (then the connection is closed)."""
    frames: list[bytes] = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        while len(frames) < count:
            line = response.readline()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                response.readline()  # the blank line after the part's headers
                frames.append(response.read(length))
    return frames


def drawing_video(models: Path, path: Path, frames: int = 90) -> Path:
    """A 640x480 clip of one character picture moving: the tiny model's --full-frame stand-in camera."""
    from edge.video import write_test_video

    picture = sorted((models / "characters").glob("*.png"))[0]
    return write_test_video(path, picture, frames=frames, face_height=0.6)
