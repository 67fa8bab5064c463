"""Guidance without pixels, in a real Chromium against the running appliance: a scripted fake
camera moves an enrolled face across the frame and brings it closer, and the home screen's
outline follows it (mirrored, as a screen facing the person); a stranger gets "a face is seen"
and advice words, never a box or any other figure. Screenshots go to $CONSENTRY_ARTIFACTS."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from consentry.app import Appliance
from consentry.bus.fake import RecordingBus
from consentry.camera.fake import FakeCamera
from consentry.config import Settings
from consentry.vault import KeyFile, Vault
from consentry.vault.disclosure import subject_record
from consentry.vision.image_io import read_image
from consentry.vision.pipeline import largest_face
from consentry.web.auth import hash_secret
from gpiozero.pins.mock import MockFactory

from tests.person_a import running
from tests.test_vault import consent
from tests.test_web import CHROMIUM, PIN, browser, shot, sync_api  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
H, W = 480, 640


class PlacedCamera(FakeCamera):
    """A portrait pasted on a plain 640x480 frame at a position and height the test sets."""

    def __init__(self, portrait: np.ndarray, fps: float = 12.0) -> None:
        super().__init__([np.zeros((H, W, 3), np.uint8)], fps=fps)
        self.portrait = portrait
        self.lock = threading.Lock()
        self.place(40, 300)

    def place(self, x: int, height: int) -> None:
        ph, pw = self.portrait.shape[:2]
        small = cv2.resize(self.portrait, (round(pw * height / ph), height), interpolation=cv2.INTER_AREA)
        frame = np.full((H, W, 3), 128, np.uint8)
        y = (H - height) // 2
        frame[y:y + height, x:x + small.shape[1]] = small[:, : W - x]
        with self.lock:
            self.frame = frame

    def frames(self):
        while True:
            time.sleep(self.period)
            with self.lock:
                frame = self.frame.copy()
            self.reads += 1
            yield frame


def appliance(home, camera) -> Appliance:
    data = Settings().model_dump()
    data["http"].update(enabled=True, port=0)
    data["door"].update(unlock_seconds=0.5)
    data["tracking"].update(evidence_k=2, evidence_n=3, visit_seconds=0.3)
    data["liveness"].update(mode="off")
    return Appliance(Settings.model_validate(data), home=home, out=lambda line: None, camera_opener=camera.open,
                     pin_factory=MockFactory(), bus=RecordingBus())


@pytest.fixture
def kiosk(tmp_path, faces_dir, pipeline, request):
    """The appliance with Obama enrolled ("greeted": he asked for a greeting), or nobody, and its camera."""
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    portrait = read_image(faces_dir / "examples" / "obama.jpg")
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        vault.set_credential("pin", hash_secret(PIN))
        if request.param in ("enrolled", "greeted"):
            vector = pipeline.embed(portrait, largest_face(pipeline.faces(portrait))).vector.copy()
            pipeline.wipe()
            vault.enroll("Barack Example", consent(greeting=request.param == "greeted"), [vector],
                         pipeline.embedder.name)
    camera = PlacedCamera(portrait)
    app = appliance(home, camera)
    worker = running(app)
    yield app, camera
    app.request_stop()
    worker.join(timeout=10)


def outline(page) -> tuple[float, float, float] | None:
    face = page.locator("#face")
    if face.get_attribute("visibility") != "visible":
        return None
    return tuple(float(face.get_attribute(a)) for a in ("cx", "cy", "rx"))


def wait_for(page, test, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = outline(page)
        if seen is not None and test(seen):
            return seen
        time.sleep(0.15)
    raise AssertionError(f"the outline never got there (last: {outline(page)})")


@pytest.mark.parametrize("kiosk", ["enrolled"], indirect=True)
def test_the_outline_follows_a_face_that_moves_and_comes_closer(browser, kiosk):  # noqa: F811
    app, camera = kiosk
    page = browser.new_context(base_url=app.web.url, viewport={"width": 1024, "height": 700}).new_page()
    page.goto("/")
    first = wait_for(page, lambda s: True)
    assert first[0] > 80, "a face on the frame's left is drawn on the screen's right (mirrored)"
    shot(page, "30-guidance-left")
    camera.place(200, 470)  # to the right of the frame, and nearer
    second = wait_for(page, lambda s: s[0] < first[0] - 20 and s[2] > first[2] * 1.1)
    assert second[2] > first[2] * 1.1
    shot(page, "31-guidance-right-closer")
    state = page.request.get("/api/kiosk").json()
    assert set(state) == {"decision", "mode", "prompt", "advice", "face", "box", "greeting"}
    assert state["greeting"] is None
    sync_api.expect(page.locator("#status")).to_have_text("Welcome", timeout=15000)
    assert "Barack" not in page.content()  # no greeting was asked for: never a name
    page.goto("/?lang=de")
    sync_api.expect(page.locator("h1")).to_have_text("Gesichtserkennung, nur mit Einwilligung")
    wait_for(page, lambda s: True)
    shot(page, "33-guidance-de")


CONSENT_SCREEN = {"de": ("Bitte lesen Sie dies, bevor Sie zustimmen", "Gesichtserkennung zum Öffnen dieser Tür"),
                  "en": ("Please read before you agree", "Face recognition for opening this door")}


@pytest.mark.parametrize("kiosk", ["nobody"], indirect=True)
@pytest.mark.parametrize("lang", ["de", "en"])
def test_enrolment_shows_the_face_and_a_ring_and_records_the_text_in_its_language(browser, kiosk, lang):  # noqa: F811
    app, camera = kiosk
    locale = {"de": "de-DE", "en": "en-US"}[lang]
    page = browser.new_context(base_url=app.web.url, locale=locale, viewport={"width": 1024, "height": 700}).new_page()
    camera.place(600, 200)  # nobody in the middle yet (the face is cut off at the edge)
    page.goto("/enroll")
    page.fill("#pin", PIN)
    page.click("button[type=submit]")
    page.fill("#name", "Obama Example")
    if lang == "de":
        page.check("#greet")  # asked to be greeted by first name
    page.click("#next")
    heading, title = CONSENT_SCREEN[lang]
    sync_api.expect(page.locator("h1")).to_have_text(heading)
    assert title in page.inner_text("#consent-text")
    shot(page, f"34-consent-{lang}")
    page.click("#accept")
    page.wait_for_selector("#ring")
    camera.place(40, 300)
    seen = wait_for(page, lambda s: True)
    assert seen[0] > 80
    shot(page, f"35-capture-{lang}")
    page.wait_for_url("**/enroll/done", timeout=30000)
    sid = app.vault.subjects()[0].id
    consent = subject_record(app.vault, sid).consent
    assert consent.language == lang and consent.consent_id == "consentry-door"
    assert consent.greeting == (lang == "de")


@pytest.mark.parametrize("kiosk", ["stranger"], indirect=True)
def test_a_stranger_is_only_a_face_that_is_seen(browser, kiosk):  # noqa: F811
    app, camera = kiosk
    page = browser.new_context(base_url=app.web.url, viewport={"width": 1024, "height": 700}).new_page()
    page.goto("/")
    sync_api.expect(page.locator("#seen")).to_be_visible(timeout=30000)
    states = []
    for x, height in ((40, 300), (300, 420), (150, 80)):  # moves, nears, and is too far away to use
        camera.place(x, height)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            states.append(page.request.get("/api/kiosk").json())
            assert outline(page) is None
            time.sleep(0.2)
    shot(page, "32-guidance-stranger")
    seen = [s for s in states if s["face"]]
    assert seen, "the stranger's face was never seen"
    for s in states:  # words and a flag, never a figure
        assert s["box"] is None
        assert all(v is None or isinstance(v, bool | str) for v in s.values()), s
    assert any(s["decision"] == "unknown" for s in states)


@pytest.mark.parametrize("kiosk", ["greeted"], indirect=True)
def test_a_person_who_asked_for_a_greeting_is_greeted_by_first_name(browser, kiosk):  # noqa: F811
    app, camera = kiosk
    page = browser.new_context(base_url=app.web.url, locale="fr-FR").new_page()
    page.goto("/")
    sync_api.expect(page.locator("#status")).to_have_text("Bienvenue, Barack", timeout=30000)
    assert "Example" not in page.content()  # the first name only
