"""The peer we measure against: dlib's own pipeline as the face_recognition package runs it.

face_locations (HOG detector, upsample 1) and face_encodings (5-point shape predictor,
dlib ResNet, one jitter). face_recognition is used when importable; otherwise the same
dlib calls are made directly (its PyPI release depends on building dlib from source, so
the ``peer`` extra installs dlib-bin and face_recognition_models, and ``make peer`` adds
face_recognition with --no-deps).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError

PEER_HINT = "install the peer extra: make peer (dlib-bin, face_recognition_models, face_recognition)"


class DlibReference:
    """``locate(rgb) -> [(top, right, bottom, left)]`` and ``encode(rgb, boxes) -> [(128,)]``."""

    def __init__(self) -> None:
        try:
            self._fr: Any = importlib.import_module("face_recognition")
            self.name = "face_recognition"
        except ImportError:
            self._fr = None
            self.name = "dlib"
            self._dlib_direct()
        import dlib

        self.version = getattr(dlib, "__version__", "unknown")

    def _dlib_direct(self) -> None:
        try:
            import dlib
            import face_recognition_models as frm
        except ImportError as exc:
            raise ConfigError(f"the dlib reference is not installed ({exc}); {PEER_HINT}") from exc
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        self._rect = dlib.rectangle

    def locate(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        if self._fr is not None:
            return self._fr.face_locations(rgb, 1, "hog")
        h, w = rgb.shape[:2]
        return [(max(r.top(), 0), min(r.right(), w), min(r.bottom(), h), max(r.left(), 0))
                for r in self._detector(rgb, 1)]

    def encode(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
        if self._fr is not None:
            return self._fr.face_encodings(rgb, boxes, 1, "small")
        out = []
        for top, right, bottom, left in boxes:
            shape = self._shape(rgb, self._rect(left, top, right, bottom))
            out.append(np.array(self._encoder.compute_face_descriptor(rgb, shape, 1)))
        return out

    def embedder(self) -> Callable[[np.ndarray], np.ndarray | None]:
        """Embed the face nearest the image centre, as our eval does for its own pipeline."""
        def embed(rgb: np.ndarray) -> np.ndarray | None:
            boxes = self.locate(rgb)
            if not boxes:
                return None
            h, w = rgb.shape[:2]
            box = min(boxes, key=lambda b: ((b[1] + b[3]) / 2 - w / 2) ** 2 + ((b[0] + b[2]) / 2 - h / 2) ** 2)
            return np.asarray(self.encode(rgb, [box])[0], np.float32)
        return embed
