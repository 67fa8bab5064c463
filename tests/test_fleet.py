"""Many doors, one enrolment: a kiosk and doors with real vaults through a real mosquitto."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from consentry.config import DoorConfig
from consentry.decide.door import DoorPolicy
from consentry.decide.recognizer import TrackResult
from consentry.fleet import identity as ids
from consentry.fleet.records import Head, Record, RecordRefused, sign, verified
from consentry.fleet.replica import Replica
from consentry.fleet.simulate import MemoryDoor, MemoryLog
from consentry.fleet.site import Site as KioskSite
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.broker import Mosquitto, Recorder
from tests.fleet_rig import FAST, MODEL, NAME, Door, Site, mqtt_for, vectors, wait

REACH_S = 2.0  # the issue's bound: enrol or revoke at the kiosk -> every door within 2 s


@pytest.fixture
def mosquitto(tmp_path):
    server = Mosquitto(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path, mosquitto):
    s = Site(tmp_path, mosquitto.port)
    yield s
    s.close()


def probe(seed: int) -> np.ndarray:
    return vectors(seed, 1)[0]


def _publish(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"attacker-{time.time_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_enrol_reaches_every_door_within_2s_and_revocation_leaves_every_door(site, mosquitto):
    doors = [Door(site.join(f"door{i}"), mqtt_for(mosquitto.port, f"door{i}")) for i in range(3)]
    try:
        assert wait(lambda: all(d.service.verdict().granting for d in doors), 10), "doors never synced"
        t0 = time.monotonic()
        sid = site.enrol(11)
        assert wait(lambda: all(d.grants(probe(11)) == sid for d in doors), REACH_S), "enrolment too slow"
        reached = time.monotonic() - t0
        site.vault.revoke(sid)
        t0 = time.monotonic()
        assert wait(lambda: all(d.grants(probe(11)) is None and not d.vault.exists(sid) for d in doors), REACH_S)
        print(f"enrol reached 3 doors in {reached:.3f} s; revoke in {time.monotonic() - t0:.3f} s")
        for d in doors:  # a door keeps no name: it never received one
            assert [s.name for s in d.vault.subjects(show_names=True)] == []
    finally:
        for d in doors:
            d.close()


def test_a_door_offline_during_a_revocation_never_grants_the_revoked_person_after_it_returns(site, mosquitto):
    mq = mqtt_for(mosquitto.port, "door")
    vault = site.join("door")
    sid = site.enrol(21)
    door = Door(vault, mq)
    assert wait(lambda: door.grants(probe(21)) == sid, 5)
    door.close()  # offline
    site.vault.revoke(sid)
    time.sleep(0.5)
    door = Door(vault, mq)  # back: nothing is granted until the revocation is applied and the head confirms it
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert door.grants(probe(21)) is None
            time.sleep(0.002)
        assert door.service.verdict().granting and not vault.exists(sid)
    finally:
        door.close()


def test_forged_replayed_reordered_and_tampered_records_are_refused_and_audited(site, mosquitto):
    vault = site.join("door")
    sid = site.enrol(31)
    other = site.enrol(32)
    door = Door(vault, mqtt_for(mosquitto.port, "door"))
    prefix = f"consentry/site/{site.identity.site}"
    try:
        assert wait(lambda: door.grants(probe(31)) == sid and door.service.verdict().granting, 5)
        first = site.vault.fleet_records()
        old_raw = next(raw for s, _, kind, raw in first if s == sid)
        other_v1 = next(raw for s, _, kind, raw in first if s == other)
        # reordered: the kiosk issues a newer version of `other`; then its older one is re-published
        exported = site.vault.export_subject(other, MODEL)
        from consentry.fleet.records import Payload

        site.service.site.enrol(other, Payload(exported.consent, MODEL, exported.vectors), "v2")
        assert wait(lambda: vault.fleet_versions()[other][0] > json.loads(other_v1)["seq"], 3)
        _publish(mosquitto.port, f"{prefix}/subject/{other}", other_v1)
        # replayed: the enrol record of a subject revoked since
        site.vault.revoke(sid)
        assert wait(lambda: not vault.exists(sid), 3)
        _publish(mosquitto.port, f"{prefix}/subject/{sid}", old_raw)
        # forged: a well-formed record signed by another key
        fields = dict(json.loads(old_raw))
        fields.pop("sig")
        forged = sign(Ed25519PrivateKey.generate(), {**fields, "subject": "s-00000000deadbeef", "seq": 10**6})
        _publish(mosquitto.port, f"{prefix}/subject/s-00000000deadbeef", forged)
        # tampered: one byte of the sealed payload changed, signature kept
        body = bytearray(base64.b64decode(fields["body"]))
        body[40] ^= 1
        tampered = json.dumps({**json.loads(other_v1), "body": base64.b64encode(bytes(body)).decode()}).encode()
        _publish(mosquitto.port, f"{prefix}/subject/{other}", tampered)
        reasons = lambda: [e["detail"].get("reason", "") for e in vault.audit_entries()  # noqa: E731
                           if e["kind"] == "site_record_refused"]
        assert wait(lambda: len(reasons()) >= 4, 5), reasons()
        text = " | ".join(reasons())
        for expected in ("older than the applied version", "revocation wins", "signature does not verify"):
            assert expected in text
        assert not vault.exists(sid) and not vault.exists("s-00000000deadbeef")
        assert door.grants(probe(32)) == other and vault.verify_audit().ok
    finally:
        door.close()


def test_a_subscriber_to_everything_sees_no_name_and_no_template_and_an_unapproved_door_gets_nothing(
        site, mosquitto, tmp_path):
    recorder = Recorder(mosquitto.port)
    door = Door(site.join("door"), mqtt_for(mosquitto.port, "door"))
    try:
        sid = site.enrol(41)
        assert wait(lambda: door.grants(probe(41)) == sid, 5)
        site.vault.revoke(sid)
        assert wait(lambda: door.grants(probe(41)) is None, 5)
        time.sleep(0.3)
    finally:
        door.close()
        recorder.close()
    wire = b"".join(topic.encode() + payload for topic, payload, _ in recorder.messages)
    assert NAME.encode() not in wire and b"Ottoline" not in wire
    raw = [np.asarray(v, "<f4") for v in vectors(41)]
    moved = [site.vault.transform @ v for v in raw]
    for v in raw + moved:  # neither the descriptor nor the stored (transformed) template, in any encoding
        for chunk in (v.tobytes()[:16], base64.b64encode(v.tobytes())[:24]):
            assert chunk not in wire
    # a door that asked to join but was never approved: its grant topic stays empty, and the
    # records it can read are sealed under a key it does not have
    pending = ids.DoorIdentity.create(site.identity.site, site.identity.public)
    assert not [t for t, _, _ in recorder.messages if t.endswith(f"/grant/{pending.door}")]
    with pytest.raises(Exception, match="not been approved"):
        Replica(pending, MemoryDoor(), max_staleness=60, max_skew=30)
    record = next(p for t, p, _ in recorder.messages if "/subject/" in t and p)
    with pytest.raises(RecordRefused):  # a grant sealed to another door does not open with its key
        pending.open_grant(site.identity.seal_grant("d-someoneelse0000", ids.DoorIdentity.create(
            site.identity.site, site.identity.public).public))
    assert json.loads(record)["body"] and verified(pending.verify_key, record)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _direct_site(clock: Clock):
    """A site and one door wired without a broker: what the kiosk publishes, the door processes."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((128, 128)))
    identity = ids.SiteIdentity.create("unit", q.astype(np.float32))
    sent: list[tuple[str, bytes]] = []
    kiosk = KioskSite(identity, MemoryLog(), lambda t, p, r: sent.append((t, p)), clock=clock)
    door = ids.DoorIdentity(identity.site, identity.public, ids.DoorIdentity.create("x", b"").private_key,
                            identity.data_key)
    store = MemoryDoor()
    replica = Replica(door, store, max_staleness=120, max_skew=30, clock=clock)
    replica.on_link(True)
    return kiosk, replica, store, sent


def test_a_door_that_cannot_confirm_the_site_state_stops_granting_and_says_why():
    from consentry.fleet.records import Payload

    from tests.fleet_rig import consent

    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    assert replica.verdict().reason == "fleet_syncing"
    kiosk.enrol("s-00000000000000a1", Payload(consent(), MODEL, np.stack(vectors(1))), "d")
    replica.process(sent)
    sent.clear()
    assert replica.verdict().granting
    clock.now += 121  # no head for longer than max_staleness: the broker, or the kiosk, is gone
    assert replica.verdict().reason == "fleet_stale"

    class Lock:
        pulses = 0

        def unlock(self, seconds, subject=None):
            self.pulses += 1

    events = []
    policy = DoorPolicy(DoorConfig(), Lock(), lambda topic, payload: events.append(payload), gate=replica.verdict)
    result = TrackResult(track_id=1, box=(0, 0, 50, 50), state="match", subject="s-00000000000000a1",
                         distance=0.2, reasons=(), embedded=True)
    policy.handle([result], 10.0)
    assert policy.door.pulses == 0 and events[-1]["decision"] == "denied" and events[-1]["reason"] == "fleet_stale"
    kiosk.publish_head()
    replica.process(sent)
    sent.clear()
    assert replica.verdict().granting


def test_clock_skew_and_replayed_heads_are_refused():
    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    kiosk.publish_head()
    old_head = sent[-1]
    replica.process(sent)
    sent.clear()
    assert replica.verdict().granting
    clock.now += 60
    kiosk.publish_head()
    replica.process(sent)
    sent.clear()
    replica.process([old_head])  # an old head, replayed
    assert "replayed" in store.refused[-1]
    kiosk.clock = Clock(clock.now + 600)  # a kiosk (or a forger with its key) ten minutes ahead
    kiosk.revoke("s-00000000000000b2")
    replica.process(sent)
    assert any("future" in r for r in store.refused)
    assert "s-00000000000000b2" not in store.versions


def test_records_are_bound_to_their_site_sequence_and_subject():
    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    from consentry.fleet.records import Payload

    from tests.fleet_rig import consent

    kiosk.enrol("s-00000000000000c3", Payload(consent(), MODEL, np.stack(vectors(3))), "d")
    topic, raw = sent[0]
    record = Record.parse(verified(replica.identity.verify_key, raw), kiosk.identity.site)
    moved = Record(record.site, record.seq, record.kind, "s-00000000000000d4", record.issued, record.body)
    resigned = sign(kiosk.identity.signing_key, moved.fields())  # even with the site's key, the seal holds
    replica.process([(topic.replace("c3", "d4"), resigned)])
    assert "s-00000000000000d4" not in store.versions and "failed authentication" in store.refused[-1]
    assert Head.parse(verified(replica.identity.verify_key, sign(kiosk.identity.signing_key,
                                                                 kiosk.head().fields())), kiosk.identity.site)


def test_two_bridged_brokers_carry_the_site(tmp_path, site, mosquitto):
    """A multi-broker site: the door's broker bridges consentry/# to the kiosk's."""
    bridge = Mosquitto(tmp_path, extra_conf=(
        "allow_anonymous true\n"
        f"connection to-kiosk\naddress 127.0.0.1:{mosquitto.port}\ntopic consentry/# both 1\n"
        "cleansession true\ntry_private true\n")).start()
    try:
        door = Door(site.join("door", port=bridge.port), mqtt_for(bridge.port, "door"))
        try:
            t0 = time.monotonic()
            sid = site.enrol(51)
            assert wait(lambda: door.grants(probe(51)) == sid, REACH_S + 3), "never reached across the bridge"
            reached = time.monotonic() - t0
            site.vault.revoke(sid)
            assert wait(lambda: door.grants(probe(51)) is None, REACH_S)
            print(f"across the bridge: enrol {reached:.3f} s")
        finally:
            door.close()
    finally:
        bridge.stop()


def test_the_staff_view_shows_which_doors_are_behind(site, mosquitto):
    door = Door(site.join("door"), mqtt_for(mosquitto.port, "door"))
    try:
        assert wait(lambda: [d.behind for d in site.service.site.doors()] == [False], 5)
        door.close()
        site.enrol(61)
        assert wait(lambda: [d.behind for d in site.service.site.doors()] == [True], 5)
    finally:
        door.close()


def test_simulate_prints_the_figures_the_issue_names(mosquitto):
    import contextlib
    import io

    from consentry.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["fleet", "simulate", "--doors", "4", "--subjects", "60", "--samples", "3", "--remove", "1",
                     "--json"]) == 0
    result = json.loads(buffer.getvalue())
    assert set(result) >= {"doors", "subjects", "enrol_to_all_s", "revoke_to_all_s", "bytes_per_record",
                           "door_sync_s"}
    assert result["doors"] == 4 and result["refused"] == 0
    removed = result["removed"]
    assert removed["doors"] == 1 and removed["records_opened_by_removed"] == 0 and removed["grants_by_removed"] == 0
    assert removed["rotate_to_all_s"]["p99"] <= 5.0
    assert result["enrol_to_all_s"]["p99"] <= REACH_S and result["revoke_to_all_s"]["p99"] <= REACH_S


def test_fast_config_is_valid():
    assert FAST.heartbeat_seconds < FAST.max_staleness_seconds


def test_door_processes_follow_the_kiosk(site, mosquitto, tmp_path):
    """Two doors as their own `consentry fleet serve` processes, each with its own vault."""
    import subprocess
    import sys

    procs = []
    try:
        for name in ("east", "west"):
            site.join(name).close()
            conf = tmp_path / f"{name}.toml"
            conf.write_text(f'[mqtt]\nport = {mosquitto.port}\ndevice_id = "{name}"\n[fleet]\nheartbeat_seconds = 0.3\n'
                            f'[vault]\nkey_file = "{tmp_path / name / "master.key"}"\n')
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "import sys; from consentry.cli import main; sys.exit(main())", "--config",
                 str(conf), "--home", str(tmp_path / name / "home"), "fleet", "serve"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        doors = site.service.site.doors
        in_step = lambda: len(doors()) == 2 and all(not d.behind and d.report.granting for d in doors())  # noqa: E731
        assert wait(in_step, 60), [(d.door, d.report) for d in doors()]
        head = site.service.site.head
        issued = lambda before: wait(lambda: head().seq > before, REACH_S)  # noqa: E731 - the kiosk issued it
        reported = lambda: in_step() and all(d.report.seq >= head().seq for d in doors())  # noqa: E731
        before = head().seq
        sid = site.enrol(71)
        t0 = time.monotonic()
        assert issued(before) and wait(reported, REACH_S), "the door processes did not report the enrolment"
        print(f"2 door processes confirmed the enrolment in {time.monotonic() - t0:.3f} s")
        before = head().seq
        site.vault.revoke(sid)
        assert issued(before) and wait(reported, REACH_S), "the door processes did not report the revocation"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    from tests.fleet_rig import open_vault

    for name in ("east", "west"):
        with open_vault(tmp_path, name) as vault:
            assert not vault.exists(sid) and vault.fleet_versions()[sid][1] == "revoke" and vault.verify_audit().ok


def test_a_revocation_by_another_process_reaches_the_doors_within_2s(site, mosquitto, tmp_path):
    """`consentry revoke` runs beside the kiosk appliance: the kiosk notices the commit."""
    from tests.fleet_rig import open_vault

    door = Door(site.join("door"), mqtt_for(mosquitto.port, "door"))
    try:
        sid = site.enrol(81)
        assert wait(lambda: door.grants(probe(81)) == sid, 5)
        with open_vault(tmp_path, "kiosk") as elsewhere:  # its own connection, as another process has
            elsewhere.revoke(sid)
        t0 = time.monotonic()
        assert wait(lambda: door.grants(probe(81)) is None and not door.vault.exists(sid), REACH_S)
        print(f"revoked elsewhere; left the door in {time.monotonic() - t0:.3f} s")
    finally:
        door.close()


def test_the_shipped_broker_acl_lets_a_door_sync_but_not_speak_for_the_site(tmp_path):
    """deploy/mosquitto-consentry.acl with passwords: the kiosk user issues, the door user
    (consentry-1) joins and syncs, and what the door user publishes as the site is dropped."""
    import shutil
    import subprocess
    from pathlib import Path

    from consentry.config import MqttConfig

    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed (Debian's mosquitto package has it)")
    passwords = tmp_path / "passwd"
    for i, user in enumerate(("kiosk", "consentry-1", "homeassistant")):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(passwords), user, f"pw-{user}"],
                       check=True)
    acl = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto-consentry.acl"
    broker = Mosquitto(tmp_path, f"allow_anonymous false\npassword_file {passwords}\nacl_file {acl}\n").start()

    def creds(user: str) -> Path:
        path = tmp_path / f"{user}.cred"
        path.write_text(f"{user}:pw-{user}\n")
        path.chmod(0o600)
        return path

    kiosk_mqtt = MqttConfig(port=broker.port, device_id="kiosk", credentials_file=creds("kiosk"))
    door_mqtt = MqttConfig(port=broker.port, device_id="consentry-1", credentials_file=creds("consentry-1"))
    site = Site(tmp_path, broker.port, kiosk_mqtt)
    observer = None
    try:
        door = Door(site.join("door", mqtt=door_mqtt), door_mqtt)
        sid = site.enrol(91)
        assert wait(lambda: door.grants(probe(91)) == sid, REACH_S), "the ACL kept the door from syncing"
        observer = Recorder(broker.port)  # anonymous: refused by the broker, sees nothing
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="door-as-site")
        client.username_pw_set("consentry-1", "pw-consentry-1")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        prefix = f"consentry/site/{site.identity.site}"
        client.publish(f"{prefix}/head", b"not from the site", qos=1, retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        time.sleep(0.5)
        assert door.replica_refusals() == 0 and door.service.verdict().granting  # the broker dropped it
        assert observer.messages == []
        door.close()
    finally:
        if observer is not None:
            observer.close()
        site.close()
        broker.stop()


def test_a_flood_of_garbage_records_is_refused_but_audited_only_so_often():
    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    prefix = f"consentry/site/{kiosk.identity.site}"
    replica.process([(f"{prefix}/subject/s-{i:016x}", b'{"v": 1, "sig": "AAAA"}') for i in range(500)])
    from consentry.fleet.replica import AUDIT_PER_MINUTE

    assert replica.refusals == 500 and len(store.refused) == AUDIT_PER_MINUTE and not store.versions


# -- issue 23: poison, stale heads, floods -------------------------------------------------------
def _enrolled(kiosk, subject: str, seed: int):
    from consentry.fleet.records import Payload

    from tests.fleet_rig import consent

    return kiosk.enrol(subject, Payload(consent(), MODEL, np.stack(vectors(seed))), "d")


def _poison(depth: int) -> bytes:
    """Passes json.loads; its canonical form (json.dumps) exceeds the recursion limit."""
    return b'{"v": 1, "sig": "AAAA", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [900, 990, 5000])
def test_a_nested_record_is_refused_alone_and_the_good_ones_in_its_batch_apply(depth):
    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    prefix = f"consentry/site/{kiosk.identity.site}"
    _enrolled(kiosk, "s-00000000000000e1", 1)
    batch = [(f"{prefix}/subject/s-00000000000000ff", _poison(depth)),
             (f"{prefix}/revoked/s-00000000000000fe", _poison(depth)),
             (f"{prefix}/head", _poison(depth)), *sent]
    replica.process(batch)  # raises nothing: one bad record never fails the batch
    assert "s-00000000000000e1" in store.versions and replica.verdict().granting
    assert any("nested" in r for r in store.refused)


def test_a_newer_head_the_door_cannot_reach_stops_grants_at_once_and_survives_a_restart():
    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    _enrolled(kiosk, "s-00000000000000e2", 2)
    old = list(sent)
    replica.process(sent)
    sent.clear()
    assert replica.verdict().granting
    clock.now += 5
    kiosk.revoke("s-00000000000000e2")
    newer_head = [(t, p) for t, p in sent if t.endswith("/head")]
    replica.process(newer_head)  # the tombstone withheld (a hostile broker), the newer head not
    assert replica.verdict().reason == "fleet_syncing", "a contradicting newer head must stop grants"
    # a restart: the old retained head replayed with the old record, no tombstone
    again = Replica(replica.identity, store, max_staleness=120, max_skew=30, clock=clock)
    again.on_link(True)
    again.process(old)
    assert not again.verdict().granting and "seen before" in store.refused[-1]
    again.process(sent)  # the tombstone arrives: in step again, and the subject is gone
    assert again.verdict().granting and store.versions["s-00000000000000e2"][1] == "revoke"


def test_the_highest_head_is_kept_sealed_in_the_door_vault(tmp_path):
    from tests.fleet_rig import open_vault

    with open_vault(tmp_path, "door") as vault:
        assert vault.fleet_head_seq() == 0
        vault.fleet_note_head(41)
    with open_vault(tmp_path, "door") as vault:
        assert vault.fleet_head_seq() == 41


def test_an_oversized_message_is_dropped_unread_and_nothing_unbounded_is_queued():
    from consentry.fleet import records
    from consentry.fleet.replica import MAX_QUEUED

    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    prefix = f"consentry/site/{kiosk.identity.site}"
    _enrolled(kiosk, "s-00000000000000e3", 3)
    biggest = max(len(p) for _, p in sent)
    assert biggest < records.MAX_RECORD_BYTES < 20_000
    for i in range(50):
        replica.offer(f"{prefix}/subject/s-{i:016x}", b"x" * 246_000)
    replica.offer(f"{prefix}/head", b"{" + b" " * 5000 + b"}")
    assert replica._inbox.qsize() == 0 and replica.dropped == 51 and replica.refusals == 51
    assert replica._inbox.maxsize == MAX_QUEUED
    with pytest.raises(RecordRefused):  # the kiosk never issues what a door would drop
        records.Payload(ids_consent(), MODEL, np.zeros((records.MAX_TEMPLATES + 1, 128), np.float32)).seal(
            kiosk.identity.data_key, "aad")


def ids_consent():
    from tests.fleet_rig import consent

    return consent()


def test_a_record_flood_writes_a_bounded_number_of_log_lines(caplog):
    import logging

    from consentry.fleet.replica import LOG_PER_MINUTE

    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    prefix = f"consentry/site/{kiosk.identity.site}"
    with caplog.at_level(logging.WARNING, logger="consentry.fleet"):
        replica.process([(f"{prefix}/subject/s-{i:016x}", b'{"v": 1, "sig": "AAAA"}') for i in range(2000)])
        for i in range(500):
            kiosk.on_message(f"{prefix}/join/d-{i}", _poison(990))
            kiosk.on_message(f"{prefix}/doors/d-{i}/state", _poison(990))
    assert replica.refusals == 2000
    assert len(caplog.records) <= LOG_PER_MINUTE + 20 and not any(r.exc_info for r in caplog.records)


def test_removing_a_door_rotates_the_site_key_and_transform_and_the_removed_door_opens_nothing_after(
        site, mosquitto):
    keep = Door(site.join("keep"), mqtt_for(mosquitto.port, "keep"))
    gone = Door(site.join("gone"), mqtt_for(mosquitto.port, "gone"))
    try:
        before = site.enrol(101)
        assert wait(lambda: keep.grants(probe(101)) == before and gone.grants(probe(101)) == before, 5)
        held = gone.vault.export_subject(before, MODEL).vectors.copy()  # what a thief takes with the door
        old_transform = site.vault.transform.copy()
        t0 = time.monotonic()
        count = site.service.remove_door(gone.service.replica.identity.door)
        assert count == 1 and not np.allclose(site.vault.transform, old_transform)
        assert wait(lambda: keep.service.replica.identity.epoch == 2 and keep.grants(probe(101)) == before, REACH_S)
        print(f"rotation reached the remaining door in {time.monotonic() - t0:.3f} s")
        assert np.allclose(keep.vault.transform, site.vault.transform, atol=1e-5)
        after = site.enrol(102)
        assert wait(lambda: keep.grants(probe(102)) == after, REACH_S)
        time.sleep(0.5)
        assert gone.grants(probe(102)) is None and not gone.vault.exists(after)
        assert gone.grants(probe(101)) is None  # contradicting newer heads: it stops granting at all
        now = keep.vault.export_subject(before, MODEL).vectors
        cos = float(np.max(held @ now.T) / (np.linalg.norm(held[0]) * np.linalg.norm(now[0])))
        assert cos < 0.5, "the stolen door's templates still link to the site's"
        kinds = [e["kind"] for e in site.vault.audit_entries()]
        assert "door_removed" in kinds and site.vault.verify_audit().ok
        assert [d.status for d in site.service.site.doors() if d.door == gone.service.replica.identity.door] == \
            ["removed"]
        late = Door(site.join("late"), mqtt_for(mosquitto.port, "late"))  # joins after: opens the re-sealed
        try:
            assert wait(lambda: late.grants(probe(101)) == before and late.grants(probe(102)) == after, 5)
        finally:
            late.close()
    finally:
        keep.close()
        gone.close()


def test_join_requests_are_rate_limited_expire_and_staff_can_reject_them():
    from consentry.fleet import site as site_mod

    clock = Clock()
    kiosk, replica, store, sent = _direct_site(clock)
    prefix = f"consentry/site/{kiosk.identity.site}"

    def ask(i: int) -> None:
        public = ids.DoorIdentity.create("x", b"").public
        kiosk.on_message(f"{prefix}/join/d-{i}", json.dumps(
            {"v": 1, "door": "x", "public_key": base64.b64encode(public).decode(), "label": f"l{i}"}).encode())

    for i in range(60):  # a squatter with one door's credentials
        ask(i)
    pending = [d for d in kiosk.doors() if d.status == "pending"]
    assert len(pending) == site_mod.JOINS_PER_MINUTE
    kiosk.reject(pending[0].door)
    assert len([d for d in kiosk.doors() if d.status == "pending"]) == site_mod.JOINS_PER_MINUTE - 1
    clock.now += site_mod.PENDING_TTL_S + 1
    kiosk.expire_pending()
    assert [d for d in kiosk.doors() if d.status == "pending"] == []
    kiosk._joins = site_mod.Budget(site_mod.JOINS_PER_MINUTE, clock=lambda: clock.now)
    ask(99)  # a real door asks later: it is listed
    assert len([d for d in kiosk.doors() if d.status == "pending"]) == 1


def test_a_door_whose_report_is_older_than_its_heartbeat_allows_is_not_reporting(site, mosquitto):
    door = Door(site.join("door"), mqtt_for(mosquitto.port, "door"))
    try:
        assert wait(lambda: [d.reporting for d in site.service.site.doors()] == [True], 5)
    finally:
        door.close()
    site.service.site.clock = lambda: time.time() + site.service.site.report_timeout + 1
    assert [d.reporting for d in site.service.site.doors()] == [False]


def test_cli_commands_beside_a_running_kiosk_do_not_take_its_connection(site, mosquitto, tmp_path):
    import contextlib
    import io

    from consentry.cli import main

    conf = tmp_path / "kiosk.toml"
    conf.write_text(f'[mqtt]\nport = {mosquitto.port}\ndevice_id = "kiosk"\n'
                    f'[vault]\nkey_file = "{tmp_path / "kiosk" / "master.key"}"\n')
    drops = []
    site.service.link.on_link = lambda up: drops.append(up)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["--config", str(conf), "--home", str(tmp_path / "kiosk" / "home"), "fleet", "doors", "--json",
                     "--wait", "0.3"]) == 0
    assert json.loads(buffer.getvalue())["site_key"] == site.fingerprint
    time.sleep(0.5)
    assert False not in drops and site.service.link.connected.is_set()


def test_the_staff_page_lists_silent_doors_and_offers_reject_and_remove():
    from consentry.fleet.site import DoorReport, DoorView
    from consentry.web.pages import doors_section

    report = DoorReport("d-2", 3, "x", True, None, 0.0)
    html = doors_section("tok", [DoorView("d-1", "new", "pending", "123 456", None, True),
                                 DoorView("d-2", "dead", "approved", "1", report, False, False),
                                 DoorView("d-3", "gone", "removed", "1", None, True)], site_key="ab12:cd34")
    assert "/admin/doors/reject" in html and "/admin/doors/remove" in html and "not reporting" in html
    assert "ab12:cd34" in html and "door-silent" in html and html.count("class='remove'") == 1


def test_fleet_remove_and_reject_from_the_cli(site, mosquitto, tmp_path):
    import contextlib
    import io

    from consentry.cli import main
    from consentry.fleet.service import FleetService

    from tests.fleet_rig import open_vault

    keep = Door(site.join("keep"), mqtt_for(mosquitto.port, "keep"))
    gone = Door(site.join("gone"), mqtt_for(mosquitto.port, "gone"))
    conf = tmp_path / "kiosk.toml"
    conf.write_text(f'[mqtt]\nport = {mosquitto.port}\ndevice_id = "kiosk"\n[fleet]\nheartbeat_seconds = 0.3\n'
                    f'[vault]\nkey_file = "{tmp_path / "kiosk" / "master.key"}"\n')
    cli = ["--config", str(conf), "--home", str(tmp_path / "kiosk" / "home"), "fleet"]
    try:
        before = site.enrol(111)
        assert wait(lambda: keep.grants(probe(111)) == before and gone.grants(probe(111)) == before, 5)
        squatter = ids.DoorIdentity.create(site.identity.site, site.identity.public)
        _publish(mosquitto.port, f"consentry/site/{site.identity.site}/join/{squatter.door}", json.dumps(
            {"v": 1, "door": squatter.door, "public_key": base64.b64encode(squatter.public).decode()}).encode())
        assert wait(lambda: squatter.door in {d.door for d in site.service.site.doors()}, 5)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main([*cli, "reject", squatter.door]) == 0
        assert squatter.door not in {d.door for d in site.service.site.doors()}
        assert "door_rejected" in [e["kind"] for e in site.vault.audit_entries()]
        door = gone.service.replica.identity.door
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            assert main([*cli, "remove", door]) == 2
        assert "kiosk appliance is running" in errors.getvalue()
        site.service.close()  # the kiosk appliance stopped
        time.sleep(1.0)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main([*cli, "remove", door]) == 0
        assert wait(lambda: keep.service.replica.identity.epoch == 2 and keep.grants(probe(111)) == before, 5)
        assert gone.service.replica.identity.epoch == 1
        site.vault.close()
        site.vault = open_vault(tmp_path, "kiosk")  # the kiosk appliance started again
        site.service = FleetService(site.vault, mqtt_for(mosquitto.port, "kiosk"), FAST, model=MODEL).start()
        after = site.enrol(112)
        assert wait(lambda: keep.grants(probe(112)) == after, REACH_S)
        assert gone.grants(probe(112)) is None and not gone.vault.exists(after)
    finally:
        keep.close()
        gone.close()
