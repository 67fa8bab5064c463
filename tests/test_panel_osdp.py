"""The OSDP reader against libosdp's own ControlPanel on a pty: Secure Channel with the
configured key only, exactly one read of exactly the card, nothing for anyone else, a panel
restart and a pulled cable survived, garbage on the line never ends the reader."""

from __future__ import annotations

import contextlib
import os
import random
import time

import osdp
import pytest
from consentry.config import PanelConfig
from consentry.errors import ConfigError
from consentry.panel.formats import Card, decode, encode, unpack
from consentry.panel.osdp_reader import OsdpReader, parse_scbk

from tests.panel_rig import Panel, Pty

KEY = bytes.fromhex("8f3a61c2d94be07512aa03f6c8e1b4d7")
WRONG = bytes.fromhex("00112233445566778899aabbccddeeff")
CARD = Card(17, 40961)
ADDRESS = 5


def cards(subject: str) -> Card | None:
    return CARD if subject == "s-enrolled" else None


@pytest.fixture
def line():
    pty = Pty()
    yield pty
    pty.close()


def reader_on(port: str, scbk: bytes | None = KEY, **cfg) -> OsdpReader:
    config = PanelConfig(kind="osdp", port=port, address=ADDRESS, facility=17, **cfg)
    return OsdpReader(config, scbk, cards).start()


def no_read_within(panel: Panel, seconds: float) -> bool:
    time.sleep(seconds)
    return panel.reads.empty()


def read_card(event: dict) -> Card:
    assert event["format"] == osdp.CardFormat.Wiegand and event["length"] == 26
    return decode("h10301", unpack(event["data"], event["length"]))


def test_the_configured_key_brings_up_the_channel_and_a_grant_is_one_read_of_that_card(line):
    reader = reader_on(line.path)
    panel = Panel(line, ADDRESS, KEY)
    try:
        assert panel.wait_secure(), "secure channel did not come up with the right SCBK"
        assert reader.link().secure
        reader.unlock(3.0, subject="s-enrolled")
        event = panel.reads.get(timeout=10)
        assert read_card(event) == CARD  # decode() checks both parity bits
        assert event["data"] == encode("h10301", CARD).packed()
        reader.unlock(3.0, subject="s-no-card")  # matched but no card registered
        reader.unlock(3.0, reason="egress")  # nothing that is not a grant goes on the line
        reader.unlock(3.0, subject=None)
        assert no_read_within(panel, 2.0), "exactly one read per grant"
        assert reader.sent == 1
    finally:
        panel.close()
        reader.close()


def test_a_wrong_key_never_brings_up_the_channel_and_nothing_is_sent(line):
    reader = reader_on(line.path)
    panel = Panel(line, ADDRESS, WRONG)
    try:
        assert not panel.wait_secure(timeout=10), "secure channel came up with the wrong SCBK"
        assert not panel.online()
        reader.unlock(3.0, subject="s-enrolled")
        assert no_read_within(panel, 3.0)
        assert reader.refused == 1 and reader.sent == 0  # dropped once send_within_seconds passed
        assert "offline" in reader.status()
    finally:
        panel.close()
        reader.close()


def test_a_plain_panel_gets_nothing_unless_plain_is_allowed(line):
    reader = reader_on(line.path)
    panel = Panel(line, ADDRESS, None)  # a panel configured without Secure Channel
    try:
        time.sleep(6)
        assert not panel.online(), "a Secure-Channel-only reader answered a plain panel"
        reader.unlock(3.0, subject="s-enrolled")
        assert no_read_within(panel, 1.0)
    finally:
        panel.close()
        reader.close()
    reader = reader_on(line.path, scbk=None, allow_plain=True)
    panel = Panel(line, ADDRESS, None)
    try:
        assert panel.cp.online_wait(ADDRESS, timeout=15)
        reader.unlock(3.0, subject="s-enrolled")
        assert read_card(panel.reads.get(timeout=10)) == CARD
        assert "PLAIN" in reader.status() and "WARNING" in reader.status()
    finally:
        panel.close()
        reader.close()


def test_no_key_and_no_allow_plain_refuses_to_start(line):
    with pytest.raises(ConfigError, match="panel key --set"):
        reader_on(line.path, scbk=None)
    with pytest.raises(ConfigError, match="SCBK-D"):
        parse_scbk("303132333435363738393A3B3C3D3E3F")
    with pytest.raises(ConfigError, match="16 bytes"):
        parse_scbk("abcd")
    assert parse_scbk("8f:3a:61:c2:d9:4b:e0:75:12:aa:03:f6:c8:e1:b4:d7") == KEY


def test_a_panel_restart_and_a_pulled_cable_are_survived(tmp_path):
    """The port is a symlink (as /dev/serial/by-id/... is): pulling the cable removes the
    device, replugging brings a new one at the same path."""
    port = tmp_path / "ttyRS485"
    first = Pty()
    os.symlink(first.path, port)
    reader = reader_on(str(port))
    panel = Panel(first, ADDRESS, KEY)
    try:
        assert panel.wait_secure()
        panel.close()  # the panel restarts
        time.sleep(2.5)
        assert not reader.link().online, "a silent line must count as down at once"
        reader.unlock(3.0, subject="s-enrolled")  # granted while the panel is away: never delivered late
        time.sleep(2.5)  # panel.send_within_seconds (2 s) passes before the panel is back
        panel = Panel(first, ADDRESS, KEY)
        assert panel.wait_secure(timeout=60), f"no secure channel after the panel restart: {reader.status()}"
        assert no_read_within(panel, 2.0), "a grant made while the panel was down arrived late"
        reader.unlock(3.0, subject="s-enrolled")
        assert read_card(panel.reads.get(timeout=10)) == CARD
        panel.close()
        os.unlink(port)  # the cable is pulled
        first.close()
        time.sleep(2.0)
        assert reader.alive and not reader.link().online
        second = Pty()  # and plugged back in
        os.symlink(second.path, port)
        panel = Panel(second, ADDRESS, KEY)
        assert panel.wait_secure(timeout=60), f"no secure channel after the replug: {reader.status()}"
        reader.unlock(3.0, subject="s-enrolled")
        assert read_card(panel.reads.get(timeout=10)) == CARD
        second.close()
    finally:
        panel.close()
        reader.close()


def _garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 200))
    head = bytes([0x53, ADDRESS, rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 0x0F)])
    if kind == 1:  # an OSDP-looking header, truncated
        return head[:rng.randint(1, 5)]
    if kind == 2:  # a header with a random body and a wrong checksum
        return head + rng.randbytes(rng.randint(0, 120))
    return bytes([0x53, 0x7F]) + rng.randbytes(rng.randint(0, 40))  # broadcast address, junk


def test_a_grant_waits_a_moment_for_a_link_coming_up(line):
    reader = reader_on(line.path)
    try:
        reader.unlock(3.0, subject="s-enrolled")  # before the panel's first poll
        panel = Panel(line, ADDRESS, KEY)
        try:
            assert read_card(panel.reads.get(timeout=10)) == CARD
        finally:
            panel.close()
    finally:
        reader.close()


@pytest.mark.parametrize("secure", [False, True])
def test_garbage_from_the_panel_side_never_ends_the_reader_or_leaks_a_card(line, secure):
    # plain: a leaked card would be readable on the wire; secure: the path a deployment runs
    reader = reader_on(line.path, scbk=KEY) if secure else reader_on(line.path, scbk=None, allow_plain=True)
    rng = random.Random(20)
    heard = bytearray()
    try:
        end = time.monotonic() + 8.0
        while time.monotonic() < end:
            with contextlib.suppress(BlockingIOError):
                os.write(line.master, _garbage(rng))
            time.sleep(rng.choice((0.0, 0.005, 0.03)))
            with contextlib.suppress(BlockingIOError, OSError):
                heard += os.read(line.master, 4096)
        assert reader.alive, "garbage ended the reader's polling thread"
        assert encode("h10301", CARD).packed() not in bytes(heard)
        assert reader.sent == 0
        panel = Panel(line, ADDRESS, KEY if secure else None)  # and a real panel still gets its read afterwards
        try:
            assert panel.wait_secure() if secure else panel.cp.online_wait(ADDRESS, timeout=15)
            reader.unlock(3.0, subject="s-enrolled")
            assert read_card(panel.reads.get(timeout=10)) == CARD
        finally:
            panel.close()
    finally:
        reader.close()


def test_install_mode_keeps_the_one_key_the_panel_sets(tmp_path, line, capsys):
    """`consentry panel key --install-mode`: a panel configured with a new key finds the reader
    on SCBK-D, sends KEYSET, and from then on the reader uses that key from the vault."""
    import threading

    from consentry.cli import main
    from consentry.vault import KeyFile, Vault

    home = tmp_path / "home"
    assert main(["--home", str(home), "keys", "init"]) == 0
    config = tmp_path / "c.toml"
    config.write_text(f'[panel]\nkind = "osdp"\nport = "{line.path}"\naddress = {ADDRESS}\ninstall_seconds = 40\n')
    codes: list[int] = []
    cli = threading.Thread(target=lambda: codes.append(main(["--config", str(config), "--home", str(home),
                                                             "panel", "key", "--install-mode"])))
    cli.start()
    panel = Panel(line, ADDRESS, KEY)
    try:
        cli.join(60)
    finally:
        panel.close()
    assert codes == [0]
    out = capsys.readouterr().out
    assert "INSTALL MODE" in out and KEY.hex() not in out
    with Vault(home, KeyFile(home / "master.key")) as vault:
        assert vault.secret("panel-scbk") == KEY
        assert any(e["kind"] == "secret_set" for e in vault.audit_entries())
    time.sleep(1.0)
    reader = reader_on(line.path, scbk=KEY)
    panel = Panel(line, ADDRESS, KEY)
    try:
        assert panel.wait_secure(timeout=30)
    finally:
        panel.close()
        reader.close()


def test_panel_led_and_text_come_back_as_feedback(line):
    from consentry.web.state import KioskState

    kiosk = KioskState()
    config = PanelConfig(kind="osdp", port=line.path, address=ADDRESS)
    reader = OsdpReader(config, KEY, cards, on_feedback=kiosk.panel_feedback).start()
    panel = Panel(line, ADDRESS, KEY)
    try:
        assert panel.wait_secure()
        panel.command({"command": osdp.Command.LED, "reader": 0, "led_number": 0, "control_code": 1, "on_count": 10,
                       "off_count": 10, "on_color": osdp.CommandLEDColor.Red, "off_color": osdp.CommandLEDColor.Black,
                       "timer_count": 10, "temporary": True})
        panel.command({"command": osdp.Command.Text, "reader": 0, "control_code": 1, "temp_time": 5,
                       "offset_row": 1, "offset_col": 1, "data": "See reception"})
        end = time.monotonic() + 10
        while time.monotonic() < end and "text" not in reader.feedback:
            time.sleep(0.1)
        assert reader.feedback == {"led": "red", "text": "See reception"}
        view = kiosk.kiosk_view()
        assert view["decision"] == "denied" and view["advice"] == "See reception"
    finally:
        panel.close()
        reader.close()


def test_tamper_and_power_are_reported_as_osdp_local_status(line, tmp_path):
    from consentry.panel.osdp_reader import supply_ok

    flags = tmp_path / "get_throttled"
    flags.write_text("0x50005\n")  # under-voltage now (bit 0) and since boot
    assert supply_ok(str(flags)) is False and supply_ok(str(tmp_path / "absent")) is None
    flags.write_text("0x50000\n")
    assert supply_ok(str(flags)) is True
    supply = [True]
    config = PanelConfig(kind="osdp", port=line.path, address=ADDRESS, facility=17)
    reader = OsdpReader(config, KEY, cards, power=lambda: supply[0]).start()
    panel = Panel(line, ADDRESS, KEY)
    try:
        assert panel.wait_secure()
        reader._power_at = 0.0
        supply[0] = False  # the supply sags: the next check reports it
        end = time.monotonic() + 10
        while time.monotonic() < end and not any(e.get("report") == bytes([0, 1]) for e in panel.events):
            reader._power_at = 0.0
            time.sleep(0.1)
        assert any(e.get("report") == bytes([0, 1]) for e in panel.events), panel.events
        supply[0] = True
        reader._power_at = 0.0
        time.sleep(0.5)
        reader.report_local(tamper=True)
        panel.command({"command": osdp.Command.Status, "type": osdp.StatusReportType.Local, "nr_entries": 0,
                       "report": b""})
        end = time.monotonic() + 10
        statuses: list = []
        while time.monotonic() < end and bytes([1, 0]) not in statuses:
            statuses = [e["report"] for e in panel.events if e.get("event") == osdp.Event.Status]
            time.sleep(0.1)
        assert statuses[0] == bytes([0, 0])  # at link up: no tamper, power good
        assert bytes([1, 0]) in statuses[1:], statuses  # the enclosure opened
    finally:
        panel.close()
        reader.close()


def test_revoking_the_subject_stops_its_reads_at_once(line, tmp_path):
    """The card is looked up in the vault at each grant: a revoked subject's grant (a gallery
    not yet reloaded) finds no card and sends nothing."""
    from consentry.panel import card_lookup
    from consentry.vault import KeyFile, Vault

    from tests.test_vault import MODEL, consent, vectors

    KeyFile(tmp_path / "master.key").create()
    with Vault(tmp_path / "home", KeyFile(tmp_path / "master.key"), create=True) as vault:
        sid = vault.enroll("A", consent(), vectors(1), MODEL, card=CARD)
        events: list = []
        config = PanelConfig(kind="osdp", port=line.path, address=ADDRESS, facility=17)
        reader = OsdpReader(config, KEY, card_lookup(vault), listener=lambda k, d: events.append(k)).start()
        panel = Panel(line, ADDRESS, KEY)
        try:
            assert panel.wait_secure()
            reader.unlock(3.0, subject=sid)
            assert read_card(panel.reads.get(timeout=10)) == CARD
            vault.revoke(sid)
            reader.unlock(3.0, subject=sid)
            assert no_read_within(panel, 3.0) and events[-1] == "credential_unusable"
        finally:
            panel.close()
            reader.close()
