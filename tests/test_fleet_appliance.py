"""A site end to end: the kiosk appliance's staff page (real Chromium) approves a door by its
code; a person enrolled at the kiosk is let in by the door appliance (real models, fake camera
playing a shared-data face); revoked at the kiosk, the door forgets them."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
from consentry.app import Appliance
from consentry.bus.fake import RecordingBus
from consentry.camera.fake import FakeCamera
from consentry.config import Settings
from consentry.fleet import identity as ids
from consentry.fleet.join import init_site, join
from consentry.fleet.records import fingerprint
from consentry.vault import KeyFile, Vault
from consentry.vision.image_io import read_image
from consentry.vision.pipeline import largest_face
from consentry.web.auth import hash_secret
from gpiozero.pins.mock import MockFactory

from tests.broker import Mosquitto
from tests.fleet_rig import NAME, consent, mqtt_for, wait

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make test installs it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
PASSWORD = "correct horse battery"


def settings(port: int, device: str, *, web: bool) -> Settings:
    data = Settings().model_dump()
    data["mqtt"].update(port=port, device_id=device)
    data["fleet"].update(heartbeat_seconds=0.3)
    data["http"].update(enabled=web, port=0)
    data["liveness"].update(mode="off")  # a replayed photo: the site, not liveness, is under test here
    data["door"].update(unlock_seconds=0.2, cooldown_seconds=0.5)
    return Settings.model_validate(data)


def start(app: Appliance) -> threading.Thread:
    worker = threading.Thread(target=app.run, kwargs={"handle_signals": False}, daemon=True)
    worker.start()
    assert wait(lambda: getattr(app, "policy", None) is not None, 30), "the appliance did not start"
    return worker


def home(tmp_path, name: str) -> tuple:
    path = tmp_path / name
    KeyFile(path / "master.key").create()
    return path, Vault(path, KeyFile(path / "master.key"), create=True)


def test_staff_approve_a_door_by_code_and_the_door_lets_the_kiosk_enrolment_in(tmp_path, faces_dir, pipeline):
    broker = Mosquitto(tmp_path).start()
    face = read_image(faces_dir / "examples" / "obama.jpg")
    frames = [np.ascontiguousarray(face[:, dx: face.shape[1] - 40 + dx]) for dx in range(0, 40, 4)]
    kiosk_home, vault = home(tmp_path, "kiosk")
    with vault:
        vault.set_credential("admin", hash_secret(PASSWORD))
        site_key = fingerprint(init_site(vault, "test site").public)
        descriptors = [pipeline.embed(f, largest_face(pipeline.faces(f))).vector.copy() for f in frames[:3]]
        sid = vault.enroll(NAME, consent(), descriptors, pipeline.embedder.name)
    kiosk = Appliance(settings(broker.port, "kiosk", web=True), home=kiosk_home, out=lambda line: None,
                      camera_opener=FakeCamera([np.zeros((240, 320, 3), np.uint8)], fps=10).open,
                      pin_factory=MockFactory(), bus=RecordingBus())
    workers = [start(kiosk)]
    door_home, door_vault = home(tmp_path, "door")
    joined: list = []
    joiner = threading.Thread(target=lambda: joined.append(join(
        door_vault, mqtt_for(broker.port, "door"), site=None, site_key=site_key, label="back door", timeout=60,
        out=lambda t: None)))
    try:
        joiner.start()
        assert wait(lambda: door_vault.secret(ids.SECRET) is not None, 10)
        me = ids.load(door_vault.secret(ids.SECRET), door_vault.transform)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(base_url=kiosk.web.url)
            page.goto("/admin")
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_selector("#subjects")
            sync_api.expect(page.locator("#site-key")).to_contain_text(site_key)
            for _ in range(50):  # the door's retained request reaches the kiosk just after it asks
                if page.locator("#doors td", has_text=me.door).count():
                    break
                time.sleep(0.1)
                page.goto("/admin")
            row = page.locator("#doors tr", has_text=me.door)
            row.locator("input[name=code]").fill("000 000" if me.code != "000 000" else "111 111")
            row.locator("button.approve").click()
            sync_api.expect(page.locator("#doors-note")).to_contain_text("does not match")
            page.locator("#doors tr", has_text=me.door).locator("input[name=code]").fill(me.code)
            page.locator("#doors tr", has_text=me.door).locator("button.approve").click()
            joiner.join(30)
            assert joined, "the door was not approved"
            page.goto("/admin")
            sync_api.expect(page.locator("#doors tr", has_text=me.door)).to_contain_text("approved")
            browser.close()
        door_vault.close()
        bus = RecordingBus()
        door = Appliance(settings(broker.port, "door", web=False), home=door_home, out=lambda line: None,
                         camera_opener=FakeCamera(frames, fps=15).open, pin_factory=MockFactory(), bus=bus)
        workers.append(start(door))
        granted = lambda: [e for e in bus.of("event/access") if e["decision"] == "granted"]  # noqa: E731
        assert wait(lambda: any(e["subject"] == sid for e in granted()), 20), bus.of("event/access")[-3:]
        kiosk.vault.revoke(sid)
        assert wait(lambda: not door.vault.exists(sid) and sid not in door.gallery, 2.0)
        assert door.vault.subjects(show_names=True)[0:0] == [] and not door.vault.subjects()
    finally:
        kiosk.request_stop()
        if len(workers) > 1:
            door.request_stop()
        for w in workers:
            w.join(timeout=10)
        broker.stop()
