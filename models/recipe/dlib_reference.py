"""dlib's own path (HOG detector, 5-point predictor, chip, descriptor) — recipe-only."""

from __future__ import annotations

import dlib
import face_recognition_models as frm
import numpy as np


class DlibReference:
    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def five_points(self, rgb: np.ndarray, upsample: int = 1) -> list[np.ndarray]:
        """dlib's 5 landmarks for each HOG detection: list of (5, 2) float arrays."""
        out = []
        for rect in self.detector(rgb, upsample):
            shape = self.predictor(rgb, rect)
            out.append(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
        return out

    def chip(self, rgb: np.ndarray, five: np.ndarray) -> np.ndarray:
        rect = dlib.rectangle(0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in five]
        shape = dlib.full_object_detection(rect, parts)
        return np.asarray(dlib.get_face_chip(rgb, shape, 150, 0.25))

    def descriptor(self, chip: np.ndarray) -> np.ndarray:
        return np.asarray(self.net.compute_face_descriptor(np.ascontiguousarray(chip)), dtype=np.float32)
