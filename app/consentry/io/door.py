"""The door: a relay that fails secure, an exit button and a door contact — the only module
that imports gpiozero, so tests run it on gpiozero's MockFactory.

The relay is created locked (and firmware holds the pin at the locked level while Linux
boots); an unlock is a timed pulse; close() locks. The contact reports ``door_opened`` /
``door_closed``, ``door_forced`` (opened with no grant or egress in force) and
``door_held_open`` (open longer than allowed).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable

from ..config import DoorConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

DoorListener = Callable[[str, dict], None]
GRACE_SECONDS = 2.0  # a door opened just after the relay closed again is not "forced"


def pin_factory(kind: str):
    """``mock`` → gpiozero's MockFactory; ``auto`` → gpiozero's own choice (None)."""
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    return None


class Door:
    def __init__(self, cfg: DoorConfig, factory=None, listener: DoorListener | None = None) -> None:
        from gpiozero import Button, OutputDevice
        from gpiozero.exc import BadPinFactory, GPIOZeroError

        self.cfg = cfg
        self.listener = listener or (lambda kind, detail: None)
        self._lock = threading.Lock()
        self._relock: threading.Timer | None = None
        self._held: threading.Timer | None = None
        self._authorised_until = 0.0
        self.opened_at: float | None = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # gpiozero's fallback chatter; our error says what failed
                self.relay = OutputDevice(cfg.relay_pin, active_high=cfg.relay_active_high, initial_value=False,
                                          pin_factory=factory)
                self.exit_button = (Button(cfg.exit_button_pin, pull_up=True, pin_factory=factory)
                                    if cfg.exit_button_pin else None)
                self.contact = (Button(cfg.door_contact_pin, pull_up=True, pin_factory=factory)
                                if cfg.door_contact_pin else None)
        except (BadPinFactory, GPIOZeroError) as exc:
            raise ConfigError(f"door GPIO unavailable ({exc}); set door.pin_factory = \"mock\" to simulate it") \
                from exc
        if self.exit_button is not None:
            self.exit_button.when_pressed = lambda: self.unlock(self.cfg.unlock_seconds, reason="egress")
        if self.contact is not None:
            self.contact.when_released = self._opened  # contact opens: the door is open
            self.contact.when_pressed = self._closed

    @property
    def locked(self) -> bool:
        return not self.relay.value

    def unlock(self, seconds: float, reason: str = "grant", subject: str | None = None) -> None:
        """Energise the relay for ``seconds``, then lock again (re-arming extends the pulse).
        ``subject`` is for panel outputs (panel/), which send that subject's card instead."""
        with self._lock:
            if self._relock is not None:
                self._relock.cancel()
            self._authorised_until = time.monotonic() + seconds + GRACE_SECONDS
            self.relay.on()
            self._relock = threading.Timer(seconds, self.lock)
            self._relock.daemon = True
            self._relock.start()
        self.listener("unlocked", {"reason": reason, "seconds": seconds})

    def lock(self) -> None:
        with self._lock:
            if self._relock is not None:
                self._relock.cancel()
                self._relock = None
            was_unlocked = bool(self.relay.value)
            self.relay.off()
        if was_unlocked:
            self.listener("locked", {})

    def _opened(self) -> None:
        self.opened_at = time.monotonic()
        forced = self.opened_at > self._authorised_until
        self.listener("door_forced" if forced else "door_opened", {})
        self._held = threading.Timer(self.cfg.held_open_seconds, self._check_held)
        self._held.daemon = True
        self._held.start()

    def _closed(self) -> None:
        self.opened_at = None
        if self._held is not None:
            self._held.cancel()
        self.listener("door_closed", {})

    def _check_held(self) -> None:
        if self.opened_at is not None:
            self.listener("door_held_open", {"seconds": round(time.monotonic() - self.opened_at, 1)})

    def close(self) -> None:
        """Lock and release the pins; the door is left locked whatever happened."""
        self.lock()
        for timer in (self._held,):
            if timer is not None:
                timer.cancel()
        for device in (self.exit_button, self.contact, self.relay):
            if device is not None:
                device.close()
