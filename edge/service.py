"""``python -m edge service``: a systemd unit that runs the live view (``--serve``) at boot.

    python -m edge service --source picamera --host 0.0.0.0 | sudo tee /etc/systemd/system/cartoon-lookalike.service
    sudo systemctl daemon-reload && sudo systemctl enable --now cartoon-lookalike
    journalctl -u cartoon-lookalike -f

The options after ``service`` are the camera loop's own (``python -m edge --help``); they are
checked now, and written with absolute paths for this venv's Python and this folder. The unit
restarts the service when it fails (no camera yet, camera unplugged) and logs to the journal.
A token never goes into the unit file, which anyone on the machine can read: it is read from
``/etc/default/cartoon-lookalike`` (``LOOKALIKE_TOKEN=...``).
"""
from __future__ import annotations

import getpass
import os
import shlex
import sys
from pathlib import Path

from edge.cli import build_parser, options_from_args
from edge.serve import is_loopback, ServeError

UNIT_NAME = "cartoon-lookalike"
TOKEN_FILE = f"/etc/default/{UNIT_NAME}"


def unit_text(argv: list[str], user: str, workdir: Path, python: str) -> str:
    command = [python, "-m", "edge", "--serve", *argv]
    return f"""[Unit]
Description=Cartoon lookalike: live camera lookalikes in a browser (python -m edge --serve)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
SupplementaryGroups=video
WorkingDirectory={workdir}
# LOOKALIKE_TOKEN=... (needed when --host is not 127.0.0.1); this file stays readable by root only.
EnvironmentFile=-{TOKEN_FILE}
Environment=PYTHONUNBUFFERED=1
ExecStart={shlex.join(command)}
Restart=on-failure
RestartSec=5
# 130: stopped by SIGTERM (systemctl stop), after saving what it learned
SuccessExitStatus=130

[Install]
WantedBy=multi-user.target
"""


def _absolute(argv: list[str], workdir: Path) -> list[str]:
    """Paths given to --models, --detector (unless auto or haar), --state and a video source, made absolute."""
    out = list(argv)
    for i, value in enumerate(out[:-1]):
        detector_name = value == "--detector" and out[i + 1] in ("auto", "haar")  # names, not files
        if (value in ("--models", "--detector", "--state") and not detector_name) or (
                value == "--source" and not _camera(out[i + 1])):
            out[i + 1] = str((workdir / out[i + 1]).expanduser().resolve())
    return out


def _camera(spec: str) -> bool:
    return spec.isdigit() or spec.startswith("/dev/") or spec == "picamera"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[2:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    if any(a == "--token" or a.startswith("--token=") for a in argv):
        print(f"error: do not put the token in the unit file (anyone can read it): write LOOKALIKE_TOKEN=... into "
              f"{TOKEN_FILE} (sudo chmod 600) instead", file=sys.stderr)
        return 1
    if "--serve" in argv:
        argv.remove("--serve")
    parser = build_parser()
    args = parser.parse_args(["--serve", *argv])
    options_from_args(args, parser)
    if args.input is not None:
        print("error: give the camera as --source (picamera, 0 or /dev/videoN)", file=sys.stderr)
        return 1
    workdir = Path.cwd()
    models = (workdir / args.models).resolve()
    if not models.is_dir():
        print(f"error: models folder {models} does not exist: pass --models, or run this from the project folder",
              file=sys.stderr)
        return 1
    argv = _absolute(argv, workdir)
    if "--models" not in argv:
        argv = ["--models", str(models), *argv]
    try:
        remote = not is_loopback(args.host)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    sys.stdout.write(unit_text(argv, user, workdir, sys.executable))
    if remote:
        print(f"note: --host {args.host} needs a token: write LOOKALIKE_TOKEN=<secret> into {TOKEN_FILE} "
              f"(sudo chmod 600 {TOKEN_FILE})", file=sys.stderr)
    return 0
