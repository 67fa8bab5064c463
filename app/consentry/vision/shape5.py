"""dlib's 5-point face landmark predictor (an ensemble of regression trees), run in numpy.

The model is dlib's own ``shape_predictor_5_face_landmarks.dat`` (public domain), converted to
``models/dlib_shape_predictor_5.npz`` by models/recipe/build_shape5.py; the algorithm follows
dlib's shape_predictor.h: 15 cascade levels of 500 depth-4 trees over 800 pixel-difference
features each, sampled relative to the current shape estimate inside a face rectangle.
Given the same rectangle it reproduces dlib's points, which are the points dlib's face chips
(and so the ResNet's training data) were cut from.

The levels depend on each other, so they run one after another; everything inside a level is
a handful of whole-array calls on tables laid out at load (a level costs about 15 numpy/OpenCV
calls whatever the number of trees): one product places all 800 feature points, one
``cv2.remap`` samples them, one gather and one comparison evaluate every split of every tree,
a table turns each tree's split outcomes into its leaf, and one gather and one sum add the
500 leaves to the shape.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

from ..runtime import ModelEntry, verified_bytes

_CODE_BITS = 16  # a tree's split outcomes, packed into one little-endian uint16
_MEAN_RGB = np.array([[1.0, 1.0, 1.0, -1.0]]) / 3.0


class ShapePredictor5:
    """``predict(image, rect)`` → (5, 2) float64 frame pixels in dlib's 5-point order.

    Not thread-safe: the per-level buffers are reused between calls (and zeroed after each).
    """

    def __init__(self, entry: ModelEntry) -> None:
        with np.load(io.BytesIO(verified_bytes(entry))) as z:
            self.initial = z["initial_shape"].astype(np.float32)          # (5, 2) unit-square coords
            idx1, idx2 = z["split_idx1"], z["split_idx2"]                  # (L, T, S) feature indices
            thresh = z["split_thresh"].astype(np.float32)                  # (L, T, S)
            leaves = z["leaves"].astype(np.float32)                        # (L, T, S + 1, 5, 2)
            anchor = z["anchor_idx"].astype(np.intp)                       # (L, F)
            deltas = z["deltas"].astype(np.float32)                        # (L, F, 2)
        self.levels, self.trees, self.splits = idx1.shape
        self.depth = int(np.log2(self.splits + 1))
        if self.splits + 1 != 2 ** self.depth or self.splits >= _CODE_BITS:
            raise ValueError(f"{entry.name}: {self.splits} splits per tree is not a complete tree of depth <= 4")
        levels, trees, splits = idx1.shape
        points, features = self.initial.shape[0], deltas.shape[1]
        self.name = entry.name
        # Each tree's splits are padded to 16 with a dummy (feature 0 - feature 0 <= 0) whose bit
        # no walk reads, so every level's comparisons are one contiguous array that packs
        # straight into one uint16 code per tree.
        pairs = np.zeros((levels, 2, trees, _CODE_BITS), np.intp)
        pairs[:, 0, :, :splits], pairs[:, 1, :, :splits] = idx1, idx2
        self._pairs = pairs.reshape(levels, 2, trees * _CODE_BITS)
        padded = np.zeros((levels, trees, _CODE_BITS), np.float32)
        padded[:, :, :splits] = thresh
        self._thresh = padded.reshape(levels, trees * _CODE_BITS)
        self._leaves = np.ascontiguousarray(leaves.reshape(levels, trees * (splits + 1), points * 2))
        self._leaf_of_code = _leaf_table(self.depth)
        self._leaf_base = np.arange(trees, dtype=np.intp) * (splits + 1)
        # A feature point is its delta rotated and scaled by the similarity from the mean shape
        # to the current one, plus its anchor landmark: [delta | one-hot anchor] @ [m^T ; shape]
        # is both in one float32 product, with the same roundings as the two apart.
        design = np.zeros((levels, features, 2 + points), np.float32)
        design[:, :, :2] = deltas
        design[np.arange(levels)[:, None], np.arange(features)[None, :], 2 + anchor] = 1.0
        self._design = design
        # The similarity's scale-rotation (a, b) is linear in the current shape, as the mean
        # shape is centred: a = sum(c . s) / |c|^2, b = sum(c_x s_y - c_y s_x) / |c|^2.
        centred = self.initial.astype(np.float64) - self.initial.astype(np.float64).mean(axis=0)
        sim = np.zeros((2, points * 2))
        sim[0, 0::2], sim[0, 1::2] = centred[:, 0], centred[:, 1]
        sim[1, 0::2], sim[1, 1::2] = -centred[:, 1], centred[:, 0]
        self._sim = sim / float((centred * centred).sum())
        initial = self.initial.astype(np.float64)
        self._initial_mean = initial.mean(axis=0)
        self._initial_spread = float(((initial - self._initial_mean) ** 2).sum())
        # per-call buffers (each zeroed after a call: they hold samples of a face)
        self._weights = np.zeros((2 + points, 2), np.float32)
        self._points = np.zeros((1, features, 2), np.float32)
        self._map = np.zeros((1, features, 2), np.float32)
        self._rgb = np.zeros((1, features, 3), np.uint8)
        self._grey = np.zeros((1, features), np.uint8)
        self._values = np.zeros(features, np.float32)
        self._gathered = np.zeros((2, trees * _CODE_BITS), np.float32)
        self._bits = np.zeros(trees * _CODE_BITS, bool)
        self._sum = np.zeros((trees + 1, points * 2), np.float32)

    def predict(self, image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
        """``rect``: (left, top, right, bottom) integer pixels, dlib's inclusive rectangle.

        Shapes are float32 and each level's tree outputs are added one after another, as
        dlib does (``einsum`` over the trees' axis accumulates row by row; pairwise summation
        drifts by an ulp, and an ulp can move a feature pixel across a rounding boundary).
        """
        left, top, right, bottom = rect
        width, height = float(right - left), float(bottom - top)
        # unit square → frame pixels, + 0.5 so that floor() rounds to nearest as dlib does;
        # float32 coordinates times an integer size plus an integer are exact in float64
        place = np.array([[width, 0.0, left + 0.5], [0.0, height, top + 0.5]])
        if image.ndim == 3 and image.shape[2] != 3:
            image = np.ascontiguousarray(image[..., :3])
        grey = image.ndim == 2
        pixels = self._grey if grey else self._rgb
        intensity = self._grey
        weights, points, where, values, gathered, bits, total = (
            self._weights, self._points, self._map, self._values, self._gathered, self._bits, self._sum)
        shape = self.initial.reshape(-1).copy()
        try:
            for level in range(self.levels):
                a, b = (self._sim @ shape).tolist()
                weights[:2] = ((a, b), (-b, a))
                weights[2:] = shape.reshape(-1, 2)
                np.matmul(self._design[level], weights, out=points[0])
                np.floor(cv2.transform(points.astype(np.float64), place), out=where)
                # nearest pixel at whole coordinates; 0 outside the image, as dlib
                cv2.remap(image, where, None, cv2.INTER_NEAREST, dst=pixels,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                if grey:
                    np.copyto(values, pixels[0])
                else:
                    # round((r+g+b)/3 - 1/3) is floor((r+g+b)/3) (dlib's integer mean), kept a third
                    # away from any rounding boundary; one pass, as OpenCV rounds to uint8
                    np.copyto(values, cv2.transform(pixels, _MEAN_RGB, dst=intensity)[0])
                np.take(values, self._pairs[level], out=gathered, mode="clip")
                np.subtract(gathered[0], gathered[1], out=gathered[0])
                np.less_equal(gathered[0], self._thresh[level], out=bits)
                code = np.packbits(bits, bitorder="little").view("<u2")
                leaf = self._leaf_base + np.take(self._leaf_of_code, code)
                total[0] = shape
                np.take(self._leaves[level], leaf, axis=0, out=total[1:], mode="clip")
                shape = np.einsum("ij->j", total)
        finally:
            for buf in (points, where, pixels, intensity, values, gathered, bits, total):
                buf.fill(0)
        return np.array([left, top], np.float64) + shape.reshape(-1, 2).astype(np.float64) * (width, height)

    def rect_for(self, five: np.ndarray) -> tuple[int, int, int, int]:
        """``rect_from_points(self.initial, five)`` in closed form (no SVD per face)."""
        f = np.asarray(five, np.float64)
        mean = f.mean(axis=0)
        side = float(((self.initial - self._initial_mean) * (f - mean)).sum()) / self._initial_spread
        left, top = (mean - side * self._initial_mean).tolist()
        return (round(left), round(top), round(left + side), round(top + side))


def _leaf_table(depth: int) -> np.ndarray:
    """For every packed code of a tree's split outcomes (bit k: split k sent the walk right,
    as dlib's ``diff > thresh`` going left), the leaf index the walk from the root ends in."""
    splits = 2 ** depth - 1
    codes = np.arange(2 ** _CODE_BITS, dtype=np.int64)
    node = np.zeros_like(codes)
    for _ in range(depth):
        node = 2 * node + 1 + ((codes >> node) & 1)
    return (node - splits).astype(np.uint8)  # 64 KB: random lookups stay in cache


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
