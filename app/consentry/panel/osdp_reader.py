"""The OSDP reader: this appliance as a peripheral device (PD) on an access-control panel's
RS-485 bus, built on libosdp (IEC 60839-11-5) — the only module that imports ``osdp``.

A grant becomes one card-read event carrying the subject's credential; nothing else a face does
goes on the line. Secure Channel is required unless ``panel.allow_plain``: without it the PD
answers nothing but the handshake. A read is only queued while the panel is online (and the
channel secure), and withdrawn if the panel has not collected it within
``panel.send_within_seconds``, so a grant is never delivered late. The panel's LED, buzzer
and text commands come back as feedback; a KEYSET (new SCBK) is stored sealed before it is
acknowledged. The line is reopened when the device goes away (a USB adapter pulled), and
garbage on it is libosdp's to discard: the polling thread survives anything the channel or
the library raise.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import osdp
import serial

from ..config import PanelConfig
from ..errors import ConfigError
from .formats import Card, grant_frame

log = logging.getLogger(__name__)

SCBK_BYTES = 16
SCBK_D = bytes(range(0x30, 0x40))  # the published default key of install mode (OSDP spec)
POLL_SECONDS = 0.02
# libosdp keeps a PD "online" for seconds after the last poll; a panel polls every 50-200 ms,
# so a line silent for this long is treated as down at once (a read queued then would wait).
SILENT_SECONDS = 1.5
Feedback = Callable[[str, str], None]  # ("led" | "buzzer" | "text", value)
DoorListener = Callable[[str, dict], None]


@dataclass(frozen=True)
class LinkStatus:
    """``online``: the panel polls us; ``secure``: Secure Channel is up; ``detail``: why not."""

    online: bool
    secure: bool
    detail: str

    def __str__(self) -> str:
        if self.online:
            return "online, secure channel" if self.secure else "online, no secure channel (PLAIN)"
        return f"offline ({self.detail})"


class SerialLine(osdp.Channel):
    """libosdp's channel on a pyserial port (a UART, a USB RS-485 adapter, a pty). Never raises:
    a device that fails is closed and reopened at most once a second from the polling thread."""

    def __init__(self, port: str, baud: int) -> None:
        super().__init__()
        self.port, self.baud = port, baud
        self._serial: serial.Serial | None = None
        self._retry_at = 0.0
        self.last_error = ""
        self.reopened = 0
        self.heard_at = 0.0  # monotonic time of the last byte from the panel

    def open(self) -> bool:
        if self._serial is not None:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + 1.0
        try:
            # exclusive (flock): a second process on the line (doctor, a stray minicom) would eat polls
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=0.5, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.last_error = f"cannot open {self.port}: {exc}"
            return False
        self.reopened += 1
        self.last_error = ""
        return True

    def _drop(self, exc: Exception) -> None:
        self.last_error = f"{self.port}: {exc}"
        log.warning("OSDP line %s failed (%s); reopening", self.port, exc)
        with contextlib.suppress(serial.SerialException, OSError):
            if self._serial is not None:
                self._serial.close()
        self._serial = None

    def read(self, max_bytes: int) -> bytes:
        if not self.open():
            return b""
        try:
            data = self._serial.read(max_bytes) or b""
        except (serial.SerialException, OSError, TypeError) as exc:
            self._drop(exc)
            return b""
        if data:
            self.heard_at = time.monotonic()
        return data

    def write(self, buf: bytes) -> int:
        if not self.open():
            return 0
        try:
            return self._serial.write(buf) or 0
        except (serial.SerialException, OSError, TypeError) as exc:
            self._drop(exc)
            return 0

    def flush(self) -> None:
        try:
            if self._serial is not None:
                self._serial.flush()
        except (serial.SerialException, OSError, TypeError) as exc:
            self._drop(exc)

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._serial.close()
            self._serial = None


THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"
POWER_CHECK_SECONDS = 10.0


def supply_ok(path: str = THROTTLED) -> bool | None:
    """False while the Pi's firmware reports under-voltage now (bit 0), None off a Pi."""
    try:
        with open(path) as fh:
            return not int(fh.read().strip(), 16) & 1
    except (OSError, ValueError):
        return None


def parse_scbk(text: str) -> bytes:
    """A 16-byte Secure Channel Base Key from 32 hex digits (spaces and colons allowed)."""
    clean = "".join(ch for ch in text.strip() if ch not in " :-")
    try:
        key = bytes.fromhex(clean)
    except ValueError:
        raise ConfigError("the SCBK must be 32 hexadecimal digits (16 bytes)") from None
    if len(key) != SCBK_BYTES:
        raise ConfigError(f"the SCBK must be 16 bytes (32 hex digits), not {len(key)}")
    if key == SCBK_D:
        raise ConfigError("that is SCBK-D, the published install-mode key: choose a secret key")
    return key


class OsdpReader:
    """``card_for(subject)`` gives a subject's credential (None: it has none) at the moment of
    the grant, so a revoked subject's card is never sent. ``on_keyset(key)`` stores a new SCBK
    and returns True once it is safe; ``install`` accepts one KEYSET over SCBK-D (commissioning)."""

    def __init__(self, cfg: PanelConfig, scbk: bytes | None, card_for: Callable[[str], Card | None], *,
                 listener: DoorListener | None = None, on_feedback: Feedback | None = None,
                 on_keyset: Callable[[bytes], bool] | None = None, install: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 power: Callable[[], bool | None] = supply_ok) -> None:
        """``power()``: the supply is good (True), failing (False) or unknown (None); checked every
        POWER_CHECK_SECONDS and reported to the panel on a change."""
        if scbk is None and not cfg.allow_plain and not install:
            raise ConfigError("panel.kind = \"osdp\" needs a Secure Channel key: set it with `consentry panel key "
                              "--set HEX` (or commission it with `--install-mode`); plain mode only with "
                              "panel.allow_plain = true")
        if scbk is not None and len(scbk) != SCBK_BYTES:
            raise ConfigError("the stored SCBK is not 16 bytes; set it again with `consentry panel key --set HEX`")
        self.cfg = cfg
        self.card_for = card_for
        self.listener = listener or (lambda kind, detail: None)
        self.on_feedback = on_feedback or (lambda kind, value: None)
        self.on_keyset = on_keyset
        self.install = install
        self.clock = clock
        self.keysets = 0
        self.sent = 0
        self.withdrawn = 0
        self.refused = 0
        self.feedback: dict[str, str] = {}
        self._last_submit = 0
        self._pending: tuple[float, dict, str] | None = None
        self._pending_lock = threading.Lock()
        self._link_state = (False, False)
        self.tamper = False
        self.power_ok = True
        self.power = power
        self._power_at = 0.0
        self.line = SerialLine(cfg.port, cfg.baud)
        flags = [] if cfg.allow_plain else [osdp.LibFlag.EnforceSecure]
        if install:
            flags = [osdp.LibFlag.InstallMode]
        caps = [(osdp.Capability.CommunicationSecurity, 1, 1), (osdp.Capability.Readers, 1, 1),
                (osdp.Capability.CardDataFormat, 1, 1), (osdp.Capability.LEDControl, 1, 1),
                (osdp.Capability.AudibleControl, 1, 1), (osdp.Capability.TextOutput, 1, 1)]
        info = osdp.PDInfo(cfg.address, self.line, scbk=None if install else scbk, name="consentry", flags=flags,
                           id=osdp.PdId(1, 1, 0x000000, 1, 0x000100))
        self._pd = osdp.PeripheralDevice(info, osdp.PDCapabilities(caps), log_level=osdp.LogLevel.Error,
                                         command_handler=self._command)
        self._pd.lock = threading.Lock()  # submit_event takes it; our own loop holds it around refresh
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> OsdpReader:
        if self.cfg.allow_plain:
            log.warning("OSDP reader in PLAIN mode (panel.allow_plain): card numbers cross the wire unencrypted")
        self._thread = threading.Thread(target=self._loop, name="osdp-pd", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._pd.lock:
                    self._pd.ctx.refresh()
            except Exception:  # noqa: BLE001 - the reader outlives anything the line or the library throw
                log.exception("OSDP refresh failed; carrying on")
                time.sleep(0.5)
            try:
                self._watch_link()
                self._watch_power()
                self._try_send()
            except Exception:  # noqa: BLE001
                log.exception("OSDP send failed; carrying on")
            self._stop.wait(POLL_SECONDS)

    def _watch_link(self) -> None:
        """Say when the link comes up or goes down (once per change, not per poll)."""
        link = self.link()
        state = (link.online, link.secure)
        if state == self._link_state or (state == (True, False) and not self.cfg.allow_plain):
            return  # online, not yet secure: the handshake is under way (nothing is sent meanwhile)
        self._link_state = state
        if link.online and (link.secure or self.cfg.allow_plain):
            self.report_local()
        level = logging.INFO if link.online and link.secure else logging.WARNING
        log.log(level, "panel link %s: %s", "up" if link.online else "down", link)

    def _watch_power(self) -> None:
        now = time.monotonic()
        if now - self._power_at < POWER_CHECK_SECONDS:
            return
        self._power_at = now
        ok = self.power()
        if ok is not None and ok != self.power_ok:
            log.warning("supply %s: reported to the panel", "restored" if ok else "under-voltage")
            self.report_local(power_ok=ok)

    def _local_report(self) -> bytes:
        return bytes([int(self.tamper), int(not self.power_ok)])

    def report_local(self, tamper: bool | None = None, power_ok: bool | None = None) -> None:
        """Tamper (the enclosure opened) and power (a failing supply: the Pi's under-voltage flag)
        as the OSDP local status the panel supervises; sent now and whenever the link comes up."""
        if tamper is not None:
            self.tamper = tamper
        if power_ok is not None:
            self.power_ok = power_ok
        event = {"event": osdp.Event.Status, "type": osdp.StatusReportType.Local, "nr_entries": 2,
                 "report": self._local_report()}
        with self._pd.lock:
            self._pd.ctx.submit_event(event)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        if self._thread is not None:
            self._thread.join(2.0)
        self.line.close()

    # -- the link -------------------------------------------------------------------------
    def link(self) -> LinkStatus:
        try:
            online, secure = bool(self._pd.ctx.is_online()), bool(self._pd.ctx.is_sc_active())
        except Exception as exc:  # noqa: BLE001 - a status query must not take the page down
            return LinkStatus(False, False, f"libosdp: {exc}")
        if online and time.monotonic() - self.line.heard_at > SILENT_SECONDS:
            return LinkStatus(False, False, f"the panel stopped polling on {self.cfg.port}")
        if online:
            return LinkStatus(True, secure, "")
        detail = self.line.last_error or (f"no poll from the panel on {self.cfg.port}"
                                          + ("" if self.cfg.allow_plain else
                                             " with this SCBK (a wrong key looks the same)"))
        return LinkStatus(False, False, detail)

    def status(self) -> str:
        text = f"OSDP address {self.cfg.address} on {self.cfg.port}: {self.link()}; {self.sent} card read(s) sent"
        if self.withdrawn or self.refused:
            text += f", {self.withdrawn} withdrawn uncollected, {self.refused} not sent (link down)"
        if self.feedback:
            text += "; last from the panel: " + ", ".join(f"{k} {v}" for k, v in sorted(self.feedback.items()))
        if self.cfg.allow_plain:
            text += " — WARNING: plain mode allowed (panel.allow_plain)"
        return text

    # -- a grant --------------------------------------------------------------------------
    def unlock(self, seconds: float, reason: str = "grant", subject: str | None = None) -> None:
        """One card read for ``subject``'s credential; anything else sends nothing."""
        frame = grant_frame(self.cfg, self.card_for, subject, reason, self.listener)
        if frame is None:
            return
        event = {"event": osdp.Event.CardRead, "reader_no": 0, "direction": 0, "format": osdp.CardFormat.Wiegand,
                 "length": frame.length, "data": frame.packed()}
        with self._pending_lock:  # a newer grant replaces one still waiting for the link
            self._pending = (self.clock() + self.cfg.send_within_seconds, event, subject)
        self._try_send()

    def _try_send(self) -> None:
        """Queue the waiting read once the link is up (and secure); past its window it is dropped.
        From a grant and from every poll, so a link that comes up a moment late still gets it."""
        with self._pending_lock:
            if self._pending is None:
                return
            deadline, event, subject = self._pending
            link = self.link()
            if self.clock() > deadline:
                self._pending = None
                self.refused += 1
                log.warning("grant for %s not sent within %.1f s: panel link %s", subject,
                            self.cfg.send_within_seconds, link)
                self._notify("credential_not_sent", {"reason": "panel link down" if not link.online else "not secure"})
                return
            if not link.online or not (link.secure or self.cfg.allow_plain):
                return
            self._pending = None
        with self._pd.lock:
            self._pd.ctx.flush_events()  # nothing older than this grant may follow it onto the line
            ok = self._pd.ctx.submit_event(event)
        if not ok:
            self.refused += 1
            log.error("libosdp refused the card read for %s", subject)
            return
        self.sent += 1
        self._last_submit += 1
        timer = threading.Timer(self.cfg.send_within_seconds, self._withdraw, args=(self._last_submit,))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        self._notify("credential_sent", {})

    def _notify(self, kind: str, detail: dict) -> None:
        try:
            self.listener(kind, detail)
        except Exception:  # noqa: BLE001 - the bus's trouble is not the line's
            log.exception("door event %s could not be published", kind)

    def wait_link(self, timeout: float) -> LinkStatus:
        """Up to ``timeout`` seconds for the panel to bring the link up (at start)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            link = self.link()
            if link.online and (link.secure or self.cfg.allow_plain):
                return link
            time.sleep(0.1)
        return self.link()

    def _withdraw(self, stamp: int) -> None:
        """The panel had the read's window to collect it; a read still queued is dropped."""
        if stamp != self._last_submit or self._stop.is_set():
            return
        with self._pd.lock:
            if self._pd.ctx.flush_events():
                self.withdrawn += 1
                log.warning("a card read was not collected by the panel in %.1f s and was withdrawn",
                            self.cfg.send_within_seconds)

    # -- what the panel sends -------------------------------------------------------------
    def _command(self, command: dict) -> tuple[int, dict | None]:
        """From the polling thread. Exceptions are the library's problem to print: none escape."""
        try:
            kind = command.get("command")
            if kind == osdp.Command.LED:
                colour = {osdp.CommandLEDColor.Green: "green", osdp.CommandLEDColor.Red: "red",
                          osdp.CommandLEDColor.Amber: "amber", osdp.CommandLEDColor.Blue: "blue"}
                self._feedback("led", colour.get(command.get("on_color"), "other"))
            elif kind == osdp.Command.Buzzer:
                self._feedback("buzzer", "on" if command.get("control_code") == 2 else "off")
            elif kind == osdp.Command.Text:
                text = "".join(ch for ch in str(command.get("data", ""))[:32] if ch.isprintable())
                self._feedback("text", text)
            elif kind == osdp.Command.Keyset:
                return self._keyset(command)
            elif kind == osdp.Command.Status and command.get("type") == osdp.StatusReportType.Local:
                return 0, {"command": osdp.Command.Status, "type": osdp.StatusReportType.Local, "nr_entries": 2,
                           "report": self._local_report()}
            return 0, None
        except Exception:  # noqa: BLE001
            log.exception("OSDP command could not be handled")
            return -1, None

    def _feedback(self, kind: str, value: str) -> None:
        self.feedback[kind] = value
        try:
            self.on_feedback(kind, value)
        except Exception:  # noqa: BLE001 - the page's trouble is not the line's
            log.exception("panel feedback could not be shown")

    def _keyset(self, command: dict) -> tuple[int, dict | None]:
        key = bytes(command.get("data") or b"")
        if len(key) != SCBK_BYTES or self.on_keyset is None:
            log.error("KEYSET from the panel refused (%s)", "no key store" if self.on_keyset is None else
                      f"{len(key)}-byte key")
            return -1, None
        if key == SCBK_D:
            log.error("KEYSET from the panel refused: it is SCBK-D, the published install-mode key")
            return -1, None
        if not self.on_keyset(key):
            return -1, None
        self.keysets += 1
        log.warning("the panel set a new Secure Channel key (KEYSET); it is stored sealed in the vault")
        return 0, None
