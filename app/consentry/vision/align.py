"""dlib's 150x150 face chip (padding 0.25), reproduced without dlib.

dlib places the face with a least-squares similarity transform from its 5-point mean
shape to the landmarks, shrinks through a 2x image pyramid while the source window is
more than the chip's area after one more halving, then samples bilinearly: a sample whose
2x2 neighbourhood is not wholly inside the image is zero, values are truncated to uint8.
We sample with one cv2.warpAffine (see :func:`_sample` for where it differs).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's get_face_chip_details mean shape for 5-point landmarks (dlib order).
_MEAN_FIVE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least-squares similarity (Umeyama) src→dst: returns (scale, angle, translation)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    var = (s ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ sign) / var)
    angle = math.atan2(rot[1, 0], rot[0, 0])
    t = mu_d - scale * rot @ mu_s
    return scale, angle, t


def _chip_rect(five: np.ndarray, size: int, padding: float) -> tuple[np.ndarray, float, float]:
    """dlib's chip_details: centre, side length in frame pixels, and angle."""
    chip_pts = (padding + _MEAN_FIVE) / (2 * padding + 1) * size
    scale, angle, t = similarity(chip_pts, np.asarray(five, dtype=np.float64))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = scale * rot @ np.array([size / 2.0, size / 2.0]) + t
    return centre, size * scale, angle


def chip_transform(centre: np.ndarray, step: float, angle: float, size: int) -> np.ndarray:
    """2x3 affine from chip pixel (column, row) to source pixel: one chip pixel spans
    ``step`` source pixels, the chip's centre lands on ``centre``."""
    cos, sin = math.cos(angle), math.sin(angle)
    half = (size - 1) / 2.0
    return np.array([
        [step * cos, -step * sin, centre[0] - half * step * (cos - sin)],
        [step * sin, step * cos, centre[1] - half * step * (sin + cos)],
    ])


def _sample(img: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
    """Bilinear sampling at ``m`` (chip → source) into ``out``, values truncated to uint8.

    One cv2.warpAffine over a float32 copy of the (small) source region: the float output
    keeps dlib's truncation (uint8 output would round, 0.5 grey levels brighter on average).
    OpenCV blends a sample on the border with the zero background where dlib zeroes it
    outright; the two differ only in the outermost ring of samples of a face cut by the
    frame's edge.
    """
    size = out.shape[1], out.shape[0]
    src = img.astype(np.float32)
    try:
        val = cv2.warpAffine(src, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if val.ndim == 2:
            val = val[:, :, None]
        np.copyto(out, val, casting="unsafe")  # float → uint8 truncates, as dlib's assign does
        val.fill(0.0)
    finally:
        src.fill(0.0)


def extract_chip(image: np.ndarray, five: np.ndarray, out: np.ndarray | None = None,
                 size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """Cut the aligned (size, size, 3) uint8 RGB chip for dlib-order 5-point landmarks.

    ``out`` is filled in place when given (the pipeline owns and wipes that buffer).
    """
    if out is None:
        out = np.empty((size, size, 3), dtype=np.uint8)
    if out.shape != (size, size, 3) or out.dtype != np.uint8:
        raise ValueError(f"chip buffer must be ({size}, {size}, 3) uint8, got {out.shape} {out.dtype}")
    centre, side, angle = _chip_rect(five, size, padding)
    # Grow the crop by the margin dlib keeps around the rotated rectangle before the pyramid.
    half = side / 2.0 * (abs(math.cos(angle)) + abs(math.sin(angle)))
    level, grow, area = 0, 2.0, side * side / 4.0
    while area > size * size:
        area /= 4.0
        level += 1
        grow = grow * 2 + 2
    h, w = image.shape[:2]
    x1 = max(0, int(math.floor(centre[0] - half - grow)))
    y1 = max(0, int(math.floor(centre[1] - half - grow)))
    x2 = min(w, int(math.ceil(centre[0] + half + grow)) + 1)
    y2 = min(h, int(math.ceil(centre[1] + half + grow)) + 1)
    if x2 - x1 < 2 or y2 - y1 < 2:
        out.fill(0)
        return out
    src = image[y1:y2, x1:x2]
    offset = np.array([x1, y1], dtype=np.float64)
    factor = 1.0
    levels = []
    for _ in range(level):
        src = cv2.pyrDown(src)
        levels.append(src)
        factor *= 0.5
    # One chip pixel spans side/size frame pixels, centred on the rectangle's centre
    # (checked against dlib's chips: side/(size-1) doubled the pixel error).
    _sample(src, chip_transform((centre - offset) * factor, side * factor / size, angle, size), out)
    for shrunk in levels:  # pyramid copies of the face region: wipe, not just drop
        shrunk.fill(0)
    return out
