"""Is the source frozen? A real face in front of a real sensor is never pixel-identical from one
frame to the next: sensor noise alone changes most pixels by a grey level or more, and a live
person is never perfectly still. A still injected as a camera stream, or a stream that froze,
repeats the same pixels exactly (a JPEG encoder given the same still gives the same bytes).

The share of pixels in the face box whose grey value changed between two consecutive frames is
compared in the *same* box (the previous frame's), so detector jitter cannot count as change.
Measured on the five shared clips (docs/liveness.md): the least-changing run of three pairs had
8.5 % of its pixels change, while frozen input had 0 %. Only ever run on a track that matched an
enrolled subject; every crop is zeroed once it has been compared.
"""

from __future__ import annotations

import cv2
import numpy as np


def face_grey(frame: np.ndarray, box: tuple) -> np.ndarray:
    """A grey copy of the frame inside ``box`` (clipped to the frame); the caller zeroes it."""
    h, w = frame.shape[:2]
    x1, y1 = int(max(round(box[0]), 0)), int(max(round(box[1]), 0))
    x2, y2 = int(min(round(box[2]), w)), int(min(round(box[3]), h))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return np.zeros((0, 0), np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(frame[y1:y2, x1:x2]), cv2.COLOR_RGB2GRAY)


def changed_share(before: np.ndarray, frame: np.ndarray, box: tuple) -> float:
    """The share of ``before``'s pixels (the previous frame inside ``box``) that differ in
    ``frame`` inside the same box; 1.0 when they cannot be compared (the frame changed size)."""
    now = face_grey(frame, box)
    try:
        if now.shape != before.shape or now.size == 0:
            return 1.0
        return float(np.count_nonzero(now != before)) / now.size
    finally:
        now.fill(0)
