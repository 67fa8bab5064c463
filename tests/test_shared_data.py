"""Real-data checks on the shared faces. The default suite runs a small sample; the full
sets run under `-m slow` (make eval). Only aggregate numbers are asserted or printed."""

import pytest
from consentry.evaluate.detection import SINGLE_FACE_SETS, detection_rates
from consentry.vision.image_io import read_image

from tests.conftest import labelled


@pytest.mark.parametrize("name", SINGLE_FACE_SETS)
def test_sample_of_each_single_face_set_is_detected(pipeline, faces_dir, name):
    sample = labelled(faces_dir / name)[::25][:8]
    found = sum(1 for path, _ in sample if pipeline.faces(read_image(path)))
    assert found >= len(sample) - 1


def test_no_face_photos_give_no_faces(pipeline, faces_dir):
    files = [p for p in sorted((faces_dir / "noface").iterdir()) if p.suffix.lower() in (".png", ".jpg")]
    assert files
    assert sum(len(pipeline.faces(read_image(p))) for p in files) == 0


@pytest.mark.slow
def test_full_detection_rate_at_least_97_percent(pipeline, faces_dir):
    report = detection_rates(pipeline, faces_dir)
    print(report)
    assert report["overall_single_face_rate"] >= 0.97
    assert report["noface"]["false_faces"] == 0
