"""Results of the vision stages. Coordinates are pixels of the input frame, x right, y down."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found by the detector.

    box: (x1, y1, x2, y2) float pixels of the input frame (may extend past its edges).
    score: detector confidence 0..1.
    keypoints: (6, 2) float32 pixels — subject's right eye, left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion (the subject's right is the image left).
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Face mesh landmarks for one face.

    mesh: (468, 3) float32; x, y in frame pixels, z in the same pixel scale (relative depth).
    five: (5, 2) float64 frame pixels in dlib's 5-point order — image-right eye outer and
    inner corner, image-left eye outer and inner corner, base of the nose.
    score: the mesh model's face-presence probability 0..1.
    """

    mesh: np.ndarray
    five: np.ndarray
    score: float


@dataclass(frozen=True, eq=False)
class Embedding:
    """A face descriptor.

    vector: (128,) float32, dlib's metric space (not unit-normalised; norm ≈ 1.4);
    L2 distance 0.6 is dlib's same-person threshold.
    model: manifest name of the embedder that made it; vectors of different models are
    never compared.
    """

    vector: np.ndarray
    model: str
