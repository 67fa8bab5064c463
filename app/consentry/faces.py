"""Still-image operations shared by the CLI and (later) the web page: detect and compare."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import NoFaceError
from .vision.image_io import read_image
from .vision.pipeline import FacePipeline, largest_face
from .vision.types import Detection


def detection_json(det: Detection) -> dict:
    return {
        "box": [round(v, 1) for v in det.box],
        "score": round(det.score, 4),
        "keypoints": [[round(float(x), 1), round(float(y), 1)] for x, y in det.keypoints],
    }


def detect_image(pipeline: FacePipeline, path: Path) -> dict:
    """``{"image", "width", "height", "faces": [{"box", "score", "keypoints"}]}``."""
    rgb = read_image(path)
    faces = pipeline.faces(rgb, still=True)
    return {"image": str(path), "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "faces": [detection_json(f.detection) for f in faces]}


@dataclass(frozen=True)
class Comparison:
    """distance: L2 between the two descriptors; match: distance <= threshold."""

    distance: float
    match: bool
    threshold: float
    model: str

    def as_json(self) -> dict:
        return {"distance": round(self.distance, 4), "match": self.match,
                "threshold": self.threshold, "model": self.model}


def _embed_largest(pipeline: FacePipeline, path: Path, slot: int) -> np.ndarray:
    rgb = read_image(path)
    try:
        face = largest_face(pipeline.faces(rgb, still=True))
        if face is None:
            raise NoFaceError(f"no usable face found in {path}")
        return pipeline.embed(rgb, face, slot=slot).vector
    finally:
        rgb.fill(0)


def compare_images(pipeline: FacePipeline, a: Path, b: Path, threshold: float) -> Comparison:
    """Compare the largest face of each image; every face buffer is wiped before returning."""
    try:
        distance = float(np.linalg.norm(_embed_largest(pipeline, a, 0) - _embed_largest(pipeline, b, 1)))
    finally:
        pipeline.wipe()
    return Comparison(distance, distance <= threshold, threshold, pipeline.embedder.name)
