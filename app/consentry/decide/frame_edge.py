"""Is the face inside a picture? A print's paper edge and a screen's bezel are a closed
four-sided outline around the whole face; a real head is attached to a body, so any straight
outline behind it is broken where the neck and shoulders cross it.

Looked for in a window ``search`` times the face box around it, on an edge map, as a convex
quadrilateral that contains the whole face box and covers between ``min_area`` and
``max_area`` face boxes. Measured on frames with a face at least 60 px wide: 1 of 502 frames of
the five shared bona fide clips looks framed; 30-75 % of the frames of generated print and
screen attacks do (docs/liveness.md). Only ever run on a track that matched an enrolled subject; the grey
window and edge map are zeroed before returning.
"""

from __future__ import annotations

import cv2
import numpy as np


def framed(image: np.ndarray, box: tuple[float, float, float, float], *, search: float = 8.0,
           min_area: float = 1.8, max_area: float = 40.0) -> bool:
    x1, y1, x2, y2 = box[:4]
    bw, bh = x2 - x1, y2 - y1
    if bw < 8 or bh < 8:
        return False
    h, w = image.shape[:2]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    rx1, ry1 = int(max(cx - search * bw / 2, 0)), int(max(cy - search * bh / 2, 0))
    rx2, ry2 = int(min(cx + search * bw / 2, w)), int(min(cy + search * bh / 2, h))
    grey = cv2.cvtColor(image[ry1:ry2, rx1:rx2], cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (5, 5), 0), 40, 120)
    try:
        edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
        contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        face = np.array([[x1 - rx1, y1 - ry1], [x2 - rx1, y1 - ry1], [x2 - rx1, y2 - ry1], [x1 - rx1, y2 - ry1]])
        for c in contours:
            area = cv2.contourArea(c)
            if not min_area * bw * bh <= area <= max_area * bw * bh:
                continue
            quad = cv2.approxPolyDP(c, 0.03 * cv2.arcLength(c, True), True)
            if len(quad) == 4 and cv2.isContourConvex(quad) and all(
                    cv2.pointPolygonTest(quad, (float(px), float(py)), False) >= 0 for px, py in face):
                return True
        return False
    finally:
        grey.fill(0)
        edges.fill(0)
