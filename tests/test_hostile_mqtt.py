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
