"""GPIO: the door's pins can be claimed (nobody else holds them) and, with the relay
disconnected, the relay output follows unlock and lock and ends locked."""

from __future__ import annotations

import warnings

from ..config import DoorConfig
from .checks import Check


def _claim(cfg: DoorConfig, factory):
    from gpiozero import InputDevice, OutputDevice

    relay = OutputDevice(cfg.relay_pin, active_high=cfg.relay_active_high, initial_value=False, pin_factory=factory)
    inputs = [InputDevice(pin, pin_factory=factory) for pin in (cfg.exit_button_pin, cfg.door_contact_pin) if pin]
    return relay, inputs


def gpio_check(cfg: DoorConfig, factory=None, relay_test: bool = False) -> Check:
    from gpiozero.exc import BadPinFactory, GPIOPinInUse, GPIOZeroError

    from ..io.door import pin_factory

    factory = factory if factory is not None else pin_factory(cfg.pin_factory)
    pins = ", ".join(p for p in (cfg.relay_pin, cfg.exit_button_pin, cfg.door_contact_pin) if p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gpiozero's fallback chatter; the check says what failed
            relay, inputs = _claim(cfg, factory)
    except BadPinFactory:
        return Check("gpio", "warn", "no GPIO on this machine: the appliance simulates the door",
                     "on a Pi, install python3-lgpio; set door.pin_factory = \"mock\" to simulate on purpose")
    except GPIOPinInUse as exc:
        return Check("gpio", "fail", f"a door pin is in use: {exc}", "stop consentry.service (it holds the pins) "
                     "and run the doctor again")
    except GPIOZeroError as exc:
        return Check("gpio", "fail", f"cannot claim {pins}: {exc}", "check door.relay_pin and the other pin names")
    try:
        detail = f"{pins} free" + (" (simulated pins)" if cfg.pin_factory == "mock" else "")
        if not relay_test:
            return Check("gpio", "pass", detail + "; relay not toggled (--relay-test, with the relay disconnected)")
        return _relay_test(relay, detail)
    finally:
        for device in (relay, *inputs):
            device.close()


def _relay_test(relay, detail: str) -> Check:
    seen = []
    for unlock in (True, False, True, False):
        relay.value = unlock
        seen.append(bool(relay.value) == unlock and bool(relay.pin.state) == (unlock == relay.active_high))
    relay.off()
    if all(seen) and not relay.value:
        return Check("gpio", "pass", detail + "; relay output followed unlock/lock 4 times and ended locked")
    return Check("gpio", "fail", detail + f"; relay output did not follow ({seen})",
                 "check door.relay_active_high and the relay board's input wiring")
