"""Convert dlib's face ResNet into TFLite: float32 (reference), float16 and int8.

Deterministic: the same .dat, the same calibration chips in the same order and the same
TensorFlow give the same files. Needs the ``recipe`` extra (TensorFlow, dlib, models).
Usage: python models/recipe/build_embedder.py [--data ../shared/data/faces]
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import face_recognition_models as frm
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
import dlib_dat  # noqa: E402
from consentry.runtime import Manifest, Model  # noqa: E402
from consentry.vision.align import extract_chip  # noqa: E402
from consentry.vision.detector import BlazeFaceDetector  # noqa: E402
from consentry.vision.image_io import read_image  # noqa: E402
from consentry.vision.landmarks import FaceMesh  # noqa: E402
from tf_graph import DlibResNet  # noqa: E402

log = logging.getLogger("recipe")
MODELS = Path(__file__).resolve().parents[1]
RECIPE = Path(__file__).resolve().parent
# Many different people, real and synthetic; calibrating on copies of one face roughly
# doubles the worst-case error.
CALIBRATION_SETS = {"celeba": 2, "digiface": 4, "orl": 1, "yale": 1}


def calibration_chips(data: Path) -> list[np.ndarray]:
    """Aligned chips cut by the inference code path, at most N per identity per set."""
    manifest = Manifest.load(MODELS)
    det = BlazeFaceDetector(Model(manifest.get("blazeface_short_range")))
    mesh = FaceMesh(Model(manifest.get("face_mesh")))
    chips = []
    for name, per_id in CALIBRATION_SETS.items():
        taken: dict[str, int] = {}
        with open(data / name / "labels.csv") as fh:
            rows = sorted(csv.DictReader(fh), key=lambda r: r["file"])
        for row in rows:
            if taken.get(row["identity"], 0) >= per_id:
                continue
            rgb = read_image(data / name / row["file"])
            faces = [lm for d in det.detect(rgb) if (lm := mesh.landmarks(rgb, d)) is not None]
            if len(faces) != 1:
                continue
            chips.append(extract_chip(rgb, faces[0].five).copy())
            taken[row["identity"]] = taken.get(row["identity"], 0) + 1
    return chips


def convert(module: DlibResNet, mode: str, chips: list[np.ndarray] | None = None) -> bytes:
    fn = module.__call__.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    if mode == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in chips)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.float32
    return conv.convert()


def quantization_report(module: DlibResNet, chips: list[np.ndarray], out: Path) -> None:
    """Per-layer error of the int8 model against float (TFLite's quantization debugger)."""
    fn = module.__call__.get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], module)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in chips)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=lambda: ([c[None].astype(np.float32)] for c in chips[::8]))
    debugger.run()
    with open(out, "w") as fh:
        debugger.layer_statistics_dump(fh)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=MODELS.parent / "../shared/data/faces")
    ap.add_argument("--skip-report", action="store_true")
    args = ap.parse_args()
    tf.random.set_seed(0)
    net = dlib_dat.load(Path(frm.face_recognition_model_location()))
    log.info("parsed dlib network: %d layers, %d parameters", len(net.layers), net.parameter_count)
    module = DlibResNet(net)
    (MODELS / "dlib_resnet_v1_float32.tflite").write_bytes(convert(module, "float32"))
    (MODELS / "dlib_resnet_v1_float16.tflite").write_bytes(convert(module, "float16"))
    chips = calibration_chips(args.data.resolve())
    if len(chips) < 200:
        raise SystemExit(f"only {len(chips)} calibration chips; the recipe wants at least 200")
    log.info("calibrating int8 on %d chips", len(chips))
    int8 = convert(module, "int8", chips)
    (MODELS / "dlib_resnet_v1_int8.tflite").write_bytes(int8)
    interp = tf.lite.Interpreter(model_content=int8)
    scale, zero = interp.get_input_details()[0]["quantization"]
    if (scale, zero) != (1.0, 0):
        raise SystemExit(f"int8 input quantisation is scale {scale} zero point {zero}, not 1.0 / 0")
    if not args.skip_report:
        quantization_report(module, chips, RECIPE / "quantization_report.csv")
    log.info("wrote float32, float16 and int8 embedders to %s", MODELS)


if __name__ == "__main__":
    main()
