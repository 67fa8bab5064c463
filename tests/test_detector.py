"""Detector and mesh golden tests on a public-domain image, a no-face image and misuse."""

import cv2
import numpy as np
import pytest
from consentry.errors import ImageError
from consentry.vision.detector import DetectorOptions, ssd_anchors
from skimage import data

# Golden values for skimage.data.astronaut() with the short-range model (pixels).
ASTRONAUT_BOX = (178.1, 80.9, 272.1, 175.0)
BOX_TOLERANCE_PX = 3.0


def test_anchor_counts_match_the_models():
    assert ssd_anchors(128).shape == (896, 2)
    assert ssd_anchors(192).shape == (2304, 2)


def test_astronaut_has_one_face_where_expected(pipeline, astronaut):
    faces = pipeline.detector.detect(astronaut)
    assert len(faces) == 1
    det = faces[0]
    assert det.score > 0.8
    assert np.allclose(det.box, ASTRONAUT_BOX, atol=BOX_TOLERANCE_PX), det.box
    right_eye, left_eye, nose = det.keypoints[0], det.keypoints[1], det.keypoints[2]
    assert right_eye[0] < nose[0] < left_eye[0]  # subject's right eye is on the image left
    assert nose[1] > max(right_eye[1], left_eye[1])


def test_mesh_five_points_fall_in_the_face(pipeline, astronaut):
    (face,) = pipeline.faces(astronaut)
    assert face.landmarks.mesh.shape == (468, 3)
    five = face.landmarks.five
    x1, y1, x2, y2 = face.detection.box
    assert np.all((five[:, 0] > x1) & (five[:, 0] < x2) & (five[:, 1] > y1) & (five[:, 1] < y2))
    assert five[0, 0] > five[2, 0]  # dlib order: image-right eye first


@pytest.mark.parametrize("image", [data.rocket(), data.coffee(), np.zeros((240, 320, 3), np.uint8),
                                   data.checkerboard()], ids=["rocket", "coffee", "black", "checkerboard"])
def test_no_face_images_give_nothing(pipeline, image):
    assert pipeline.faces(image) == []


def test_detector_handles_grey_rgba_and_odd_sizes(pipeline, astronaut):
    grey = astronaut.mean(axis=2).astype(np.uint8)
    assert len(pipeline.detector.detect(grey)) == 1
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    assert len(pipeline.detector.detect(rgba)) == 1
    wide = np.zeros((100, 1000, 3), np.uint8)
    assert pipeline.detector.detect(wide) == []


def test_misuse_raises_value_error(pipeline, astronaut):
    with pytest.raises(ValueError, match="uint8"):
        pipeline.detector.detect(astronaut.astype(np.float32))
    with pytest.raises(ImageError, match="shape"):
        pipeline.detector.detect(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ValueError, match="too small"):
        pipeline.detector.detect(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ValueError, match="min_score"):
        DetectorOptions(min_score=1.5)


def test_still_images_fall_back_to_the_full_range_detector(pipeline, astronaut):
    """A small face in a large photo: the short-range model misses it, the fallback finds it;
    a live frame (still=False) never pays for the second detector."""
    small = cv2.resize(astronaut, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    photo = np.full((640, 640, 3), 90, np.uint8)
    photo[200:200 + small.shape[0], 250:250 + small.shape[1]] = small
    assert pipeline.faces(photo) == []
    (face,) = pipeline.faces(photo, still=True)
    assert 250 < face.detection.center[0] < 250 + small.shape[1]
