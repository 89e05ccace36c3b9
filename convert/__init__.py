"""Keras lookalike model -> four verified TFLite variants (workstation only).

``python -m convert --models models`` reads what ``make train`` wrote, converts the Keras model to
``float32``, ``float16``, ``dynamic`` (dynamic-range) and ``int8`` (full-integer, uint8 in and out)
TFLite files, writes the sidecar JSON the device reads beside each, checks every variant against
the Keras model on the validation split, and writes ``conversion_report.json`` and
``manifest.json``. See ``convert.pipeline`` for the order of events and the file-safety rules.
"""


class ConvertError(RuntimeError):
    """Something a user can fix (missing model, empty folder, mismatched labels); one clear line."""
