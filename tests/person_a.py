"""person_a of the shared webcam clips as a live person on cue: enrolled for the door from
clip 1, played from clip 2 by a scripted camera (idle, a blink, a turn each way), and the
appliance with its web page around it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from consentry.app import Appliance
from consentry.bus.fake import RecordingBus
from consentry.camera.fake import ScriptedCamera
from consentry.config import Settings
from consentry.vault import KeyFile, Vault
from consentry.vision.pipeline import largest_face
from gpiozero.pins.mock import MockFactory

from tests.test_liveness import clip_frames
from tests.test_vault import consent

# Frames of webcam_person_a_2 (15 fps): facing the camera (before the blink begins: from frame 9 his
# lids close), a blink, his turn to his left, to his right.
SCRIPTS = {"idle": (0, 6), "Blink": (8, 26), "Turn your head to your left": (52, 70),
           "Turn your head to your right": (70, 84)}


def scripted(clip: list[np.ndarray]) -> ScriptedCamera:
    return ScriptedCamera(clip, SCRIPTS)


@pytest.fixture
def person(tmp_path, faces_dir, pipeline):
    """person_a enrolled for the door and the checkout from five frames of a different clip; clip 2
    for the camera."""
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    vectors = []
    for frame in clip_frames(faces_dir / "video" / "webcam_person_a_1.wmv", every=20, limit=5):
        vectors.append(pipeline.embed(frame, largest_face(pipeline.faces(frame))).vector.copy())
        pipeline.wipe()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        sid = vault.enroll("Person A", consent(purposes=("door", "checkout")), vectors, pipeline.embedder.name)
    return home, sid, clip_frames(faces_dir / "video" / "webcam_person_a_2.wmv", every=1, limit=90)


def kiosk_app(home, camera, mode: str = "challenge", profile: str = "door") -> Appliance:
    data = Settings().model_dump()
    data["profile"] = profile
    data["http"].update(enabled=True, port=0)
    data["door"].update(unlock_seconds=0.5)
    data["tracking"].update(evidence_k=2, evidence_n=3, min_iou=0.2, visit_seconds=0.3)
    data["liveness"].update(mode=mode, challenge_step_s=4.0)
    return Appliance(Settings.model_validate(data), home=home, out=lambda line: None, camera_opener=camera.open,
                     pin_factory=MockFactory(), bus=RecordingBus())


def running(app: Appliance):
    worker = threading.Thread(target=app.run, kwargs={"handle_signals": False}, daemon=True)
    worker.start()
    for _ in range(200):
        if getattr(app, "web", None) is not None:
            break
        time.sleep(0.05)
    return worker
