"""dlib's 5-point predictor ported to numpy: bit-exact with dlib on the same rectangle.

Expected points were printed by dlib 20.0.1's own shape_predictor on skimage's public-domain
astronaut (and variants), for the rectangles dlib's HOG detector returned — including one
false detection on her suit, which exercises the predictor far from any face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from consentry.vision.pipeline import largest_face
from consentry.vision.shape5 import ShapePredictor5, rect_from_points

DLIB = [
    ("astronaut", (175, 76, 265, 166), [(255, 104), (238, 105), (195, 101), (212, 103), (224, 135)]),
    ("astronaut", (126, 335, 215, 425), [(189, 365), (176, 367), (142, 373), (156, 371), (168, 394)]),
    ("mirrored", (245, 76, 335, 166), [(316, 101), (299, 103), (256, 104), (274, 104), (287, 134)]),
    ("mirrored", (305, 325, 394, 415), [(354, 365), (345, 365), (321, 368), (331, 366), (341, 383)]),
    ("half", (88, 41, 132, 84), [(127, 52), (119, 52), (97, 50), (106, 51), (112, 67)]),
]


@pytest.fixture(scope="module")
def predictor(manifest) -> ShapePredictor5:
    return ShapePredictor5(manifest.get("dlib_shape_predictor_5"))


def variant(astronaut: np.ndarray, name: str) -> np.ndarray:
    if name == "mirrored":
        return np.ascontiguousarray(astronaut[:, ::-1])
    if name == "half":
        return cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    return astronaut


@pytest.mark.parametrize(("name", "rect", "expected"), DLIB)
def test_points_match_dlib_exactly(predictor, astronaut, name, rect, expected):
    points = np.floor(predictor.predict(variant(astronaut, name), rect) + 0.5)
    assert points.tolist() == [list(p) for p in expected]


def test_pipeline_chip_points_start_from_the_mesh_and_land_on_dlibs(pipeline, predictor, astronaut):
    face = largest_face(pipeline.faces(astronaut))
    rect = rect_from_points(predictor.initial, face.landmarks.five)
    assert max(abs(a - b) for a, b in zip(rect, DLIB[0][1], strict=True)) < 12  # near dlib's own HOG box
    points = pipeline.five_points(astronaut, face)
    assert np.abs(points - np.array(DLIB[0][2])).max() <= 2.0


def test_closed_form_rect_is_the_least_squares_one(predictor):
    rng = np.random.default_rng(3)
    for _ in range(200):
        five = predictor.initial * rng.uniform(40, 400) + rng.uniform(0, 600, 2) + rng.normal(0, 3, (5, 2))
        assert predictor.rect_for(five) == rect_from_points(predictor.initial, five)


def test_leaf_sums_accumulate_tree_by_tree_in_float32():
    # the predictor's einsum over the trees' axis must add row after row (dlib's order), not pairwise
    rng = np.random.default_rng(4)
    rows = (rng.standard_normal((501, 10)) * 10.0 ** rng.uniform(-4, 0, (501, 1))).astype(np.float32)
    assert np.array_equal(np.einsum("ij->j", rows), np.cumsum(rows, axis=0, dtype=np.float32)[-1])


def test_predict_leaves_no_face_samples_behind(predictor, astronaut):
    predictor.predict(astronaut, DLIB[0][1])
    for buf in (predictor._values, predictor._gathered, predictor._rgb, predictor._grey, predictor._bits,
                predictor._sum):
        assert not buf.any()


def test_greyscale_and_rgba_frames_sample_the_same_intensities(predictor, astronaut):
    rect = DLIB[0][1]
    grey = ((astronaut.astype(np.uint16).sum(axis=2)) // 3).astype(np.uint8)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    expected = predictor.predict(astronaut, rect)
    assert np.array_equal(predictor.predict(grey, rect), expected)
    assert np.array_equal(predictor.predict(rgba, rect), expected)


def test_one_rounded_transform_is_dlibs_integer_mean_of_rgb():
    from consentry.vision.shape5 import _MEAN_RGB

    rgb = np.stack(np.meshgrid(np.arange(256), np.arange(256), np.arange(0, 256, 5), indexing="ij"), -1)
    rgb = rgb.reshape(1, -1, 3).astype(np.uint8)
    assert np.array_equal(cv2.transform(rgb, _MEAN_RGB)[0], rgb[0].astype(np.int32).sum(axis=1) // 3)
