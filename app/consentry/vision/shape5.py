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
        if self.splits + 1 != 2 ** self.depth or self.splits > 16:
            raise ValueError(f"{entry.name}: {self.splits} splits per tree is not a complete tree of depth <= 4")
        # Each level's every split of every tree is one comparison over all of them at once;
        # the 15 outcomes of a tree, packed little-endian into a 16-bit code, index a table
        # that holds the leaf the walk down that tree ends in.
        self._idx1 = self.idx1.reshape(self.levels, -1).astype(np.intp)
        self._idx2 = self.idx2.reshape(self.levels, -1).astype(np.intp)
        self._thresh = self.thresh.reshape(self.levels, -1)
        self._leaves = self.leaves.reshape(self.levels, self.trees * (self.splits + 1), -1)
        self._leaf_base = np.arange(self.trees) * (self.splits + 1)
        self._leaf_of_code = _leaf_table(self.depth)
        self._bits = np.zeros((self.trees, 16), bool)
        self._deltas64 = self.deltas.astype(np.float64)
        centred = self.initial.astype(np.float64) - self.initial.astype(np.float64).mean(axis=0)
        self._initial_centred, self._initial_norm = centred, float((centred * centred).sum())
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
        flat = (image if image.flags.c_contiguous else np.ascontiguousarray(image)).reshape(-1)
        channels = 1 if image.ndim == 2 else image.shape[2]
        limit = np.array([w - 1, h - 1])
        stride = (channels, w * channels)
        bits = self._bits
        shape = self.initial.copy()
        try:
            for level in range(self.levels):
                values = self._features(flat, channels, level, shape, origin, size, limit, stride)
                split = values[self._idx1[level]]
                split -= values[self._idx2[level]]
                np.less_equal(split.reshape(self.trees, self.splits), self._thresh[level].reshape(self.trees, -1),
                              out=bits[:, :self.splits])
                code = np.packbits(bits.reshape(-1), bitorder="little").view("<u2")
                steps = self._leaves[level][self._leaf_base + self._leaf_of_code[code]]
                steps[0] += shape.reshape(-1)
                shape = np.cumsum(steps, axis=0, dtype=np.float32)[-1].reshape(-1, 2)
        finally:
            bits.fill(False)
        return origin + shape.astype(np.float64) * size

    def _features(self, flat: np.ndarray, channels: int, level: int, shape: np.ndarray, origin: np.ndarray,
                  size: np.ndarray, limit: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
        """Pixel intensities ((r+g+b)//3, as dlib) at the level's feature points placed
        relative to ``shape``; 0 outside the image. ``flat``: the image's bytes, row-major."""
        m = self._similarity(shape)
        pts = (self.deltas[level] @ m.T + shape[self.anchor[level]]).astype(np.float32)
        px = np.floor(origin + pts.astype(np.float64) * size + 0.5).astype(np.intp)  # dlib rounds to nearest
        clipped = np.maximum(np.minimum(px, limit), 0)
        outside = (clipped != px).any(axis=1)
        at = clipped[:, 1] * stride[1]
        at += clipped[:, 0] * stride[0]
        if channels == 1:
            values = flat[at].astype(np.float32)
        else:
            total = flat[at].astype(np.uint16)
            total += flat[at + 1]
            total += flat[at + 2]
            total //= 3
            values = total.astype(np.float32)
            total.fill(0)
        values[outside] = 0.0
        return values

    def _similarity(self, shape: np.ndarray) -> np.ndarray:
        """similarity_matrix(self.initial, shape), with the mean shape's half precomputed."""
        d = shape.astype(np.float64)
        d -= d.mean(axis=0)
        s = self._initial_centred
        a = float((s * d).sum()) / self._initial_norm
        b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / self._initial_norm
        return np.array([[a, -b], [b, a]], np.float32)


def _leaf_table(depth: int) -> np.ndarray:
    """For every packed code of a tree's split outcomes (bit k: split k sent the walk right,
    as dlib's ``diff > thresh`` going left), the leaf index the walk from the root ends in."""
    splits = 2 ** depth - 1
    codes = np.arange(2 ** 16, dtype=np.int64)
    node = np.zeros_like(codes)
    for _ in range(depth):
        node = 2 * node + 1 + ((codes >> node) & 1)
    return (node - splits).astype(np.intp)


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
