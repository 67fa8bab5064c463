"""A subject's panel card travels inside the sealed site record: enrolled or changed on the
kiosk, it reaches the door's vault; revoked, it leaves it; the broker never sees the number."""

from __future__ import annotations

import pytest
from consentry.panel.formats import Card

from tests.broker import Mosquitto, Recorder
from tests.fleet_rig import MODEL, NAME, Door, Site, consent, mqtt_for, vectors, wait


@pytest.fixture
def mosquitto(tmp_path):
    server = Mosquitto(tmp_path).start()
    yield server
    server.stop()


def test_the_card_travels_in_the_sealed_record(tmp_path, mosquitto):
    site = Site(tmp_path, mosquitto.port)
    recorder = Recorder(mosquitto.port)
    door = Door(site.join("door1"), mqtt_for(mosquitto.port, "door1"))
    try:
        assert wait(lambda: door.service.verdict().granting, 10)
        sid = site.vault.enroll(NAME, consent(), vectors(31), MODEL, card=Card(17, 40961))
        assert wait(lambda: door.vault.exists(sid) and door.vault.card(sid) == Card(17, 40961), 5)
        site.vault.set_card(sid, Card(17, 40962))
        assert wait(lambda: door.vault.card(sid) == Card(17, 40962), 5), "a changed card was not republished"
        plain = site.vault.enroll("Other", consent(), vectors(32), MODEL)  # no card: none arrives
        assert wait(lambda: door.vault.exists(plain), 5) and door.vault.card(plain) is None
        site.vault.revoke(sid)
        assert wait(lambda: not door.vault.exists(sid), 5)
        assert not door.vault.card_in_use(Card(17, 40962))
        everything = b"".join(p for _, p, _ in recorder.messages)
        for number in (b"40961", b"40962"):
            assert number not in everything
    finally:
        recorder.close()
        door.close()
        site.close()
