"""Accuracy and latency of every model variant, side by side (``python -m benchmarks``).

Reads what the other stages wrote to ``models/`` (the Keras model, the TFLite variants and their
sidecars, the model card naming the validation split) and writes ``reports/benchmark.md``,
``reports/benchmark.json`` and plots. Runs on the device too: without TensorFlow the Keras row is
skipped, without Matplotlib the plots are; the TFLite rows and the camera pipeline still run.
See ``benchmarks.run`` for the order of events.
"""


class BenchmarkError(RuntimeError):
    """Something the user can fix (missing models, mismatched data, unreadable file); one clear line."""
