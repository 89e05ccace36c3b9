"""edge.quiet owns file-descriptor redirection: native output goes where the block says, and comes back.

Only descriptor-level writes (os.write, as C++ code does): under capfd pytest swaps sys.stdout and
sys.stderr for its own objects, which no descriptor redirection reaches.
"""
from __future__ import annotations

import os
import tempfile

from edge.quiet import NATIVE_LOGS_ENV, fds_redirected, native_stderr_silenced


def test_stderr_silenced_drops_native_writes_and_restores_fd2(capfd, monkeypatch):
    monkeypatch.delenv(NATIVE_LOGS_ENV, raising=False)
    os.write(2, b"before\n")
    with native_stderr_silenced():
        os.write(2, b"native chatter\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err.splitlines() == ["before", "after"]


def test_native_logs_env_keeps_stderr(capfd, monkeypatch):
    monkeypatch.setenv(NATIVE_LOGS_ENV, "1")
    with native_stderr_silenced():
        os.write(2, b"native chatter\n")
    assert "native chatter" in capfd.readouterr().err


def test_both_descriptors_to_a_file_then_back(capfd):
    with tempfile.TemporaryFile(mode="w+b") as log:
        with fds_redirected(log, fds=(1, 2)):
            os.write(1, b"converter stdout\n")
            os.write(2, b"converter stderr\n")
        os.write(1, b"terminal again\n")
        log.seek(0)
        assert log.read().decode().splitlines() == ["converter stdout", "converter stderr"]
    captured = capfd.readouterr()
    assert captured.out == "terminal again\n" and captured.err == ""


def test_descriptors_restored_when_the_block_raises(capfd):
    try:
        with fds_redirected(None, fds=(1, 2)):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(1, b"out\n")
    os.write(2, b"err\n")
    captured = capfd.readouterr()
    assert (captured.out, captured.err) == ("out\n", "err\n")


def test_no_descriptor_leaks():
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(20):
        with fds_redirected(None, fds=(1, 2)):
            pass
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
