"""Checks shared by the tests of the benchmark command line (imports nothing heavy)."""
from __future__ import annotations

from benchmarks.cli import main


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """Run `python -m benchmarks` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *phrases: str) -> None:
    """Bad input: a non-zero exit and exactly one line on stderr, naming each phrase."""
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
