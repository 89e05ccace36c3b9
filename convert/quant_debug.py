"""Where does the int8 variant lose accuracy? Per-block sensitivity and per-layer error.

    python -m convert.quant_debug --models models [--images 100] [--layer-stats stats.csv]

Calibrates once (training images, as make convert does; the input scaling folded into the first
convolution, as make convert does), then quantizes the model several ways and runs each on
validation images against the float model:
- the default recipe with the input scaling left as two int8 ops (``--int8-input-scaling quantized``);
- the default recipe with the calibrator's min/max activation ranges (``--int8-ranges minmax``);
  every other row uses the least-MSE ranges, as make convert does (``convert.ranges``);
- the default recipe with the pooled features' mean error taken out in the head and the head's
  weights float16, as make convert ships it (``convert.bias_correction``,
  ``convert.float16_weights``); no other row has either;
- fully integer, head float, the default recipe (see ``convert.export.Int8Recipe``);
- the head float plus one backbone block float, for every block: a block whose row shows a much
  smaller error than "head float" is one whose int8 version hurts, a candidate for
  ``--int8-float-layers``.
Columns: relative error of the embedding output (RMS error / mean magnitude) and top-1 agreement
with the float model. ``--layer-stats`` also writes TF's QuantizationDebugger per-layer statistics
(each layer's error with float inputs, RMSE/scale about 0.29 is plain rounding) as CSV.
Writes nothing into the models folder.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from convert import ConvertError, export, input_scaling, ranges, tf_private  # noqa: E402
from convert import dataset as ds  # noqa: E402
from convert.interpreters import invoke_each  # noqa: E402
from convert import source as src  # noqa: E402
from edge.runtime import interpreter_class  # noqa: E402

BLOCK_PATTERN = re.compile(r"/(Conv1|expanded_conv|block_\d+|Conv_1)_")


@dataclass
class Row:
    name: str
    relative_error: float
    agreement: float
    size_bytes: int


def run_tflite(model_bytes: bytes, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, embeddings) as float, for uint8 or float inputs."""
    cls, _ = interpreter_class()
    interpreter = cls(model_content=model_bytes, num_threads=2)
    interpreter.allocate_tensors()
    layout = export.outputs_by_signature(
        interpreter, {int(d["index"]): i for i, d in enumerate(interpreter.get_output_details())}
    )
    details = interpreter.get_output_details()
    outputs = {name: [] for name in ("probabilities", "embedding")}
    for _ in invoke_each(interpreter, images):
        for name in outputs:
            detail = details[layout[name]]
            raw = interpreter.get_tensor(detail["index"])[0]
            if np.issubdtype(raw.dtype, np.integer):
                scale, zero_point = detail["quantization"]
                raw = (raw.astype(np.float32) - zero_point) * scale
            outputs[name].append(raw.astype(np.float32))
    return np.stack(outputs["probabilities"]), np.stack(outputs["embedding"])


def compare(name: str, model_bytes: bytes, images: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> Row:
    probabilities, embedding = run_tflite(model_bytes, images)
    ref_p, ref_e = reference[:2]  # a traits output, when there is one, is not compared here
    error = np.sqrt(np.mean((embedding - ref_e) ** 2)) / max(float(np.mean(np.abs(ref_e))), 1e-12)
    agreement = float(np.mean(probabilities.argmax(1) == ref_p.argmax(1)))
    return Row(name, float(error), agreement, len(model_bytes))


def backbone_blocks(calibrated: bytes) -> list[str]:
    """Block names in execution order, from the calibrated model's tensor names."""
    cls, _ = interpreter_class()
    interpreter = cls(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    blocks: list[str] = []
    for op in tf_private.ops_details(interpreter):
        match = BLOCK_PATTERN.search(names[op["outputs"][0]].split(";")[0])
        if match and match.group(1) not in blocks:
            blocks.append(match.group(1))
    return blocks


def layer_statistics(saved_model: Path, rep: np.ndarray, images: np.ndarray, out: Path) -> None:
    import tensorflow as tf

    converter = export.saved_model_converter(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = export.representative_dataset(rep)
    with export.native_output_captured():
        debugger = tf_private.quantization_debugger(converter, export.representative_dataset(images))
        debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    for row in rows:
        scale = float(row["scale"]) or 1.0
        row["rmse_over_scale"] = f"{np.sqrt(float(row['mean_squared_error'])) / scale:.4f}"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"per-layer statistics of {len(rows)} layers written to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert.quant_debug", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--rep-size", type=int, default=300, help="calibration images (training split)")
    parser.add_argument("--images", type=int, default=100, help="validation images to measure on")
    parser.add_argument("--layer-stats", type=Path, default=None, help="also write QuantizationDebugger per-layer CSV here")
    args = parser.parse_args(argv)
    try:
        source = src.read_source(args.models)
        splits = ds.resolve_splits(source.card)
        rep, _ = ds.load_model_inputs(ds.balanced_sample(splits.train.files, args.rep_size, 1234), source.contract, "representative")
        ds.ensure_full_pixel_range(rep)
        images, _ = ds.load_model_inputs(ds.balanced_sample(splits.val.files, args.images, 1234), source.contract, "validation")
        model = src.load_keras_model(source)
        reference = tuple(np.asarray(v) for v in model.predict(images.astype(np.float32), batch_size=32, verbose=0))
        with tempfile.TemporaryDirectory() as tmp:
            saved_model = export.export_saved_model(model, source.contract, Path(tmp) / "saved_model")
            folded = export.export_saved_model(input_scaling.checked_fold(model, rep), source.contract, Path(tmp) / "folded")
            print(f"calibrating on {len(rep)} training images; measuring on {len(images)} validation images ...", flush=True)
            calibrated = export.calibrate(folded, rep)
            recipes = {
                "fully integer": export.FULL_INTEGER,
                "head float": export.Int8Recipe(float_head=True, float_layers=()),
                "default recipe": export.Int8Recipe(),
            }
            minmax = export.quantize_calibrated(calibrated, export.Int8Recipe(activation_ranges="minmax"))
            calibrated, _ = ranges.tighten(calibrated, rep)  # every recipe below but that one: least-MSE ranges
            recipes.update({f"head + {block} float": export.Int8Recipe(True, (block,)) for block in backbone_blocks(calibrated)})
            print(f"{'int8 variant':<34} {'emb rel err':>11} {'agreement':>9} {'size':>9}")
            unfolded = export.Int8Recipe(fold_input_scaling=False)
            unfolded_calibrated, _ = ranges.tighten(export.calibrate(saved_model, rep), rep)
            rows = [("default, input scaling quantized", export.quantize_calibrated(unfolded_calibrated, unfolded)),
                    ("default, min/max ranges", minmax)]
            rows += [(name, export.quantize_calibrated(calibrated, recipe)) for name, recipe in recipes.items()]
            corrected = export.quantize_as_recipe(calibrated, export.Int8Recipe(), rep).model_bytes
            default_row = [name for name, _ in rows].index("default recipe")
            rows.insert(default_row + 1, ("default recipe, bias corrected", corrected))  # what make convert ships
            for name, model_bytes in rows:
                row = compare(name, model_bytes, images, reference)
                print(f"{row.name:<34} {row.relative_error:>11.3f} {row.agreement:>9.1%} {row.size_bytes / 1e6:>7.2f} MB", flush=True)
            if args.layer_stats:
                layer_statistics(saved_model, rep, images[: min(len(images), 20)], args.layer_stats)
    except ConvertError as exc:
        print(f"quant_debug: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
