"""`consentry run --profile door` with `[panel] kind = "osdp"` on a pty, against libosdp's own
ControlPanel: the shared webcam person, enrolled with a card, is read once as exactly that card;
a clip of strangers puts nothing on the line; after revocation the person's clip reads nothing.
Real models, real vault, the real pipeline on the shared clips."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from consentry.cli import main
from consentry.panel.formats import Card, decode, unpack

from tests.panel_rig import Panel, Pty
from tests.test_end_to_end import enrol_person_a

KEY_HEX = "8f3a61c2d94be07512aa03f6c8e1b4d7"
ADDRESS = 9


@pytest.fixture
def line():
    pty = Pty()
    yield pty
    pty.close()


@pytest.fixture
def enrolled(tmp_path, faces_dir, capsys):
    """Person A enrolled with card 40961 at facility 17 from 6 frames of the first webcam clip."""
    home, subject = enrol_person_a(tmp_path, faces_dir, capsys, "--card", "40961", "--facility", "17")
    assert main(["--home", str(home), "panel", "key", "--set", KEY_HEX]) == 0
    out = capsys.readouterr().out
    assert KEY_HEX not in out and "fingerprint" in out
    return home, subject


def run_clip(home: Path, clip: Path, tmp_path: Path, port: str, frames: int | None = None) -> None:
    config = tmp_path / "consentry.toml"
    config.write_text("[door]\nunlock_seconds = 0.5\ncooldown_seconds = 120.0\n[mqtt]\nenabled = false\n"
                      f"[panel]\nkind = \"osdp\"\nport = \"{port}\"\naddress = {ADDRESS}\nfacility = 17\n")
    argv = ["--config", str(config), "--home", str(home), "run", "--source", f"file:{clip}", "--exit-at-end",
            "--profile", "door"]
    assert main(argv + (["--frames", str(frames)] if frames else [])) == 0


class Watched:
    """A panel (restarted for every run, as libosdp's panel waits 300 s before polling again a
    reader that vanished mid-session) and whether its secure channel was up during the run: a run
    that reads nothing proves nothing unless the link was up."""

    def __init__(self, line: Pty) -> None:
        self.panel = Panel(line, ADDRESS, bytes.fromhex(KEY_HEX))
        self.secure_seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.secure_seen = self.secure_seen or self.panel.cp.is_sc_active(ADDRESS)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.panel.close()


def run_watched(home: Path, clip: Path, tmp_path: Path, line: Pty, frames: int | None = None) -> list[dict]:
    watched = Watched(line)
    try:
        run_clip(home, clip, tmp_path, line.path, frames)
        got = reads(watched.panel)
    finally:
        watched.close()
    assert watched.secure_seen, "the secure channel never came up during the run"
    time.sleep(0.5)  # the pty drains before the next panel
    return got


def reads(panel: Panel, settle: float = 2.0) -> list[dict]:
    time.sleep(settle)
    out = []
    while not panel.reads.empty():
        out.append(panel.reads.get())
    return out


def test_the_enrolled_person_is_read_once_strangers_and_the_revoked_never(enrolled, faces_dir, tmp_path, line,
                                                                           capsys):
    home, subject = enrolled
    got = run_watched(home, faces_dir / "video" / "webcam_person_a_2.wmv", tmp_path, line)
    out = capsys.readouterr().out
    assert "granted: " + subject in out
    assert len(got) == 1, f"expected exactly one card read, got {len(got)}"
    assert got[0]["length"] == 26 and decode("h10301", unpack(got[0]["data"], 26)) == Card(17, 40961)
    assert "40961" not in out  # the card number is never printed

    assert run_watched(home, faces_dir / "video" / "multi_face.avi", tmp_path, line, frames=150) == [], \
        "strangers put a card read on the line"

    assert main(["--home", str(home), "revoke", subject]) == 0
    assert run_watched(home, faces_dir / "video" / "webcam_person_a_2.wmv", tmp_path, line) == [], \
        "a revoked subject's card was read"
    assert "granted" not in capsys.readouterr().out


def test_the_appliance_with_a_panel_publishes_what_it_sent_and_shows_the_link(tmp_path, pipeline, astronaut, line):
    """The appliance loop (fake camera on the public-domain astronaut, liveness off as in
    tests/test_appliance.py): a grant is one read, `event/door` says `credential_sent` (no number),
    the health page and the staff page's checks show the link."""
    from consentry.vault import KeyFile, Vault

    from tests.test_appliance import appliance, panned, settings
    from tests.test_vault import consent

    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    face = pipeline.faces(astronaut)[0]
    vector = pipeline.embed(astronaut, face).vector.copy()
    pipeline.wipe()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        sid = vault.enroll("Astrid Nautica", consent(), [vector], pipeline.embedder.name, card=Card(17, 40961))
        vault.put_secret("panel-scbk", bytes.fromhex(KEY_HEX))
    from consentry.camera.fake import FakeCamera

    s = settings(panel={"kind": "osdp", "port": line.path, "address": ADDRESS, "facility": 17})
    panel = Panel(line, ADDRESS, bytes.fromhex(KEY_HEX))
    try:
        app = appliance(s, home, FakeCamera(panned(astronaut) * 4, fps=10))
        seen: dict = {}

        def frame_hook(frame, _orig=app._frame):
            _orig(frame)
            if app.frames == 50:
                seen["health"], seen["checks"] = app.health(), app.checks()

        app._frame = frame_hook
        app.run(max_frames=60)
        got = reads(panel)
    finally:
        panel.close()
    assert [e["subject"] for e in app.bus.of("event/access") if e["decision"] == "granted"] == [sid]
    assert len(got) == 1 and decode("h10301", unpack(got[0]["data"], 26)) == Card(17, 40961)
    assert [e["event"] for e in app.bus.of("event/door")] == ["credential_sent"]
    assert "40961" not in repr(app.bus.sent)
    assert "online, secure channel" in seen["health"]["panel"]
    panel_checks = [c for c in seen["checks"] if c.name == "panel"]
    assert len(panel_checks) == 1 and panel_checks[0].status == "pass", panel_checks
