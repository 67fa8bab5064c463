"""The staff enrolment page asks for the access-control card when a panel owns the door, refuses a
bad or taken number before the camera starts, and hands the card to the enrolment."""

from __future__ import annotations

import pytest
from consentry.config import Settings
from consentry.panel.formats import Card
from consentry.vault import KeyFile, Vault
from consentry.web.auth import hash_secret
from consentry.web.server import WebApp, WebServer
from consentry.web.state import KioskState

from tests.test_hostile_web import PIN, Client
from tests.test_vault import MODEL, consent, vectors


@pytest.fixture
def site(tmp_path):
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    vault = Vault(home, KeyFile(home / "master.key"), create=True)
    vault.set_credential("pin", hash_secret(PIN))
    vault.enroll("Someone", consent(), vectors(5), MODEL, card=Card(17, 1000))
    kiosk = KioskState()
    settings = Settings.model_validate({"panel": {"kind": "osdp", "port": "/dev/ttyUSB0", "facility": 17}})
    server = WebServer(WebApp(settings, kiosk, vault).wsgi, "127.0.0.1", 0)
    server.start()
    yield server, kiosk
    server.close()
    vault.close()


def test_the_card_field(site):
    server, kiosk = site
    c = Client(server.url)
    c.request("GET", "/enroll")
    assert c.post("/enroll/unlock", pin=PIN)[0].status == 303
    _, page = c.request("GET", "/enroll")
    assert "name='card'" in page
    for bad, why in (("12ab", "digits only"), ("70000", "0-65535"), ("1000", "already registered")):
        r, text = c.post("/enroll/start", name="A", purpose="door", age="adult", card=bad)
        assert r.status == 400 and why in text, text
        assert bad not in text.replace("name='card'", "")
    r, _ = c.post("/enroll/start", name="A", purpose="door", age="adult", card="40961")
    assert r.status == 303
    c.request("GET", "/enroll/consent")
    assert c.post("/enroll/accept")[0].status == 303
    assert kiosk.capture is not None and kiosk.capture.card == Card(17, 40961)


def test_no_card_field_for_a_relay_door():
    from consentry.web import pages

    assert "name='card'" not in pages.enroll_details("x") and "name='card'" in pages.enroll_details("x", card=True)
    assert Settings().panel.kind == "relay"
