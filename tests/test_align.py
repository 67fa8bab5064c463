"""The aligner reproduces dlib's chip geometry and writes into the buffer it is given."""

import numpy as np
import pytest
from consentry.vision.align import _MEAN_FIVE, CHIP_PADDING, CHIP_SIZE, extract_chip


def _chip_points(scale=1.0, offset=(0.0, 0.0)):
    pts = (CHIP_PADDING + _MEAN_FIVE) / (2 * CHIP_PADDING + 1) * CHIP_SIZE
    return pts * scale + np.asarray(offset)


def test_landmarks_already_in_chip_position_copy_the_image():
    yy, xx = np.mgrid[0:CHIP_SIZE + 40, 0:CHIP_SIZE + 40]
    image = np.dstack([xx, yy, (xx + yy) // 2]).astype(np.uint8)  # smooth ramps
    chip = extract_chip(image, _chip_points(offset=(20, 20)))
    # dlib's geometry puts chip pixels within half a frame pixel of the source pixels.
    inner = chip[5:-5, 5:-5].astype(int) - image[25:-25, 25:-25].astype(int)
    assert np.abs(inner).max() <= 1


def test_samples_outside_the_image_are_zero():
    image = np.full((200, 200, 3), 200, np.uint8)
    chip = extract_chip(image, _chip_points(offset=(-100, -100)))
    assert chip[0, 0].tolist() == [0, 0, 0]
    assert chip[-1, -1].tolist() == [200, 200, 200]


def test_large_faces_go_through_the_pyramid_and_keep_geometry():
    image = np.zeros((1200, 1200, 3), np.uint8)
    image[:, 600:] = 255  # right half white
    chip = extract_chip(image, _chip_points(scale=6.0, offset=(600 - 75 * 6, 150)))
    assert chip[:, :70].mean() < 10 and chip[:, 80:].mean() > 245


def test_writes_into_the_given_buffer_and_checks_it(astronaut):
    buf = np.zeros((CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    out = extract_chip(astronaut, _chip_points(offset=(150, 50)), out=buf)
    assert out is buf and buf.any()
    with pytest.raises(ValueError, match="chip buffer"):
        extract_chip(astronaut, _chip_points(), out=np.zeros((10, 10, 3), np.uint8))
