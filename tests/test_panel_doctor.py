"""doctor's panel check against a real ControlPanel on a pty: opens, key stored, online and secure — or why not."""

from __future__ import annotations

import threading
import time

from consentry.cli import main
from consentry.config import Settings
from consentry.doctor import Check
from consentry.panel.doctor import live_check, panel_check
from consentry.panel.osdp_reader import OsdpReader

from tests.panel_rig import Panel, Pty

KEY_HEX = "8f3a61c2d94be07512aa03f6c8e1b4d7"


def settings(port: str, **panel) -> Settings:
    return Settings.model_validate({"panel": {"kind": "osdp", "port": port, "address": 3,
                                              "connect_wait_seconds": 20, **panel}})


def check_against_panel(line: Pty, key: bytes, s: Settings, home) -> Check:
    """doctor listening first, then the panel starting to poll (as doctor meets a panel on site:
    already polling; libosdp's own panel backs off from a reader that is not there yet)."""
    found: list[Check] = []
    worker = threading.Thread(target=lambda: found.append(panel_check(s, home)))
    worker.start()
    time.sleep(0.3)
    panel = Panel(line, 3, key)
    try:
        worker.join(60)
    finally:
        panel.close()
    time.sleep(0.5)  # the panel's last bytes drain from the pty
    return found[0]


def test_doctor_panel_check(tmp_path):
    home = tmp_path / "home"
    assert main(["--home", str(home), "keys", "init"]) == 0
    assert panel_check(Settings(), home).status == "pass"  # a relay door has no panel
    missing = panel_check(settings(str(tmp_path / "ttyNONE")), home)
    assert missing.status == "fail" and "does not open" in missing.detail and "dialout" in missing.hint
    line = Pty()
    try:
        no_key = panel_check(settings(line.path), home)
        assert no_key.status == "fail" and "no Secure Channel key" in no_key.detail and "panel key" in no_key.hint
        assert main(["--home", str(home), "panel", "key", "--set", KEY_HEX]) == 0
        wrong = check_against_panel(line, bytes.fromhex("00" * 16), settings(line.path, connect_wait_seconds=5),
                                    home)  # the panel holds another key
        assert wrong.status == "fail" and "offline" in wrong.detail and "same SCBK" in wrong.hint
        good = check_against_panel(line, bytes.fromhex(KEY_HEX), settings(line.path), home)
        assert good.status == "pass" and "online, secure channel" in good.detail, good
        time.sleep(0.5)
        # libosdp's panel waits 300 s before polling a reader that vanished mid-session (doctor's,
        # here), so the running reader below meets a restarted panel
        panel = Panel(line, 3, bytes.fromhex(KEY_HEX))
        try:
            s = settings(line.path)
            reader = OsdpReader(s.panel, bytes.fromhex(KEY_HEX), lambda subject: None).start()
            try:
                assert reader.wait_link(60).secure
                busy = panel_check(s, home)  # the service holds the port
                assert busy.status == "fail" and "staff page" in busy.hint, busy
                assert live_check(reader)[0].status == "pass"
            finally:
                reader.close()
        finally:
            panel.close()
    finally:
        line.close()
    assert KEY_HEX not in repr([missing, no_key, wrong, good])
