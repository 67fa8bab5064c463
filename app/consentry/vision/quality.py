"""Quality gates run before a face is embedded; a gated face is never embedded.

Each failed gate gives a reason code the kiosk can turn into advice:
``too_small`` (come closer), ``out_of_frame`` (step into view), ``blurry`` (hold still),
``pose`` (look straight at the camera), ``too_dark`` / ``too_bright`` (light).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .types import Detection, Landmarks

REASONS = ("too_small", "out_of_frame", "blurry", "pose", "too_dark", "too_bright")
PATCH = 96  # blur and exposure are measured on the face box resized to this square

# Mesh vertices: outer eye corners (subject's right, left) and forehead top / chin bottom.
_EYE_R, _EYE_L, _FOREHEAD, _CHIN = 33, 263, 10, 152


@dataclass(frozen=True)
class QualityOptions:
    """min_face_px: detection box width in frame pixels. min_inside: fraction of the box
    area that must lie in the frame. min_sharpness: variance of the Laplacian of the grey
    96x96 face patch. max_yaw_deg / max_pitch_deg: head pose from the mesh.
    dark / bright: allowed mean grey level (0..255) of the face patch."""

    min_face_px: float = 40.0
    min_inside: float = 0.95
    min_sharpness: float = 30.0
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 30.0
    dark: float = 40.0
    bright: float = 220.0


@dataclass(frozen=True)
class Quality:
    """Measurements of one face and the gates it failed (empty ``reasons`` = good).

    face_px: box width in pixels; inside: fraction 0..1 of the box inside the frame;
    sharpness: Laplacian variance (grey levels²); yaw_deg, pitch_deg: degrees, 0 = frontal;
    brightness: mean grey level 0..255.
    """

    reasons: tuple[str, ...]
    face_px: float
    inside: float
    sharpness: float
    yaw_deg: float
    pitch_deg: float
    brightness: float

    @property
    def ok(self) -> bool:
        return not self.reasons


def head_pose(mesh: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from the mesh's relative depth; 0, 0 faces the camera."""
    across = mesh[_EYE_L] - mesh[_EYE_R]
    down = mesh[_CHIN] - mesh[_FOREHEAD]
    yaw = math.degrees(math.atan2(float(across[2]), math.hypot(float(across[0]), float(across[1]))))
    pitch = math.degrees(math.atan2(float(down[2]), math.hypot(float(down[0]), float(down[1]))))
    return yaw, pitch


def inside_fraction(det: Detection, width: int, height: int) -> float:
    x1, y1, x2, y2 = det.box
    area = max(det.width, 1e-6) * max(det.height, 1e-6)
    cw = max(0.0, min(x2, width) - max(x1, 0.0))
    ch = max(0.0, min(y2, height) - max(y1, 0.0))
    return cw * ch / area


class QualityGate:
    """Measures faces with one owned grey patch buffer that is zeroed after every use."""

    def __init__(self, options: QualityOptions | None = None) -> None:
        self.options = options or QualityOptions()
        self.patch = np.zeros((PATCH, PATCH), np.uint8)

    def assess(self, image: np.ndarray, det: Detection, landmarks: Landmarks) -> Quality:
        opts = self.options
        h, w = image.shape[:2]
        inside = inside_fraction(det, w, h)
        yaw, pitch = head_pose(landmarks.mesh)
        sharpness, brightness = self._measure(image, det)
        checks = (
            ("too_small", det.width < opts.min_face_px),
            ("out_of_frame", inside < opts.min_inside),
            ("blurry", sharpness < opts.min_sharpness),
            ("pose", abs(yaw) > opts.max_yaw_deg or abs(pitch) > opts.max_pitch_deg),
            ("too_dark", brightness < opts.dark),
            ("too_bright", brightness > opts.bright),
        )
        return Quality(tuple(r for r, failed in checks if failed), round(det.width, 1), round(inside, 3),
                       round(sharpness, 1), round(yaw, 1), round(pitch, 1), round(brightness, 1))

    def _measure(self, image: np.ndarray, det: Detection) -> tuple[float, float]:
        h, w = image.shape[:2]
        x1, y1 = max(int(det.box[0]), 0), max(int(det.box[1]), 0)
        x2, y2 = min(int(math.ceil(det.box[2])), w), min(int(math.ceil(det.box[3])), h)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return 0.0, 0.0
        region = image[y1:y2, x1:x2]
        grey = region if region.ndim == 2 else cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
        try:
            cv2.resize(grey, (PATCH, PATCH), dst=self.patch, interpolation=cv2.INTER_AREA)
            lap = cv2.Laplacian(self.patch, cv2.CV_32F)
            sharpness = float(lap.var())
            brightness = float(self.patch.mean())
            lap.fill(0)
        finally:
            self.patch.fill(0)
            if grey is not region:
                grey.fill(0)
        return sharpness, brightness
