"""What the device tests (tests/edge, run in the device venv) cannot check there: the parts that need
the workstation's extras (Keras for training's evaluation, scikit-image's astronaut photo)."""
from __future__ import annotations

import numpy as np

from edge.ranking import top_k_accuracy


def test_training_ranks_ties_as_every_other_stage():
    """train's evaluation uses edge.ranking like the benchmark: the same top-1 and top-5 with many ties."""
    from benchmarks.accuracy import score
    from train.pipeline import evaluate

    rng = np.random.default_rng(3)
    ties = (rng.integers(0, 4, size=(200, 12)) / 4).astype(np.float32)  # four levels: many ties in every row
    targets = rng.integers(0, 12, size=200)
    labels = tuple(f"c{i}" for i in range(12))
    report = evaluate(ties, targets, labels)
    assert (report["top1"], report["top5"]) == (top_k_accuracy(ties, targets, 1), top_k_accuracy(ties, targets, 5))
    assert (report["top1"], report["top5"]) == (score(ties, targets, labels).top1, score(ties, targets, labels).top5)


def test_astronaut_card_from_scikit_image(tmp_path, capsys):
    from edge.cli import main
    from shared_paths import ROOT

    card = tmp_path / "card.png"
    code = main(["--astronaut", "--models", str(ROOT / "tests" / "fixtures" / "tiny_models"), "--card", str(card),
                 "--no-window"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert stdout.startswith("astronaut: face at") and card.is_file()
