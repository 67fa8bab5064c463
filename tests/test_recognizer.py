"""The recognition path on real models: tracking, gating, and the stranger's buffers.

The astronaut (skimage, public domain) plays the stranger: the gallery holds a template
placed just beyond the threshold from her own embedding, the nearest a stranger can be.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from consentry.decide.adapt import MatchHold
from consentry.decide.recognizer import Recognizer
from consentry.decide.visit import VisitOptions
from consentry.match import Gallery, MatchPolicy
from consentry.vision.pipeline import largest_face
from consentry.vision.tracking import FaceTracker, TrackingOptions

THRESHOLD = 0.6
ONE_PHOTO = VisitOptions(min_frames=1, frames=1, budget_s=0.0)  # decide on the first frame


@pytest.fixture
def astronaut_vector(pipeline, astronaut) -> np.ndarray:
    face = largest_face(pipeline.faces(astronaut))
    vector = pipeline.embed(astronaut, face).vector.copy()
    pipeline.wipe()
    return vector


def template_at(vector: np.ndarray, distance: float) -> np.ndarray:
    direction = np.random.default_rng(3).standard_normal(128).astype(np.float32)
    return vector + distance * direction / np.linalg.norm(direction)


def gallery_with(pipeline, *templates: tuple[str, np.ndarray]) -> Gallery:
    gallery = Gallery(pipeline.embedder.name, MatchPolicy(threshold=THRESHOLD))
    gallery.replace(templates)
    return gallery


def black_chip_output(pipeline) -> np.ndarray:
    out = np.zeros(128, np.float32)
    pipeline.embedder.model.run(np.zeros((1, 150, 150, 3), np.uint8), out=out)
    return out


def interpreter_output(pipeline) -> np.ndarray:
    model = pipeline.embedder.model
    return model._interp.get_tensor(model.outputs[0].index).reshape(-1)


def test_stranger_buffers_are_zeroed_after_the_no_match_decision(pipeline, astronaut, astronaut_vector):
    gallery = gallery_with(pipeline, ("s-near", template_at(astronaut_vector, THRESHOLD + 0.01)))
    tracker = FaceTracker(pipeline)
    seen: list = []
    original = tracker.process

    def spy(image):
        observations = original(image)
        seen.extend(observations)
        return observations

    tracker.process = spy
    recognizer = Recognizer(tracker, gallery, ONE_PHOTO)
    recognizer.hold = MatchHold()  # a door that learns (decide/adapt.py) holds nothing of a stranger
    frame = astronaut.copy()
    (result,) = recognizer.step(frame)
    assert len(recognizer.hold) == 0

    assert (result.state, result.subject, result.distance) == ("unknown", None, None)
    assert result.embedded
    (obs,) = seen
    # The embedding handed to the decision was a view of the pipeline's slot, not a copy ...
    assert np.shares_memory(obs.embedding.vector, pipeline.vectors)
    # ... and every buffer that held the stranger is zero once the decision is made.
    assert not np.any(obs.embedding.vector)
    assert not np.any(pipeline.vectors)
    assert not np.any(pipeline.chip)
    assert not np.any(pipeline.quality.patch)
    assert not np.any(pipeline.embedder._input)
    assert all(not np.any(buf) for buf in gallery.scratch_buffers())
    # The interpreter's output tensor now holds the embedding of a black chip, not hers.
    assert np.allclose(interpreter_output(pipeline), black_chip_output(pipeline))


def test_enrolled_face_matches_and_just_beyond_threshold_does_not(pipeline, astronaut, astronaut_vector):
    near = gallery_with(pipeline, ("s-me", template_at(astronaut_vector, THRESHOLD - 0.02)))
    far = gallery_with(pipeline, ("s-me", template_at(astronaut_vector, THRESHOLD + 0.002)))
    for gallery, state in ((near, "match"), (far, "unknown")):
        recognizer = Recognizer(FaceTracker(pipeline), gallery, ONE_PHOTO)
        (result,) = recognizer.step(astronaut)
        assert result.state == state
    # The same image embeds identically each time, so these are decisions about the margin.
    assert abs(Recognizer(FaceTracker(pipeline), near, ONE_PHOTO).step(astronaut)[0].distance
               - (THRESHOLD - 0.02)) < 1e-3


def test_track_is_embedded_until_settled_then_rechecked_at_the_interval(pipeline, astronaut, astronaut_vector):
    gallery = gallery_with(pipeline, ("s-me", astronaut_vector))
    tracker = FaceTracker(pipeline, TrackingOptions(recheck_frames=4))
    recognizer = Recognizer(tracker, gallery, VisitOptions(min_frames=2, frames=3))
    results = [recognizer.step(astronaut)[0] for _ in range(8)]
    assert len({r.track_id for r in results}) == 1
    assert [r.embedded for r in results] == [True, True, False, False, False, True, False, False]
    assert [r.state for r in results][:2] == ["pending", "match"]
    assert results[-1].subject == "s-me"


def test_gated_faces_are_never_embedded(pipeline, astronaut):
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 4)
    small = cv2.resize(astronaut, None, fx=0.3, fy=0.3)
    tracker = FaceTracker(pipeline)
    for image, reason in ((blurred, "blurry"), (small, "too_small")):
        (obs,) = tracker.process(image)
        assert reason in obs.quality.reasons and obs.embedding is None
        tracker.wipe()
    good = tracker.process(astronaut)[0]
    assert good.quality.ok and good.embedding is not None
    tracker.wipe()


def test_tracks_follow_a_moving_face_and_expire(pipeline, astronaut):
    tracker = FaceTracker(pipeline, TrackingOptions(max_missed=1))
    shifted = np.roll(astronaut, 12, axis=1)
    first = tracker.process(astronaut)[0].track_id
    assert tracker.process(shifted)[0].track_id == first
    blank = np.zeros_like(astronaut)
    tracker.process(blank)
    tracker.process(blank)
    assert first not in tracker.tracks
    assert tracker.process(astronaut)[0].track_id != first
    tracker.wipe()


def test_a_subject_revoked_mid_visit_is_never_granted_from_the_tracks_old_votes(pipeline, astronaut,
                                                                                  astronaut_vector):
    gallery = gallery_with(pipeline, ("s-me", astronaut_vector))
    recognizer = Recognizer(FaceTracker(pipeline, TrackingOptions(recheck_frames=50)), gallery,
                            VisitOptions(min_frames=2, frames=3))
    states = [recognizer.step(astronaut)[0].state for _ in range(3)]
    assert states[-1] == "match"
    gallery.remove("s-me")  # revoked while the person is still in front of the camera
    after = recognizer.step(astronaut)[0]
    assert after.state != "match" and after.subject is None


def test_faces_of_a_320x240_video_are_large_enough_to_embed(pipeline, astronaut):
    """The held-out door clips were 320x240 with faces 43-54 px wide; the size gate (40 px) must
    let such a face through (docs/thresholds.md measures what it costs)."""
    width = largest_face(pipeline.faces(astronaut)).detection.width
    scale = 46.0 / width
    small = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.zeros((240, 320, 3), np.uint8)
    h, w = min(small.shape[0], 240), min(small.shape[1], 320)
    frame[:h, :w] = small[:h, :w]
    tracker = FaceTracker(pipeline)
    (obs,) = tracker.process(frame)
    tracker.wipe()
    assert 40 <= obs.quality.face_px <= 52 and "too_small" not in obs.quality.reasons
