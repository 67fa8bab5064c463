"""A still of the enrolled person fed as a camera stream (or a stream that froze) never opens
the door, through the whole appliance; the person's own webcam video, re-encoded as it is,
still does. The frame-to-frame figures behind the bound are in docs/liveness.md."""

from __future__ import annotations

import numpy as np
import pytest
from consentry.camera.fake import FakeCamera
from consentry.decide.frozen import changed_share, face_grey
from consentry.vault import KeyFile, Vault
from consentry.vision.pipeline import largest_face

from tests.test_appliance import appliance, settings
from tests.test_liveness import clip_frames
from tests.test_vault import consent

CLIP = "webcam_person_a_1.wmv"


@pytest.fixture(scope="module")
def person(tmp_path_factory, pipeline, faces_dir):
    """person_a enrolled from frames of another of their clips; frames of CLIP to present."""
    home = tmp_path_factory.mktemp("frozen") / "home"
    KeyFile(home / "master.key").create()
    vectors = []
    for image in clip_frames(faces_dir / "video" / "webcam_person_a_2.wmv", every=15, limit=4):
        face = largest_face(pipeline.faces(image, still=True))
        vectors.append(pipeline.embed(image, face).vector.copy())
        pipeline.wipe()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        sid = vault.enroll("person a", consent(), vectors, pipeline.embedder.name)
    return home, sid, clip_frames(faces_dir / "video" / CLIP, every=1, limit=60)


def door_events(home, frames) -> list[dict]:
    app = appliance(settings(liveness={"mode": "passive", "challenge_unclear": False}), home,
                    FakeCamera(frames, fps=15, loop=False))
    app.run(max_frames=len(frames))
    return app.bus.of("event/access")


def test_a_still_fed_as_forty_identical_frames_is_denied_as_a_frozen_source(person):
    home, sid, frames = person
    still = frames[40]
    events = door_events(home, [still.copy() for _ in range(40)])
    assert events, "the still was never recognised, so it tested nothing"
    assert not [e for e in events if e["decision"] == "granted"], events
    assert {(e["subject"], e["reason"]) for e in events} == {(sid, "frozen_source")}


def test_the_persons_own_video_is_still_let_in(person):
    home, sid, frames = person
    granted = [e for e in door_events(home, frames) if e["decision"] == "granted"]
    assert granted and granted[0]["subject"] == sid


def test_the_change_measure_is_zero_only_for_a_repeated_frame(person, pipeline):
    _, _, frames = person
    box = largest_face(pipeline.faces(frames[0])).detection.box
    before = face_grey(frames[0], box)
    assert changed_share(before, frames[0].copy(), box) == 0.0
    assert changed_share(before, frames[1], box) > 0.05  # the next real frame: noise and motion
    noisy = np.clip(frames[0].astype(np.int16) + np.random.default_rng(1).integers(-2, 3, frames[0].shape), 0, 255)
    assert changed_share(before, noisy.astype(np.uint8), box) > 0.5
