"""Detector → landmarks → aligner → embedder, wired from the model manifest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..runtime import Manifest, Model, RuntimeName
from .align import CHIP_SIZE, extract_chip
from .detector import BlazeFaceDetector, DetectorOptions
from .embedder import FaceEmbedder
from .landmarks import FaceMesh
from .types import Detection, Embedding, Landmarks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisionOptions:
    """Which manifest models to use and how many interpreter threads each gets."""

    detector: str = "blazeface_short_range"
    landmarks: str = "face_mesh"
    embedder: str = "dlib_resnet_v1_int8"
    threads: int = 1
    runtime: RuntimeName = "auto"
    detector_options: DetectorOptions = DetectorOptions()


@dataclass(frozen=True, eq=False)
class Face:
    """A detected face confirmed by the face mesh, with its landmarks."""

    detection: Detection
    landmarks: Landmarks


class FacePipeline:
    """Owns the models and the one chip buffer; close() releases the interpreters.

    The chip buffer is overwritten by every ``embed`` and zeroed by :meth:`wipe`, so no
    crop of a face outlives the decision made about it.
    """

    def __init__(self, options: VisionOptions | None = None, manifest: Manifest | None = None,
                 models_dir: Path | None = None) -> None:
        self.options = options or VisionOptions()
        self.manifest = manifest or Manifest.load(models_dir)
        opts = self.options
        self._models: list[Model] = []
        self.detector = BlazeFaceDetector(self._open(opts.detector, "detector"), opts.detector_options)
        self.mesh = FaceMesh(self._open(opts.landmarks, "landmarks"))
        self.embedder = FaceEmbedder(self._open(opts.embedder, "embedder"))
        self.chip = np.zeros((CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)

    def _open(self, name: str, role: str) -> Model:
        entry = self.manifest.get(name)
        if entry.role != role:
            raise ValueError(f"model {name} has role {entry.role}, not {role}")
        model = Model(entry, threads=self.options.threads, runtime=self.options.runtime)
        self._models.append(model)
        return model

    @property
    def runtime(self) -> str:
        info = self._models[0].runtime
        return f"{info.name} {info.version}"

    def faces(self, image: np.ndarray) -> list[Face]:
        """Detect and landmark every face in an RGB frame.

        A detection the mesh model does not see as a face is dropped: the mesh is a second
        opinion that removes the detector's rare false faces on textures.
        """
        out = []
        for det in self.detector.detect(image):
            lm = self.mesh.landmarks(image, det)
            if lm is not None:
                out.append(Face(det, lm))
        return out

    def embed(self, image: np.ndarray, face: Face) -> Embedding:
        """Align the face into the owned chip buffer and embed it."""
        extract_chip(image, face.landmarks.five, out=self.chip)
        return self.embedder.embed(self.chip)

    def wipe(self) -> None:
        """Overwrite the chip buffer (called once a decision about a face is final)."""
        self.chip.fill(0)

    def close(self) -> None:
        self.wipe()
        for model in self._models:
            model.close()

    def __enter__(self) -> FacePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def largest_face(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.detection.width * f.detection.height, default=None)
