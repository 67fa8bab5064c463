"""Wiegand output behind the door's interface, on the pulse-recording fake; the [panel] section."""

from __future__ import annotations

import pytest
from consentry.config import PanelConfig, Settings, explain, load_settings
from consentry.errors import ConfigError
from consentry.panel import open_output
from consentry.panel.formats import Card, decode
from consentry.panel.wiegand import RecordingPulses, WiegandOutput, pulse_writer

CARD = Card(17, 40961)


def output(**cfg) -> tuple[WiegandOutput, RecordingPulses, list]:
    events: list = []
    writer = RecordingPulses()
    config = PanelConfig(kind="wiegand", facility=17, **cfg)
    out = WiegandOutput(config, writer, lambda s: CARD if s == "s-a" else None,
                        listener=lambda kind, detail: events.append((kind, detail)))
    return out, writer, events


def test_a_grant_plays_the_card_once_with_the_configured_timing():
    out, writer, events = output(pulse_us=80, interval_us=1500)
    out.unlock(3.0, subject="s-a")
    assert len(writer.frames) == 1
    pulses = writer.frames[0]
    assert decode("h10301", writer.bits()) == CARD
    assert all(p.width_us == 80 for p in pulses)
    assert [b.start_us - a.start_us for a, b in zip(pulses, pulses[1:], strict=False)] == [1500] * 25
    out.unlock(3.0, subject="s-stranger-or-no-card")
    out.unlock(3.0, reason="egress")
    out.unlock(3.0)
    assert len(writer.frames) == 1 and events == [("credential_sent", {}), ("credential_missing", {})]


def test_h10304_and_a_failing_output_is_reported_not_raised():
    out, writer, events = output(card_format="h10304")
    out.unlock(3.0, subject="s-a")
    assert len(writer.bits()) == 37 and decode("h10304", writer.bits()) == CARD
    writer.fail = OSError("GPIO busy")
    out.unlock(3.0, subject="s-a")
    assert events[-1] == ("credential_not_sent", {"reason": "output failed"}) and out.sent == 1


def test_without_lgpio_auto_says_so_and_lgpio_refuses():
    said: list[str] = []
    assert isinstance(pulse_writer(PanelConfig(kind="wiegand"), said.append), RecordingPulses)
    assert said and "WARNING" in said[0]
    with pytest.raises(ConfigError, match="lgpio"):
        pulse_writer(PanelConfig(kind="wiegand", pulse_backend="lgpio"))


def test_open_output_chooses_by_kind():
    s = Settings.model_validate({"panel": {"kind": "wiegand", "pulse_backend": "mock"}})
    door = open_output(s, None, out=lambda line: None)
    assert isinstance(door, WiegandOutput) and "Wiegand" in door.status()
    door.close()


@pytest.mark.parametrize("text,match", [
    ('[panel]\nkind = "osdp"\n', "needs panel.port"),
    ('[panel]\nkind = "serial"\n', "panel.kind"),
    ('[panel]\nfacility = 300\n', "does not fit h10301"),
    ('[panel]\naddress = 127\n', "panel.address"),
    ('[panel]\nbaud = 1200\n', "panel.baud"),
    ('[panel]\nport = "/dev/ttyUSB0"\nscbk = "00"\n', "panel.scbk"),  # the key never lives in the config
])
def test_the_panel_section_refuses_mistakes(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(path)


def test_the_panel_section_is_explained():
    text = explain(Settings())
    assert "[panel]" in text and "Secure Channel" in text and "kind = 'relay'" in text
