"""``python -m edge service``: the systemd unit that starts the live view at boot."""
from __future__ import annotations

import configparser
import os
import shlex
import sys

from edge.service import main


def unit(args: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_unit_runs_serve_with_absolute_paths_and_restarts(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = unit(["--source", "picamera", "--models", tiny_models, "--host", "0.0.0.0"], capsys)
    assert code == 0, err
    parsed = configparser.ConfigParser(interpolation=None, strict=False)
    parsed.read_string(out)
    service = parsed["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[:4] == [sys.executable, "-m", "edge", "--serve"]
    assert command[command.index("--models") + 1] == str(tiny_models.resolve())
    assert command[command.index("--source") + 1] == "picamera"
    assert service["Restart"] == "on-failure" and "130" in service["SuccessExitStatus"]
    assert service["EnvironmentFile"].lstrip("-") == "/etc/default/cartoon-lookalike"
    assert "token" not in service["ExecStart"].lower()
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert "LOOKALIKE_TOKEN" in err  # listening beyond the machine: says where the token goes
    assert os.path.isabs(service["WorkingDirectory"])


def test_video_source_is_made_absolute(tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"")
    code, out, _ = unit(["--source", "clip.mp4", "--models", tiny_models], capsys)
    assert code == 0 and f"--source {tmp_path / 'clip.mp4'}" in out


def test_detector_names_stay_names_and_files_become_absolute(tiny_models, tmp_path, capsys, monkeypatch):
    """--detector auto and haar are names: made into paths they would stop the service at every boot."""
    monkeypatch.chdir(tmp_path)

    def detector_in_unit(value: str) -> str:
        code, out, err = unit(["--models", tiny_models, "--detector", value], capsys)
        assert code == 0, err
        command = shlex.split(next(line for line in out.splitlines() if line.startswith("ExecStart=")).split("=", 1)[1])
        return command[command.index("--detector") + 1]

    assert detector_in_unit("auto") == "auto" and detector_in_unit("haar") == "haar"
    assert detector_in_unit("yunet.onnx") == str(tmp_path / "yunet.onnx")


def test_token_never_goes_into_the_unit(tiny_models, capsys):
    code, out, err = unit(["--models", tiny_models, "--token", "secret-secret"], capsys)
    assert code == 1 and out == "" and "/etc/default/cartoon-lookalike" in err and "secret-secret" not in err


def test_missing_models_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = unit(["--source", "picamera"], capsys)
    assert code == 1 and out == "" and "models folder" in err
