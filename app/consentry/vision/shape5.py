"""dlib's 5-point face landmark predictor (an ensemble of regression trees), run in numpy.

The model is dlib's own ``shape_predictor_5_face_landmarks.dat`` (public domain), converted to
``models/dlib_shape_predictor_5.npz`` by models/recipe/build_shape5.py; the algorithm follows
dlib's shape_predictor.h: 15 cascade levels of 500 depth-4 trees over 800 pixel-difference
features each, sampled relative to the current shape estimate inside a face rectangle.
Given the same rectangle it reproduces dlib's points, which are the points dlib's face chips
(and so the ResNet's training data) were cut from.
"""

from __future__ import annotations

import io

import numpy as np

from ..runtime import ModelEntry, verified_bytes


class ShapePredictor5:
    """``predict(image, rect)`` → (5, 2) float64 frame pixels in dlib's 5-point order."""

    def __init__(self, entry: ModelEntry) -> None:
        with np.load(io.BytesIO(verified_bytes(entry))) as z:
            self.initial = z["initial_shape"].astype(np.float32)          # (5, 2) unit-square coords
            self.idx1 = z["split_idx1"]                                    # (L, T, S)
            self.idx2 = z["split_idx2"]
            self.thresh = z["split_thresh"]
            self.leaves = z["leaves"]                                      # (L, T, S + 1, 5, 2)
            self.anchor = z["anchor_idx"]                                  # (L, F)
            self.deltas = z["deltas"].astype(np.float32)                   # (L, F, 2)
        self.levels, self.trees, self.splits = self.idx1.shape
        self.depth = int(np.log2(self.splits + 1))
        # Flat views: one 1-D gather per tree level is far cheaper than 3-axis fancy indexing.
        self._idx1 = self.idx1.reshape(self.levels, -1)
        self._idx2 = self.idx2.reshape(self.levels, -1)
        self._thresh = self.thresh.reshape(self.levels, -1)
        self._leaves = self.leaves.reshape(self.levels, self.trees * (self.splits + 1), -1)
        self._split_base = np.arange(self.trees) * self.splits
        self._leaf_base = np.arange(self.trees) * (self.splits + 1) - self.splits
        self.name = entry.name

    def predict(self, image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        """``rect``: (left, top, right, bottom) integer pixels, dlib's inclusive rectangle.

        Shapes are float32 and each level's tree outputs are added one after another (a
        cumulative sum), as dlib does: pairwise summation drifts by an ulp, and an ulp can
        move a feature pixel across a rounding boundary.
        """
        left, top, right, bottom = rect
        origin = np.array([left, top], np.float64)
        size = np.array([right - left, bottom - top], np.float64)
        h, w = image.shape[:2]
        shape = self.initial.copy()
        for level in range(self.levels):
            values = self._features(image, level, shape, origin, size, w, h)
            node = np.zeros(self.trees, np.intp)
            idx1, idx2, thresh = self._idx1[level], self._idx2[level], self._thresh[level]
            for _ in range(self.depth):
                k = self._split_base + node
                right = values[idx1[k]] - values[idx2[k]] <= thresh[k]
                node = 2 * node + 1 + right
            steps = self._leaves[level][self._leaf_base + node]
            shape = np.cumsum(np.vstack([shape.reshape(1, -1), steps]), axis=0, dtype=np.float32)[-1].reshape(-1, 2)
            values.fill(0)
        return origin + shape.astype(np.float64) * size

    def _features(self, image: np.ndarray, level: int, shape: np.ndarray, origin: np.ndarray, size: np.ndarray,
                  w: int, h: int) -> np.ndarray:
        """Pixel intensities ((r+g+b)//3, as dlib) at the level's feature points placed
        relative to ``shape``; 0 outside the image."""
        m = similarity_matrix(self.initial, shape)
        pts = (self.deltas[level] @ m.T + shape[self.anchor[level]]).astype(np.float32)
        px = np.floor(origin + pts.astype(np.float64) * size + 0.5).astype(np.intp)  # dlib rounds to nearest
        inside = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
        values = np.zeros(len(px), np.float32)
        sampled = image[px[inside, 1], px[inside, 0]]
        values[inside] = sampled if sampled.ndim == 1 else sampled.astype(np.uint16).sum(axis=1) // 3
        sampled.fill(0)
        return values


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x2 scale-and-rotation part of the least-squares similarity src→dst (closed form
    for 2-D points; the same answer as the Umeyama SVD dlib uses when no reflection is involved)."""
    s = src.astype(np.float64) - src.mean(axis=0)
    d = dst.astype(np.float64) - dst.mean(axis=0)
    norm = float((s * s).sum())
    a = float((s * d).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    return np.array([[a, -b], [b, a]], np.float32)


def rect_from_points(initial: np.ndarray, five: np.ndarray) -> tuple[int, int, int, int]:
    """The square rectangle whose unit-square frame puts ``initial`` (the predictor's mean
    shape) closest to ``five`` in least squares: a dlib-style face box from any landmarks."""
    n = len(five)
    a = np.zeros((2 * n, 3))
    a[0::2, 0] = 1.0
    a[1::2, 1] = 1.0
    a[:, 2] = np.asarray(initial, np.float64).reshape(-1)
    (left, top, side), *_ = np.linalg.lstsq(a, np.asarray(five, np.float64).reshape(-1), rcond=None)
    return (round(left), round(top), round(left + side), round(top + side))
