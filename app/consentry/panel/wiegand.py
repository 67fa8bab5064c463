"""Wiegand output for panels without OSDP: the card frame as pulses on DATA0 (a 0 bit) and DATA1
(a 1 bit), ``pulse_us`` wide, one every ``interval_us`` — the only module that imports lgpio.

On a Pi 4 and a Pi 5 the maintained path to microsecond pulses is lgpio (gpiozero's own pin
back end on the Pi 5): ``tx_wave`` on a claimed group of the two pins plays a list of
(level, mask, delay) steps from lgpio's own thread, so widths and gaps do not depend on this
process's scheduling beyond that thread's; see docs/panel.md for what that gives. The frame is
the same as on OSDP (panel/formats.py). Wiegand carries no encryption and no supervision:
anyone on the two wires can read or replay a card, which is why OSDP with Secure Channel is
preferred.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..config import PanelConfig
from ..errors import ConfigError
from .formats import Card, grant_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pulse:
    """One pulse: ``line`` 0 (DATA0) or 1 (DATA1), ``start_us`` from the frame's first pulse,
    ``width_us``."""

    line: int
    start_us: int
    width_us: int


class PulseWriter(Protocol):
    def send(self, pulses: list[Pulse]) -> None: ...

    def close(self) -> None: ...


def schedule(bits: tuple[int, ...], pulse_us: int, interval_us: int) -> list[Pulse]:
    """The pulses of a frame: one per bit, on the line the bit names."""
    return [Pulse(bit, i * interval_us, pulse_us) for i, bit in enumerate(bits)]


class RecordingPulses:
    """The fake: keeps every frame's pulses (``frames``) and can fail on command (``fail``)."""

    name = "mock"

    def __init__(self) -> None:
        self.frames: list[list[Pulse]] = []
        self.fail: Exception | None = None

    def send(self, pulses: list[Pulse]) -> None:
        if self.fail is not None:
            raise self.fail
        self.frames.append(list(pulses))

    def bits(self, index: int = -1) -> tuple[int, ...]:
        return tuple(p.line for p in self.frames[index])

    def close(self) -> None:
        pass


def _gpio_number(pin: str) -> int:
    text = pin.upper().removeprefix("GPIO").removeprefix("BCM")
    if not text.isdigit():
        raise ConfigError(f"Wiegand pin {pin!r}: use a BCM name such as GPIO5")
    return int(text)


class LgpioPulses:
    """lgpio's wave output on the two pins (gpiochip 0 on a Pi 4, 4 on an early Pi 5 kernel, else 0)."""

    name = "lgpio"

    def __init__(self, cfg: PanelConfig) -> None:
        import lgpio  # only here: the appliance runs without it when there is no Wiegand output

        self._lgpio = lgpio
        self.d0, self.d1 = _gpio_number(cfg.d0_pin), _gpio_number(cfg.d1_pin)
        self.active = 1 if cfg.pulse_level == "high" else 0
        self.handle = None
        for chip in (4, 0):
            try:
                self.handle = lgpio.gpiochip_open(chip)
                break
            except lgpio.error:
                continue
        if self.handle is None:
            raise ConfigError("no GPIO chip could be opened for the Wiegand output")
        idle = 1 - self.active
        lgpio.group_claim_output(self.handle, [self.d0, self.d1], [idle, idle])

    def send(self, pulses: list[Pulse]) -> None:
        lg, idle = self._lgpio, 1 - self.active
        mask = 0b11  # bit 0: DATA0, bit 1: DATA1 (the group's order)
        steps, clock = [], 0
        for p in pulses:
            if p.start_us > clock:
                steps.append(lg.pulse(idle * mask, mask, p.start_us - clock))
            bits = (self.active << p.line) | (idle << (1 - p.line))
            steps.append(lg.pulse(bits, mask, p.width_us))
            clock = p.start_us + p.width_us
        steps.append(lg.pulse(idle * mask, mask, 1))
        while lg.tx_busy(self.handle, self.d0, lg.TX_WAVE):
            time.sleep(0.001)
        lg.tx_wave(self.handle, self.d0, steps)

    def close(self) -> None:
        if self.handle is not None:
            self._lgpio.group_free(self.handle, self.d0)
            self._lgpio.gpiochip_close(self.handle)
            self.handle = None


def pulse_writer(cfg: PanelConfig, out: Callable[[str], None] = print) -> PulseWriter:
    """lgpio, or the recording fake when asked (``mock``) or, under ``auto``, when lgpio is absent
    — never silently."""
    if cfg.pulse_backend == "mock":
        return RecordingPulses()
    try:
        return LgpioPulses(cfg)
    except (ImportError, ConfigError) as exc:
        if cfg.pulse_backend == "lgpio":
            raise ConfigError(f"Wiegand output needs lgpio ({exc}); on a Pi: apt install python3-lgpio") from exc
        out(f"WARNING: no Wiegand GPIO ({exc}): recording pulses only, nothing reaches the panel")
        return RecordingPulses()


class WiegandOutput:
    """The door's output for ``panel.kind = "wiegand"``: a grant plays the subject's card once."""

    def __init__(self, cfg: PanelConfig, writer: PulseWriter, card_for: Callable[[str], Card | None], *,
                 listener=None) -> None:
        self.cfg = cfg
        self.writer = writer
        self.card_for = card_for
        self.listener = listener or (lambda kind, detail: None)
        self.sent = 0
        self._lock = threading.Lock()  # one frame at a time: interleaved pulses are noise to a panel

    def unlock(self, seconds: float, reason: str = "grant", subject: str | None = None) -> None:
        frame = grant_frame(self.cfg, self.card_for, subject, reason, self.listener)
        if frame is None:
            return
        try:
            with self._lock:
                self.writer.send(schedule(frame.bits, self.cfg.pulse_us, self.cfg.interval_us))
        except Exception as exc:  # noqa: BLE001 - a GPIO failure is reported, never ends the loop
            log.error("Wiegand output failed: %s", exc)
            self.listener("credential_not_sent", {"reason": "output failed"})
            return
        self.sent += 1
        self.listener("credential_sent", {})

    def status(self) -> str:
        return (f"Wiegand on {self.cfg.d0_pin}/{self.cfg.d1_pin} ({getattr(self.writer, 'name', '?')}), "
                f"{self.cfg.card_format}, {self.sent} card(s) sent")

    def close(self) -> None:
        self.writer.close()
