"""The anti-spoofing crop: a box scaled about a face, kept inside the frame, resized square.

The networks were trained on crops around RetinaFace boxes (x, y, width, height). Our
detector is BlazeFace, whose boxes are tighter and sit differently on the face, so
:class:`CropRule` maps a BlazeFace box to the RetinaFace box it stands for; its four numbers
were measured on shared images by ``models/recipe/build_antispoof.py`` and live in the
manifest. The crop itself follows upstream's rule: scale the box about its centre (less if
the frame is too small), then slide it back inside the frame rather than pad.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropRule:
    """RetinaFace box from a BlazeFace box: width and height ratios, centre shift in box units."""

    width: float = 1.0
    height: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def retina_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """(x1, y1, x2, y2) BlazeFace box → (x, y, w, h) box in upstream's convention."""
        x1, y1, x2, y2 = box[:4]
        bw, bh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2 + self.shift_x * bw, (y1 + y2) / 2 + self.shift_y * bh
        w, h = bw * self.width, bh * self.height
        return cx - w / 2, cy - h / 2, w, h


def crop_box(src_w: int, src_h: int, box: tuple[float, float, float, float], scale: float) -> tuple[int, int, int, int]:
    """Inclusive (x1, y1, x2, y2) of ``box`` (x, y, w, h) scaled by ``scale`` within the frame."""
    x, y, bw, bh = box
    bw, bh = max(bw, 1.0), max(bh, 1.0)
    scale = min((src_h - 1) / bh, (src_w - 1) / bw, scale)
    w, h = bw * scale, bh * scale
    cx, cy = x + bw / 2, y + bh / 2
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if x1 < 0:
        x2, x1 = x2 - x1, 0.0
    if y1 < 0:
        y2, y1 = y2 - y1, 0.0
    if x2 > src_w - 1:
        x1, x2 = x1 - (x2 - src_w + 1), src_w - 1.0
    if y2 > src_h - 1:
        y1, y2 = y1 - (y2 - src_h + 1), src_h - 1.0
    return int(x1), int(y1), int(x2), int(y2)


def take_crop(image: np.ndarray, box: tuple[float, float, float, float], scale: float, size: int,
              out: np.ndarray | None = None) -> np.ndarray:
    """The (size, size, 3) crop of ``image`` around ``box`` (x, y, w, h), into ``out`` if given."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = crop_box(w, h, box, scale)
    region = image[max(y1, 0): y2 + 1, max(x1, 0): x2 + 1]
    if out is None:
        return cv2.resize(region, (size, size))
    cv2.resize(region, (size, size), dst=out)
    return out
