"""The liveness challenge at the kiosk, in a real Chromium: the page asks for an action, a
scripted camera answers with real frames of a person doing it (the shared webcam clip in which
person_a blinks and turns his head), and the door opens; a photo cannot answer and is refused.
Withdrawal by face asks the same way, and only then offers to confirm."""

from __future__ import annotations

import time

import pytest
from consentry.camera.fake import FakeCamera

from tests.person_a import SCRIPTS, kiosk_app, person, running, scripted  # noqa: F401 - person is a fixture
from tests.test_web import CHROMIUM, browser, shot, sync_api  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


def test_the_kiosk_asks_and_a_live_person_who_does_it_gets_in(browser, person):  # noqa: F811
    home, sid, clip = person
    camera = scripted(clip)
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


def test_withdrawal_by_face_asks_on_the_kiosk_screen_then_confirms(browser, person):  # noqa: F811
    home, sid, clip = person
    camera = scripted(clip)
    app = kiosk_app(home, camera, mode="passive")
    worker = running(app)
    try:
        context = browser.new_context(base_url=app.web.url)
        screen, phone = context.new_page(), browser.new_context(base_url=app.web.url).new_page()
        screen.goto("/")
        phone.goto("/forget")
        phone.click("#use-camera")
        asked: list[str] = []
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and phone.locator("#confirm").is_hidden():
            text = screen.inner_text("#status")
            action = text.removeprefix("Forget me: ").removesuffix(" to confirm")
            match = next((a for a in SCRIPTS if a.lower() == action), None)
            if match and (not asked or asked[-1] != match):
                asked.append(match)
                shot(screen, f"23-forget-challenge-{len(asked)}")
                camera.act(match)
            time.sleep(0.1)
        assert "Blink" in asked and len(asked) == 2, asked
        shot(phone, "13-forget-camera-found")
        phone.click("#confirm-button")
        phone.wait_for_selector("#receipt")
        shot(phone, "14-forget-camera-receipt")
        assert not app.vault.exists(sid)
    finally:
        app.request_stop()
        worker.join(timeout=10)
