"""benchmarks/: report files and their schema, --compare marking, bad inputs, running without TensorFlow.

Fast: the committed tiny fixture (tests/fixtures/tiny_models: 48 px, three classes), a handful of
timed runs, small image folders made here. No assertion is about speed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks import BenchmarkError
from benchmarks.accuracy import agreement, score
from benchmarks.cli import main
from benchmarks.compare import find_regressions
from benchmarks.dataset import files_from_card, files_from_folder, load_images
from benchmarks.latency import summarize
from benchmarks.pipeline import answer_changes, stage_summary
from benchmarks.progress import Progress
from benchmarks.report import table
from cli_checks import assert_one_line_error, run_cli
from edge.contract import InputContract
from edge.model_card import ModelCard

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_models"
DATASET = ROOT / "data" / "emoji-characters"
LABELS = ("astronaut", "superhero", "vampire")
VARIANTS = ("float32", "float16", "dynamic", "int8")
FAST = ["--runs", "6", "--warmup", "1", "--threads", "1", "--quiet"]


def copy_models(destination: Path) -> Path:
    """A private copy of the fixture, so a test can add or break files without touching it."""
    models = destination / "models"
    shutil.copytree(FIXTURE, models)
    return models


def make_class_folders(root: Path, classes: dict[str, int]) -> Path:
    """``root/<class>/`` with the first N openmoji images of each class (any name allowed)."""
    for name, count in classes.items():
        source = DATASET / "openmoji" / (name if name in LABELS else LABELS[0])
        (root / name).mkdir(parents=True)
        for path in sorted(source.glob("*.png"))[:count]:
            shutil.copy(path, root / name / path.name)
    return root



@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> dict:
    """One benchmark of the fixture with a reference file and a short pipeline run, shared by tests."""
    tmp = tmp_path_factory.mktemp("bench")
    models = copy_models(tmp)
    reference = tmp / "reference.tflite"  # any TFLite file without a sidecar will do
    shutil.copy(models / "lookalike_int8.tflite", reference)
    out = tmp / "reports"
    code = main([
        "--models", str(models), "--out", str(out), "--reference", str(reference),
        "--pipeline-frames", "12", "--runs", "12", "--warmup", "1", "--quiet",
    ])
    return {"code": code, "out": out, "models": models, "report": json.loads((out / "benchmark.json").read_text())}


# --- the report --------------------------------------------------------------------------------------

def test_report_json_has_a_row_per_variant_with_the_promised_fields(full_run):
    assert full_run["code"] == 0
    report = full_run["report"]
    names = [row["name"] for row in report["variants"]]
    assert names == list(VARIANTS) + ["reference"]  # the fixture ships no Keras file
    threads = [str(t) for t in report["settings"]["latency_threads"]]
    assert threads[0] == "1"
    for row in report["variants"]:
        assert row["size_bytes"] == Path(row["file"]).stat().st_size
        for t in threads:
            summary = row["latency_ms"][t]
            assert 0 < summary["p50"] <= summary["p90"] <= summary["p99"]
            assert summary["runs"] == 12 == len(summary["samples"])
        if row["name"] == "reference":
            assert row["top1"] is None and row["agreement"] is None
            continue
        assert 0.0 <= row["top5"] <= 1.0 and 0.0 <= row["top1"] <= row["top5"]
        assert set(row["per_class"]) == set(LABELS)
        confusion = np.array(row["confusion"])
        assert confusion.shape == (3, 3) and confusion.sum() == report["settings"]["images"]
        assert row["agreement_with"] == "float32"  # no Keras model: agreement with float32 TFLite
        assert row["peak_rss_bytes"] > row["model_rss_bytes"] >= 0
        assert row["load_ms"] > 0
    assert report["settings"]["images"] == 54  # the card's openmoji validation files, 18 per class


def test_report_json_has_machine_goals_and_the_pipeline(full_run):
    report = full_run["report"]
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["python"] and machine["cpu"]
    assert machine["versions"]["NumPy"] == np.__version__
    assert {g["goal"].split("x ")[-1] for g in report["goals"]} == {"float32", "reference"}
    int8 = next(r for r in report["variants"] if r["name"] == "int8")
    assert int8["ratio_to_reference"]["1"] == pytest.approx(
        int8["latency_ms"]["1"]["p50"] / report["variants"][-1]["latency_ms"]["1"]["p50"], rel=1e-3
    )
    pipeline = report["pipeline"]
    assert "skipped" not in pipeline, pipeline.get("skipped")
    assert pipeline["frames"] == 12 and pipeline["fps"] > 0 and pipeline["frame_size"] == "640x480"
    assert {"read", "total"} <= set(pipeline["stages_ms"])
    answers = pipeline["answers"]
    assert answers["tracks"] >= 1 and 0 < answers["face_frames"] <= 12
    assert 0 <= answers["changes"] < answers["face_frames"] and answers["distinct"] >= 1
    assert "Flicker: the shown answer changed" in (full_run["out"] / "benchmark.md").read_text()


def test_flicker_counts_changes_of_the_shown_answer_per_face():
    def frame(*faces):
        return {"faces": [{"track": track, "top": [{"label": label, "score": 0.5}]} for track, label in faces]}

    frames = [frame((1, "elf"), (2, "cook")), frame((1, "elf"), (2, "cook")), frame((1, "owl")),
              frame((1, "elf"), (2, "elf")), frame()]
    answers = answer_changes(frames)
    # Face 1: elf elf owl elf (2 changes in 3 steps); face 2: cook cook elf (1 change in 2 steps).
    assert answers["tracks"] == 2 and answers["face_frames"] == 7 and answers["changes"] == 3
    assert answers["changes_per_100_frames"] == pytest.approx(60.0)
    assert answers["distinct"] == 3 and answers["most_shown"] == "elf" and answers["most_shown_share"] == pytest.approx(4 / 7)
    assert answer_changes([frame(), frame()])["changes_per_100_frames"] is None


def test_markdown_has_a_table_row_per_variant_and_the_plots_exist(full_run):
    out = full_run["out"]
    markdown = (out / "benchmark.md").read_text()
    for name in VARIANTS + ("reference",):
        assert any(line.startswith(f"| {name} ") for line in markdown.splitlines()), name
    assert "## Goals" in markdown and "## Camera pipeline" in markdown
    for plot in ("accuracy_vs_latency", "per_class_accuracy", "latency_distributions", "confusion_int8"):
        data = (out / f"{plot}.png").read_bytes()
        assert data.startswith(b"\x89PNG"), plot
        assert f"({plot}.png)" in markdown
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


# --- --compare -----------------------------------------------------------------------------------------

def _variant(name: str, top1: float, p50: float, p90: float, p99: float) -> dict:
    return {"name": name, "top1": top1, "top5": 1.0, "agreement": 1.0, "size_bytes": 1000,
            "latency_ms": {"1": {"p50": p50, "p90": p90, "p99": p99}}}


def test_compare_flags_only_changes_beyond_noise():
    old = {"variants": [_variant("int8", 0.80, 10.0, 11.0, 12.0), _variant("float32", 0.80, 20.0, 21.0, 25.0)]}
    new = {"variants": [
        _variant("int8", 0.785, 11.5, 12.0, 13.0),  # -1.5 points; p50 +15% and above the old p90
        _variant("float32", 0.795, 20.9, 22.0, 26.0),  # -0.5 points; p50 +4.5%: both noise
    ]}
    flagged = {(r.subject, r.metric) for r in find_regressions(old, new)}
    assert flagged == {("int8", "top1"), ("int8", "latency_ms.1.p50")}


def test_compare_needs_more_than_ten_percent_and_the_old_p90():
    old = {"variants": [_variant("int8", 0.8, 10.0, 13.0, 14.0)]}
    new = {"variants": [_variant("int8", 0.8, 12.0, 13.5, 14.5)]}  # +20% but inside the old p90
    assert find_regressions(old, new) == []


def test_compare_marks_worse_numbers_in_the_report(full_run, tmp_path, capsys):
    old = json.loads(json.dumps(full_run["report"]))
    int8 = next(r for r in old["variants"] if r["name"] == "int8")
    int8["top1"] = 1.0  # the old int8 was perfect: the new one is worse by far
    for summary in int8["latency_ms"].values():
        summary.update(p50=summary["p50"] / 100, p90=summary["p50"] / 100, p99=summary["p50"] / 100)
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(old))
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", full_run["models"], "--out", out, "--compare", old_path, "--no-pipeline",
                            "--no-plots", *FAST], capsys)
    assert code == 0
    report = json.loads((out / "benchmark.json").read_text())
    flagged = {(r["subject"], r["metric"]) for r in report["comparison"]["regressions"]}
    assert ("int8", "top1") in flagged and ("int8", "latency_ms.1.p50") in flagged
    # The others' accuracy and sizes were compared with themselves (deterministic); timings may wander.
    exact = {"top1", "top5", "macro_per_class", "agreement", "size_bytes"}
    assert not {(s, m) for s, m in flagged if s != "int8" and m in exact}
    markdown = (out / "benchmark.md").read_text()
    int8_row = next(line for line in markdown.splitlines() if line.startswith("| int8 "))
    assert int8_row.count("▼") >= 2
    assert "## Compared with an earlier report" in markdown
    assert "got worse" in err


# --- bad input: one clear line, non-zero exit, nothing written ---------------------------------------


def test_missing_models_say_run_make_convert(tmp_path, capsys):
    (tmp_path / "models").mkdir()
    for folder in (tmp_path / "models", tmp_path / "absent"):
        code, _, err = run_cli(["--models", folder, "--out", tmp_path / "reports", *FAST], capsys)
        assert_one_line_error(code, err, "run 'make convert' first")
    assert not (tmp_path / "reports" / "benchmark.json").exists()


def test_data_folder_with_other_classes_is_refused(tmp_path, capsys):
    models = copy_models(tmp_path)
    data = make_class_folders(tmp_path / "data", {"astronaut": 2, "dragon": 2})
    code, _, err = run_cli(["--models", models, "--data", data, "--out", tmp_path / "reports", *FAST], capsys)
    assert_one_line_error(code, err, "dragon", "does not know")
    nested = tmp_path / "styles" / "openmoji"
    make_class_folders(nested, {"astronaut": 1})
    code, _, err = run_cli(["--models", models, "--data", nested.parent, "--out", tmp_path / "reports", *FAST], capsys)
    assert_one_line_error(code, err, "no class folders with images")
    assert not (tmp_path / "reports" / "benchmark.json").exists()


def test_unreadable_reference_is_refused(tmp_path, capsys):
    models = copy_models(tmp_path)
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"this is not a flatbuffer")
    code, _, err = run_cli(["--models", models, "--reference", broken, "--out", tmp_path / "reports", *FAST], capsys)
    assert_one_line_error(code, err, "broken.tflite", "not a valid TFLite file")
    code, _, err = run_cli(["--models", models, "--reference", tmp_path / "absent.tflite", "--out", tmp_path / "r", *FAST], capsys)
    assert_one_line_error(code, err, "does not exist")


def test_unreadable_compare_report_is_refused(tmp_path, capsys):
    models = copy_models(tmp_path)
    old = tmp_path / "old.json"
    old.write_text("{not json")
    code, _, err = run_cli(["--models", models, "--compare", old, "--out", tmp_path / "reports", *FAST], capsys)
    assert_one_line_error(code, err, "old.json")


def test_sidecar_from_another_conversion_is_refused(tmp_path, capsys):
    models = copy_models(tmp_path)
    with open(models / "lookalike_int8.tflite", "ab") as handle:
        handle.write(b"\0")  # the sha256 in the sidecar no longer matches
    code, _, err = run_cli(["--models", models, "--out", tmp_path / "reports", *FAST], capsys)
    assert_one_line_error(code, err, "lookalike_int8.tflite", "make convert")


def test_interrupt_keeps_the_previous_report(tmp_path, capsys, monkeypatch):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "benchmark.md").write_text("previous report\n")

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr("benchmarks.cli.run_benchmark", interrupted)
    code, _, err = run_cli(["--models", FIXTURE, "--out", out, *FAST], capsys)
    assert code == 130 and "unchanged" in err
    assert (out / "benchmark.md").read_text() == "previous report\n"


# --- a folder of class folders ------------------------------------------------------------------------

def test_data_folder_with_some_classes_and_an_unreadable_image(tmp_path, capsys):
    models = copy_models(tmp_path)
    data = make_class_folders(tmp_path / "data", {"astronaut": 3, "vampire": 2})
    (data / "vampire" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "reports"
    code, _, _ = run_cli(["--models", models, "--data", data, "--out", out, "--no-pipeline", "--no-plots", *FAST], capsys)
    assert code == 0
    report = json.loads((out / "benchmark.json").read_text())
    assert report["settings"]["images"] == 5 and report["settings"]["skipped_images"] == 1
    int8 = next(r for r in report["variants"] if r["name"] == "int8")
    assert int8["per_class"]["superhero"] is None  # no images of that class
    notes = " ".join(report["notes"])
    assert "superhero" in notes and "could not be read" in notes


# --- without TensorFlow and Matplotlib (the device) ---------------------------------------------------

BLOCKER = textwrap.dedent('''
    """Make TensorFlow, Keras and Matplotlib unimportable in this process and its children."""
    import sys

    class _Blocked:
        names = ("tensorflow", "keras", "matplotlib", "tf_keras")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ImportError(f"{name} is blocked: this test plays the device")
            return None

    sys.meta_path.insert(0, _Blocked())
''')


def test_runs_without_tensorflow_or_matplotlib(tmp_path):
    models = copy_models(tmp_path)
    (models / "lookalike.keras").write_bytes(b"present, but there is no TensorFlow to read it")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)  # also loaded by the measuring child processes
    face = tmp_path / "face.png"
    skimage_data = pytest.importorskip("skimage.data")
    import cv2

    cv2.imwrite(str(face), cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    out = tmp_path / "reports"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--models", str(models), "--out", str(out), "--face", str(face),
         "--pipeline-frames", "8", *FAST],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "benchmark.json").read_text())
    assert [r["name"] for r in report["variants"]] == list(VARIANTS)
    notes = " ".join(report["notes"])
    assert "TensorFlow is not installed" in notes and "Matplotlib is not installed" in notes
    assert report["pipeline"].get("frames") == 8, report["pipeline"]
    assert not list(out.glob("*.png"))
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker really was in force


# --- the pieces -----------------------------------------------------------------------------------------

def test_score_counts_top1_top5_per_class_and_confusion():
    labels = tuple("abcdefg")
    probabilities = np.full((4, 7), 0.01, dtype=np.float32)
    probabilities[0, 0] = 0.9  # true a, predicted a
    probabilities[1, 2] = 0.9  # true b, predicted c; b is 6th best: outside the top 5
    probabilities[1, 1] = 0.0
    probabilities[2, 1] = 0.9  # true b, predicted b
    probabilities[3, 3] = 0.9  # true c, predicted d, c second best: inside the top 5
    probabilities[3, 2] = 0.5
    result = score(probabilities, np.array([0, 1, 1, 2]), labels)
    assert result.top1 == pytest.approx(0.5)
    assert result.top5 == pytest.approx(0.75)
    assert result.per_class["a"] == 1.0 and result.per_class["b"] == 0.5 and result.per_class["c"] == 0.0
    assert result.per_class["g"] is None
    assert result.macro == pytest.approx(0.5)
    assert result.confusion[1, 2] == 1 and result.confusion.sum() == 4
    assert agreement(result.predicted, np.array([0, 2, 0, 3])) == pytest.approx(0.75)


def test_summarize_percentiles():
    summary = summarize([float(v) for v in range(1, 101)])
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["min"] == 1.0 and summary["runs"] == 100


def test_stage_summary_separates_cost_per_frame_from_cost_per_run():
    records = [{"ms": {"detect": 8.0 if i % 4 == 0 else 0.0, "draw": 0.0, "total": 10.0}} for i in range(8)]
    stages = stage_summary(records)
    assert "draw" not in stages  # never ran
    assert stages["detect"]["run_fraction"] == pytest.approx(0.25)
    assert stages["detect"]["p50"] == pytest.approx(8.0)
    assert stages["detect"]["mean"] == pytest.approx(2.0)
    assert stages["detect"]["share"] == pytest.approx(0.2)


def test_card_paths_relative_to_the_project_and_an_even_subset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the card's relative paths are found from the project, not the current folder
    card = json.loads((FIXTURE / "model_card.json").read_text())
    files = files_from_card(ModelCard.from_dict(card, FIXTURE / "model_card.json"), LABELS)
    assert not isinstance(files, str) and len(files.paths) == 54
    contract = InputContract(labels=LABELS, input_size=48)
    subset = load_images(files, contract, limit=9)
    assert subset.images.shape == (9, 48, 48, 3)
    assert set(subset.truth.tolist()) == {0, 1, 2}  # every class kept
    card["data"]["val_files"] = ["no/such/file.png"]
    assert "pass --data" in files_from_card(ModelCard.from_dict(card, FIXTURE / "model_card.json"), LABELS)
    del card["data"]["val_files"]
    assert "older tool" in files_from_card(ModelCard.from_dict(card, FIXTURE / "model_card.json"), LABELS)


def test_folder_listing_maps_classes_to_model_indices(tmp_path):
    data = make_class_folders(tmp_path / "data", {"vampire": 2, "astronaut": 1})
    files = files_from_folder(data, LABELS)
    assert sorted(files.truth) == [0, 2, 2]
    assert any("superhero" in note for note in files.notes)
    with pytest.raises(BenchmarkError, match="does not exist"):
        files_from_folder(tmp_path / "absent", LABELS)


def test_progress_prints_quarters_when_not_a_terminal(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as stream:
        progress = Progress("work", 8, stream=stream)
        for _ in range(8):
            progress.advance()
        progress.close()
    lines = log.read_text().splitlines()
    assert lines[:3] == ["work: 2/8", "work: 4/8", "work: 6/8"]
    assert lines[-1].startswith("work: 8/8 in ")


def test_markdown_table_columns_line_up():
    lines = table(["model", "p50"], [["int8", "3.1"], ["float32", "12.4"]], [False, True])
    assert len({len(line) for line in lines}) == 1
    assert lines[1] == "|:--------|-----:|"


# --- the Keras row (TensorFlow in the test process and one measuring child) --------------------------

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras internals, not ours
@pytest.mark.slow  # imports TensorFlow twice (here and in a measuring child): 10-20 s on 2 busy cores
def test_keras_row_is_measured_and_agreement_refers_to_it(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    from train.model import build_model

    models = copy_models(tmp_path)
    card = json.loads((models / "model_card.json").read_text())
    keras.utils.set_random_seed(3)
    # Random weights, not the fixture's: only the plumbing is under test, not the agreement value.
    model = build_model(InputContract.from_dict(card["contract"]), weights=None, alpha=0.1)
    model.save(models / "lookalike.keras")
    out = tmp_path / "reports"
    code, _, err = run_cli(["--models", models, "--out", out, "--no-pipeline", "--no-plots", "--max-images", "12", *FAST], capsys)
    assert code == 0, err
    report = json.loads((out / "benchmark.json").read_text())
    rows = {r["name"]: r for r in report["variants"]}
    assert list(rows)[0] == "keras"
    assert rows["keras"]["agreement"] == 1.0 and rows["int8"]["agreement_with"] == "keras"
    assert rows["keras"]["latency_ms"]["1"]["p50"] > 0 and rows["keras"]["load_ms"] > 0
    assert rows["keras"]["speedup_vs_float32"]["1"] > 0


def test_score_counts_ties_for_the_top_class():
    probabilities = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1]], dtype=np.float32)  # uint8 outputs tie like this
    result = score(probabilities, np.array([1, 1]), LABELS)
    assert result.ties == 1
    assert result.predicted.tolist() == [0, 1]  # argmax takes the first class of a tie


def test_pipeline_reads_fps_from_the_summary_line_edge_prints():
    """benchmarks.pipeline runs `python -m edge` and takes FPS from its summary line: a change to that
    line's wording must show here, not as a silently skipped pipeline section."""
    from benchmarks.pipeline import SUMMARY_LINE
    from edge.runstats import RunSummary

    for frames, seconds in ((12, 0.4), (1, 0.5)):
        line = RunSummary(frames=frames, seconds=seconds, mean_ms={"total": 3.0, "read": 1.0}).describe()
        found = SUMMARY_LINE.match(line)
        assert found and int(found[1]) == frames and float(found[3]) == round(frames / seconds, 1), line


def test_mjpeg_markers_are_counted_once_however_the_stream_is_cut():
    """The live-view benchmark counts frames by boundary markers; a marker at the very end of one read
    was counted again with the next read (kept whole in the tail)."""
    from benchmarks.serve_client import count_markers

    marker = b"--frame"
    stream = (b"x" * 10 + marker) * 5
    for cut in range(1, len(stream)):
        total, tail = 0, b""
        for block in (stream[:cut], stream[cut:]):
            found, tail = count_markers(tail, block, marker)
            total += found
        assert total == 5, cut


def test_a_hung_camera_loop_is_stopped_and_reported():
    import sys

    from benchmarks.pipeline import run_edge

    fps, why = run_edge([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)
    assert fps is None and "did not finish within 1 s" in why
