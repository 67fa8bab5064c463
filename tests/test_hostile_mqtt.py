"""Hostile MQTT input: no payload on a subscribed topic may stop the appliance, cut its link,
or be answered as something it is not. Fuzzed with hypothesis (a few hundred examples here,
many more under ``-m slow``)."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from consentry.bus.commands import SUBJECT_ID, CommandGate, request_id_of, signature
from consentry.bus.fake import RecordingBus
from consentry.bus.mqtt import MqttBus, parse_request
from consentry.camera.fake import FakeCamera
from consentry.config import MqttConfig
from consentry.vault import KeyFile, Vault
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_appliance import appliance, home, panned  # noqa: F401 - fixture
from tests.test_appliance import settings as app_settings

SECRET = b"shared-secret-for-tests"
SUBJECT = "s-0123456789abcdef"
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MANY = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Seen:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def remember_command(self, request_id: str, now: float, max_age: float) -> bool:
        fresh = request_id not in self.ids
        self.ids.add(request_id)
        return fresh


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "cmd.secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def signed(request_id: str = "c1", subject: str = SUBJECT, ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    return {"request_id": request_id, "subject": subject, "ts": ts, "hmac": signature(SECRET, request_id, subject, ts)}


@pytest.mark.parametrize("raw_ts", ["1e999", "-1e999", "1" + "0" * 4000, "-1" + "0" * 4000, "NaN", "true",
                                    '"12"', "[1]", "null"])
def test_absurd_timestamps_are_refused_not_raised(secret_file, raw_ts):
    text = '{"request_id": "c1", "subject": "' + SUBJECT + '", "ts": ' + raw_ts + ', "hmac": "' + "0" * 64 + '"}'
    payload = json.loads(text)
    command, error = CommandGate(secret_file, Seen()).check(payload)
    assert command is None and error == "bad timestamp"


@pytest.mark.parametrize("mac", ["é" * 64, "\x00" * 64, "0" * 63, 12, None, ["a"]])
def test_a_fresh_command_with_a_malformed_hmac_is_a_bad_signature(secret_file, mac):
    command, error = CommandGate(secret_file, Seen()).check({**signed(), "hmac": mac})
    assert command is None and error == "bad signature"


@pytest.mark.parametrize("request_id", [None, True, 7, "", "x" * 65, "a b", "ü"])
def test_a_request_id_that_is_not_a_string_id_is_never_echoed(request_id):
    assert request_id_of({"request_id": request_id}) is None


def test_a_revoke_result_echoes_no_subject_that_failed_validation(home, astronaut, secret_file):  # noqa: F811
    path, sid = home
    s = app_settings(profile="door", mqtt={"command_secret_file": str(secret_file)})
    app = appliance(s, path, FakeCamera(panned(astronaut), fps=30), bus=RecordingBus())
    app.start()
    try:
        for request_id, subject in (("r1", "<script>alert(1)</script>"), ("r2", "s-" + "0" * 15), ("r3", SUBJECT)):
            app._revoke_command({"request_id": request_id, "subject": subject, "ts": int(time.time()),
                                 "hmac": "0" * 64})
        results = {r["request_id"]: r for r in app.bus.of("cmd/revoke/result")}
        assert results["r1"]["subject"] is None and results["r1"]["error"] == "bad subject"
        assert results["r2"]["subject"] is None and results["r2"]["error"] == "bad subject"
        assert results["r3"]["subject"] == SUBJECT and results["r3"]["error"] == "bad signature"
        assert app.vault.exists(sid)
    finally:
        app.stop()


def test_a_good_command_passes_once_and_its_replay_is_refused_after_a_restart(tmp_path, secret_file):
    store = tmp_path / "home"
    keyfile = KeyFile(store / "master.key")
    keyfile.create()
    payload = signed("c-restart")
    with Vault(store, keyfile, create=True) as vault:
        command, error = CommandGate(secret_file, vault).check(payload)
        assert error is None and command.subject == SUBJECT
    with Vault(store, keyfile) as vault:  # "after a restart": a new process opens the same store
        assert CommandGate(secret_file, vault).check(payload) == (None, "replayed command")
        later = CommandGate(secret_file, vault, clock=lambda: time.time() + 600)
        assert later.check(payload) == (None, "stale command")


def test_a_document_nested_a_thousand_deep_is_refused():
    assert parse_request(b"[" * 1000 + b"]" * 1000) is None
    assert parse_request(b'{"a":' * 1000 + b"1" + b"}" * 1000) is None
    assert parse_request(b'{"request_id": "r1", "subject": "s-1"}') == {"request_id": "r1", "subject": "s-1"}
    assert parse_request(b"x" * 5000) is None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)
payloads = st.dictionaries(st.sampled_from(["request_id", "subject", "ts", "hmac", "mode", "x"]), json_values,
                           max_size=6)


def _drain_hostile(app, examples) -> None:
    for topic, payload in examples:
        raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        parsed = parse_request(raw)
        if parsed is not None:
            app.bus.inbox.put((topic, parsed))
    app._drain_inbox()


def _fuzz(home,  # noqa: F811 - the fixture's value
           astronaut, secret_file, profile: str, budget):
    path, sid = home
    s = app_settings(profile=profile, mqtt={"command_secret_file": str(secret_file)})
    app = appliance(s, path, FakeCamera(panned(astronaut), fps=30), bus=RecordingBus())
    app.start()
    try:
        @budget
        @given(st.lists(st.tuples(st.sampled_from(["checkout/request", "cmd/revoke"]),
                                  payloads | st.binary(max_size=64)), max_size=5))
        def run(examples):
            _drain_hostile(app, examples)

        run()
        assert app.vault.exists(sid), "no unsigned message revoked anyone"
        for result in app.bus.of("cmd/revoke/result") + app.bus.of("checkout/response"):
            assert result["request_id"] is None or isinstance(result["request_id"], str)
        for result in app.bus.of("cmd/revoke/result"):
            assert result["subject"] is None or SUBJECT_ID.fullmatch(result["subject"]), "an invalid id was echoed"
    finally:
        app.stop()


@pytest.mark.parametrize("profile", ["door", "checkout"])
def test_fuzzed_requests_never_stop_the_appliance(home, astronaut, secret_file, profile):  # noqa: F811
    _fuzz(home, astronaut, secret_file, profile, FAST)


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["door", "checkout"])
def test_fuzzed_requests_never_stop_the_appliance_many(home, astronaut, secret_file, profile):  # noqa: F811
    _fuzz(home, astronaut, secret_file, profile, MANY)


def test_a_deeply_nested_message_does_not_cut_the_link(broker):
    """Over a real broker: after hostile documents on both subscribed topics, requests still
    arrive, events still go out, and the link reports itself connected."""
    bus = MqttBus(MqttConfig(port=broker.port, device_id="dev-1", discovery_prefix=None))
    bus.start()
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    try:
        assert bus.connected.wait(10)
        for topic in ("checkout/request", "cmd/revoke"):
            for body in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 5000, b"\xff\xfe", b"1e999"):
                sender.publish(f"consentry/dev-1/{topic}", body, qos=1).wait_for_publish(5)
        sender.publish("consentry/dev-1/checkout/request", json.dumps({"request_id": "after"}), qos=1)
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            try:
                got = bus.inbox.get(timeout=0.2)
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
        assert got == ("checkout/request", {"request_id": "after"})
        assert bus.link_status() == "connected"
    finally:
        sender.loop_stop()
        sender.disconnect()
        bus.close()


# -- a hostile broker: mosquitto with no ACL, anyone publishes anything (issue 23) ---------------
def _hostile_publish(port: int, topic: str, payload: bytes, retain: bool = True) -> None:
    _hostile_many(port, [(topic, payload, retain)])


def _hostile_many(port: int, messages: list[tuple[str, bytes, bool]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hostile-{time.time_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload, retain in messages:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def open_site(tmp_path):
    from tests.broker import Mosquitto
    from tests.fleet_rig import Site

    broker = Mosquitto(tmp_path).start()  # allow_anonymous, no ACL: anyone may write anything
    site = Site(tmp_path, broker.port)
    yield site, broker
    site.close()
    broker.stop()


def _impostor(site_id: str):
    from consentry.fleet.records import VERSION, b64, public_bytes, sign
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    body = {"v": VERSION, "kind": "announce", "site": site_id, "label": "test site",
            "signing_key": b64(public_bytes(key.public_key())), "issued": time.time()}
    return key, sign(key, body)


def test_hostile_broker_an_impostor_announcement_never_completes_a_join(open_site, tmp_path):
    """The attacker announces the site's id with its own key (replacing the retained
    announcement, and again on a topic of its own) and grants every door that asks: the door,
    pinned to the fingerprint read on the kiosk, never joins through it."""
    import threading

    from consentry.errors import ConsentryError
    from consentry.fleet import identity as ids
    from consentry.fleet.join import join
    from consentry.fleet.records import VERSION, b64, sign

    from tests.broker import Recorder
    from tests.fleet_rig import mqtt_for, open_vault, wait

    site, broker = open_site
    seen = Recorder(broker.port, "consentry/sites/#")
    assert seen.wait_for(lambda r: r.messages), "the kiosk never announced itself"
    seen.close()
    key, announcement = _impostor(site.identity.site)
    _hostile_publish(broker.port, f"consentry/sites/{site.identity.site}", announcement)
    vault = open_vault(tmp_path, "door")
    with pytest.raises(ConsentryError, match="announces the signing key"):
        join(vault, mqtt_for(broker.port, "door"), site=None, site_key=site.fingerprint, label="d", timeout=3,
             out=lambda t: None)
    assert vault.secret(ids.SECRET) is None
    site.service.site.announce()  # the kiosk's own, back; the impostor's stays on a topic of its own
    _hostile_publish(broker.port, "consentry/sites/impostor", announcement)
    errors: list[BaseException] = []
    worker = threading.Thread(target=lambda: _join_into(errors, vault, broker.port, site.fingerprint))
    worker.start()
    assert wait(lambda: vault.secret(ids.SECRET) is not None, 10)
    me = ids.load(vault.secret(ids.SECRET), vault.transform)
    assert me.site_public == site.identity.public  # pinned to the kiosk's key, not the impostor's
    grant = {"v": VERSION, "kind": "grant", "site": site.identity.site, "door": me.door,
             "sealed": b64(ids.SiteIdentity(site.identity.site, "x", key, b"k" * 32,
                                            site.identity.transform).seal_grant(me.door, me.public)),
             "issued": time.time()}
    _hostile_publish(broker.port, f"consentry/site/{site.identity.site}/grant/{me.door}", sign(key, grant))
    worker.join(30)
    assert errors and "not approved" in str(errors[0])
    assert ids.load(vault.secret(ids.SECRET), vault.transform).data_key is None
    vault.close()


def _join_into(errors, vault, port, site_key) -> None:
    from consentry.fleet.join import join

    from tests.fleet_rig import mqtt_for

    try:
        join(vault, mqtt_for(port, "door"), site=None, site_key=site_key, label="d", timeout=4, out=lambda t: None)
    except BaseException as exc:  # noqa: BLE001 - checked by the test
        errors.append(exc)


def test_hostile_broker_retained_poison_and_a_flood_do_not_stop_a_door(open_site, caplog):
    import logging

    from consentry.fleet.replica import MAX_QUEUED

    from tests.fleet_rig import Door, mqtt_for, vectors, wait

    site, broker = open_site
    door = Door(site.join("door"), mqtt_for(broker.port, "door"))
    prefix = f"consentry/site/{site.identity.site}"
    try:
        sid = site.enrol(5)
        assert wait(lambda: door.grants(vectors(5, 1)[0]) == sid, 5)
        nested = b'{"v": 1, "sig": "AAAA", "x": ' + b"[" * 990 + b"]" * 990 + b"}"
        with caplog.at_level(logging.WARNING):
            _hostile_many(broker.port, [(f"{prefix}/{topic}", nested, True) for topic in (
                "subject/s-00000000000000ff", "revoked/s-00000000000000fe", "head", "join/d-0000000000000000",
                "doors/d-0000000000000000/state")])
            _hostile_many(broker.port, [(f"{prefix}/subject/s-{i:016x}", b"x" * 246_000, False) for i in range(40)])
            site.service.site.publish_head()  # the real head, after the poison: the door confirms it
            door.service.link.resubscribe()  # as after a failed batch: the retained poison comes back
            other = site.enrol(6)
            assert wait(lambda: door.grants(vectors(6, 1)[0]) == other, 10), "the door stopped granting"
        assert door.service.replica._inbox.qsize() <= MAX_QUEUED and door.service.replica.dropped >= 40
        assert not any(r.exc_info for r in caplog.records), "a traceback per hostile message"
        assert door.vault.verify_audit().ok
    finally:
        door.close()


def test_hostile_broker_a_withheld_tombstone_and_an_old_head_stop_grants_when_a_newer_head_arrives(open_site):
    """A door offline during a revocation; the attacker clears the tombstone, puts back the
    old head and the old record, and withholds the kiosk's heads. Once one newer head gets
    through, the door grants nobody (it cannot reach that state), instead of granting the
    revoked person until the old head is 120 s old."""
    from tests.broker import Recorder
    from tests.fleet_rig import Door, mqtt_for, vectors, wait

    site, broker = open_site
    vault = site.join("door")
    prefix = f"consentry/site/{site.identity.site}"
    sid = site.enrol(7)
    door = Door(vault, mqtt_for(broker.port, "door"))
    assert wait(lambda: door.grants(vectors(7, 1)[0]) == sid, 5)
    spy = Recorder(broker.port, f"{prefix}/#")
    assert spy.wait_for(lambda r: any(t == f"{prefix}/head" for t, _, _ in r.messages))
    with spy._lock:
        old_head = next(p for t, p, _ in reversed(spy.messages) if t == f"{prefix}/head")
        old_record = next(p for t, p, _ in spy.messages if t == f"{prefix}/subject/{sid}" and p)
    door.close()  # offline
    site.vault.revoke(sid)
    assert wait(lambda: site.service.site.head().count == 0, 5)
    kiosk = site.service.site
    publish_head = kiosk.publish_head
    kiosk.publish_head = lambda: kiosk.head()  # the broker (the attacker) withholds the kiosk's heads for now
    time.sleep(0.5)
    _hostile_many(broker.port, [(f"{prefix}/revoked/{sid}", b"", True), (f"{prefix}/subject/{sid}", old_record, True),
                                (f"{prefix}/head", old_head, True)])
    spy.close()
    door = Door(vault, mqtt_for(broker.port, "door"))
    try:
        # fed only the old head, the door confirms its old state: the window a broker can open
        assert wait(lambda: door.grants(vectors(7, 1)[0]) == sid, 5)
        kiosk.publish_head = publish_head  # a newer head gets through
        assert wait(lambda: door.grants(vectors(7, 1)[0]) is None, 2), "a newer head did not stop the grants"
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert door.grants(vectors(7, 1)[0]) is None, "granted a revoked person on a withheld tombstone"
            time.sleep(0.01)
        assert door.service.verdict().reason == "fleet_syncing"
    finally:
        door.close()
