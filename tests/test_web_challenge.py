"""The liveness challenge at the kiosk, in a real Chromium: the page asks for an action, a
scripted camera answers with real frames of a person doing it (the shared webcam clip in which
person_a blinks and turns his head), and the door opens; a photo cannot answer and is refused."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from consentry.app import Appliance
from consentry.bus.fake import RecordingBus
from consentry.camera.fake import FakeCamera
from consentry.config import Settings
from consentry.vault import KeyFile, Vault
from consentry.vision.pipeline import largest_face
from gpiozero.pins.mock import MockFactory

from tests.test_liveness import clip_frames
from tests.test_vault import consent
from tests.test_web import CHROMIUM, browser, shot, sync_api  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

# Frames of webcam_person_a_2 (15 fps): facing the camera, a blink, his turn to his left, to his right.
SCRIPTS = {"idle": (0, 12), "Blink": (8, 26), "Turn your head to your left": (52, 70),
           "Turn your head to your right": (70, 84)}


class ScriptedCamera(FakeCamera):
    """Plays the idle frames to and fro; ``act(prompt)`` plays that action's frames once, then
    back the same way, then idle again."""

    def __init__(self, clip: list[np.ndarray], fps: float = 15.0) -> None:
        super().__init__(clip, fps=fps)
        self.clip = clip
        self.queue: list[np.ndarray] = []
        self.lock = threading.Lock()

    def act(self, prompt: str) -> None:
        a, b = SCRIPTS[prompt]
        with self.lock:
            self.queue = self.clip[a:b] + self.clip[a:b][::-1]

    def frames(self):
        idle = self.clip[slice(*SCRIPTS["idle"])]
        idle = idle + idle[::-1]
        i = 0
        while True:
            time.sleep(self.period)
            with self.lock:
                frame = self.queue.pop(0) if self.queue else idle[i % len(idle)]
            i += 1
            self.reads += 1
            yield frame.copy()


def kiosk_app(home, camera, mode: str = "challenge") -> Appliance:
    data = Settings().model_dump()
    data["http"].update(enabled=True, port=0)
    data["door"].update(unlock_seconds=0.5)
    data["tracking"].update(evidence_k=2, evidence_n=3, min_iou=0.2, visit_seconds=0.3)
    data["liveness"].update(mode=mode, challenge_step_s=4.0)
    return Appliance(Settings.model_validate(data), home=home, out=lambda line: None, camera_opener=camera.open,
                     pin_factory=MockFactory(), bus=RecordingBus())


@pytest.fixture
def person(tmp_path, faces_dir, pipeline):
    """person_a enrolled for the door from five frames of a different clip; clip 2 for the camera."""
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    vectors = []
    for frame in clip_frames(faces_dir / "video" / "webcam_person_a_1.wmv", every=20, limit=5):
        vectors.append(pipeline.embed(frame, largest_face(pipeline.faces(frame))).vector.copy())
        pipeline.wipe()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        sid = vault.enroll("Person A", consent(), vectors, pipeline.embedder.name)
    return home, sid, clip_frames(faces_dir / "video" / "webcam_person_a_2.wmv", every=1, limit=90)


def running(app: Appliance):
    worker = threading.Thread(target=app.run, kwargs={"handle_signals": False}, daemon=True)
    worker.start()
    for _ in range(200):
        if getattr(app, "web", None) is not None:
            break
        time.sleep(0.05)
    return worker


def test_the_kiosk_asks_and_a_live_person_who_does_it_gets_in(browser, person):  # noqa: F811
    home, sid, clip = person
    camera = ScriptedCamera(clip)
    app = kiosk_app(home, camera)
    worker = running(app)
    try:
        page = browser.new_context(base_url=app.web.url).new_page()
        page.goto("/")
        asked: list[str] = []
        deadline = time.monotonic() + 40.0
        while time.monotonic() < deadline:
            text = page.inner_text("#status")
            if text == "Welcome":
                break
            if text in SCRIPTS and (not asked or asked[-1] != text):
                asked.append(text)
                shot(page, f"20-challenge-{len(asked)}")
                camera.act(text)
            time.sleep(0.1)
        shot(page, "21-challenge-granted")
        granted = [e for e in app.bus.of("event/access") if e["decision"] == "granted"]
        assert granted and granted[0]["subject"] == sid and granted[0]["liveness"] == "passed", asked
        assert "Blink" in asked and len(asked) >= 2
    finally:
        app.request_stop()
        worker.join(timeout=10)


def test_a_photo_cannot_answer_the_challenge(browser, person):  # noqa: F811
    home, sid, clip = person
    camera = FakeCamera([clip[3], clip[4], clip[5], clip[4]], fps=15)  # a still, barely moving
    app = kiosk_app(home, camera)
    worker = running(app)
    try:
        page = browser.new_context(base_url=app.web.url).new_page()
        page.goto("/")
        deadline = time.monotonic() + 20.0
        seen = set()
        while time.monotonic() < deadline and not app.bus.of("event/access"):
            seen.add(page.inner_text("#status"))
            time.sleep(0.1)
        events = app.bus.of("event/access")
        assert events and events[0]["decision"] == "denied" and events[0]["reason"] == "challenge_failed"
        assert seen & set(SCRIPTS), seen  # the page did ask
        sync_api.expect(page.locator("#status")).to_have_text("Not accepted: please ask staff", timeout=5000)
        shot(page, "22-challenge-photo-refused")
        assert not [e for e in events if e["decision"] == "granted"]
    finally:
        app.request_stop()
        worker.join(timeout=10)
