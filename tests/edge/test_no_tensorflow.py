"""The device side never imports TensorFlow or Keras.

Checked twice: by running the whole pipeline (video, photo, card) in a fresh interpreter and
looking at sys.modules afterwards (an honest check only where TensorFlow is installed, so it also
runs in the workstation venv), and by reading every edge/ module's import statements.
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from shared_paths import ROOT

FORBIDDEN = ("tensorflow", "keras", "tf_keras", "tensorboard")

CHECK = textwrap.dedent(
    """
    import json, sys
    from edge.cli import main

    codes = [main(args) for args in json.loads(sys.argv[1])]
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {forbidden})
    print(json.dumps({{"codes": codes, "loaded": loaded}}))
    """
)


def test_pipeline_runs_without_importing_tensorflow(tiny_models, face_video, portrait, tmp_path):
    runs = [
        [str(face_video), "--models", str(tiny_models), "--no-window", "--quiet",
         "--json", str(tmp_path / "r.jsonl"), "--output", str(tmp_path / "a.mp4"), "--card", str(tmp_path / "c1.png")],
        [str(portrait), "--models", str(tiny_models), "--variant", "float32", "--no-window", "--quiet",
         "--card", str(tmp_path / "c2.png")],
    ]
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(forbidden=set(FORBIDDEN)), json.dumps(runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0], result.stderr
    assert report["loaded"] == [], f"the edge pipeline imported {report['loaded']}"
    assert (tmp_path / "c1.png").is_file() and (tmp_path / "c2.png").is_file()


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


MODULE_NAME = re.compile(r"^(%s)(\.[A-Za-z_][\w.]*)?$" % "|".join(FORBIDDEN))


def named_modules(path: Path) -> set[str]:
    """String constants shaped like a forbidden module's name ("tensorflow.lite"): what
    importlib.import_module or __import__ would load, which import statements do not show."""
    return {node.value for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value)}


def test_no_edge_module_imports_tensorflow_or_keras():
    modules = sorted((ROOT / "edge").glob("*.py"))
    assert len(modules) >= 5
    for module in modules:
        assert not imported_modules(module) & set(FORBIDDEN), f"{module.name} imports {imported_modules(module) & set(FORBIDDEN)}"
        assert not named_modules(module), f"{module.name} names {named_modules(module)} for a dynamic import"


def test_the_static_check_sees_a_dynamic_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('import importlib\nCANDIDATES = ("ai_edge_litert.interpreter", "tensorflow.lite")\n'
                      'x = importlib.import_module(CANDIDATES[1])\nprint("install tensorflow to train")\n')
    assert named_modules(sneaky) == {"tensorflow.lite"}  # the message text is not a module name
