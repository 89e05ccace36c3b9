"""edge.command.run_command: how every command ends (one error line, exit codes, Ctrl-C and SIGTERM alike)."""
from __future__ import annotations

import os
import signal

import pytest

from edge.command import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, refuse, run_command


class Oops(ValueError):
    pass


def raising(exc: BaseException):
    def body():
        raise exc
    return body


def test_a_refused_value_is_one_line_and_the_usage_code(capsys):
    assert refuse("--size 12 is out of range") == EXIT_USAGE == 2
    assert capsys.readouterr().err == "error: --size 12 is out of range\n"


def test_the_body_gives_the_exit_code():
    assert run_command(lambda: None, (Oops,), "stopped") == 0
    assert run_command(lambda: 3, (Oops,), "stopped") == 3


def test_a_user_error_is_one_line_with_the_prefix(capsys):
    assert run_command(raising(Oops("the folder is empty")), (Oops,), "stopped") == EXIT_ERROR
    assert capsys.readouterr().err == "error: the folder is empty\n"
    assert run_command(raising(Oops("bad")), (Oops,), "stopped", prefix="benchmark", error_code=2) == 2
    assert capsys.readouterr().err == "benchmark: bad\n"


def test_an_error_not_listed_is_not_swallowed():
    with pytest.raises(KeyError):
        run_command(raising(KeyError("bug")), (Oops,), "stopped")
    with pytest.raises(OSError):  # without cannot_write, a file error is not the user's to read as one line
        run_command(raising(OSError(28, "No space left on device")), (Oops,), "stopped")


def test_a_file_error_is_one_line_when_the_command_writes(capsys):
    code = run_command(raising(OSError(28, "No space left on device")), (Oops,), "stopped", cannot_write="cannot write x")
    assert code == EXIT_ERROR and capsys.readouterr().err == "error: cannot write x: No space left on device\n"


def test_ctrl_c_and_sigterm_are_the_same_interruption(capsys):
    assert run_command(raising(KeyboardInterrupt()), (Oops,), "interrupted: nothing was written") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted: nothing was written\n"

    def killed():
        os.kill(os.getpid(), signal.SIGTERM)

    reached = []

    def outside(signum, frame):  # what would run if run_command did not take SIGTERM over
        reached.append(signum)

    before = signal.signal(signal.SIGTERM, outside)
    try:
        assert run_command(killed, (Oops,), "interrupted: kept") == EXIT_INTERRUPTED
        assert capsys.readouterr().err == "interrupted: kept\n" and reached == []
        assert signal.getsignal(signal.SIGTERM) is outside  # the handler is put back
    finally:
        signal.signal(signal.SIGTERM, before)
