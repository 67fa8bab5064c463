"""doctor's panel check: the serial port opens, a Secure Channel key is stored (or plain mode is
allowed, loudly), and the panel brings the link up — online and secure, or why not. Run by
`consentry doctor` with the service stopped (the service holds the port); inside the running
appliance the reader's own live status stands in (:func:`live_check`)."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..doctor.checks import Check
from ..errors import ConsentryError

HINT_KEY = "`consentry panel key --set HEX` with the key configured on the panel (or `--install-mode`)"


def panel_check(settings: Settings, home: Path | None = None) -> Check:
    cfg = settings.panel
    if cfg.kind == "relay":
        return Check("panel", "pass", "no access-control panel: this device drives its own relay ([door])")
    if cfg.kind == "wiegand":
        from .wiegand import RecordingPulses, pulse_writer

        writer = pulse_writer(cfg, out=lambda line: None)
        writer.close()
        if isinstance(writer, RecordingPulses):
            return Check("panel", "fail" if cfg.pulse_backend != "mock" else "warn",
                         f"Wiegand on {cfg.d0_pin}/{cfg.d1_pin}: no lgpio, pulses are only recorded",
                         "on a Pi: apt install python3-lgpio (or pip install lgpio)")
        return Check("panel", "pass", f"Wiegand on {cfg.d0_pin}/{cfg.d1_pin} via lgpio ({cfg.card_format}; "
                     "Wiegand is unencrypted and unsupervised: prefer OSDP)")
    return _osdp_check(settings, home)


def _osdp_check(settings: Settings, home: Path | None) -> Check:
    import serial

    from . import SCBK_SECRET
    from .osdp_reader import OsdpReader

    cfg = settings.panel
    try:
        serial.Serial(cfg.port, cfg.baud, timeout=0, exclusive=True).close()
    except (serial.SerialException, OSError, ValueError) as exc:
        busy = "lock" in str(exc).lower() or "busy" in str(exc).lower()
        return Check("panel", "fail", f"serial port {cfg.port} does not open: {exc}",
                     "the service holds it: see the staff page's panel line" if busy else
                     "check panel.port (ls /dev/serial/by-id/), the adapter, and that this user is in group dialout")
    try:
        from ..vault.factory import open_vault

        with open_vault(settings.vault, home) as vault:
            scbk = vault.secret(SCBK_SECRET)
    except ConsentryError as exc:
        return Check("panel", "fail", f"{cfg.port} opens, but the vault does not ({exc})", HINT_KEY)
    if scbk is None and not cfg.allow_plain:
        return Check("panel", "fail", f"{cfg.port} opens; no Secure Channel key is stored", HINT_KEY)
    reader = OsdpReader(cfg, scbk, lambda subject: None).start()
    try:
        link = reader.wait_link(max(cfg.connect_wait_seconds, 3.0))
    finally:
        reader.close()
    return _verdict(cfg, link)


def _verdict(cfg, link) -> Check:
    where = f"OSDP address {cfg.address} on {cfg.port} at {cfg.baud} baud"
    if link.online and link.secure:
        return Check("panel", "pass", f"{where}: online, secure channel")
    if link.online and not cfg.allow_plain:
        return Check("panel", "fail", f"{where}: polled, but the secure channel does not come up",
                     "the panel and `consentry panel key` must hold the same SCBK")
    if link.online:
        return Check("panel", "warn", f"{where}: online in PLAIN mode (panel.allow_plain): card numbers cross the "
                     "wire in clear", "set the same SCBK on the panel and here, then allow_plain = false")
    later = (" — or wait: a panel that lost this reader mid-session (a restart of Consentry) may take up to "
             "5 minutes to poll it again (libosdp's does)") if "stopped polling" in link.detail else ""
    return Check("panel", "fail", f"{where}: {link}{later}",
                 "check A/B wiring (swap them if nothing is heard), 120 ohm termination at both ends, the reader's "
                 "address and baud on the panel, and that the panel and `consentry panel key` hold the same SCBK")


def live_check(door) -> list[Check]:
    """The running reader's own link (the staff page), or nothing for a relay door."""
    link = getattr(door, "link", None)
    if not callable(link):
        status = getattr(door, "status", None)
        return [Check("panel", "pass", status())] if callable(status) else []
    return [_verdict(door.cfg, link())]
