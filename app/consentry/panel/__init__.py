"""Access-control panel outputs: what a grant drives when a panel owns the door (an OSDP reader,
a Wiegand output), behind the relay door's small interface: ``unlock(seconds, reason, subject)``
and ``close()``; a panel output also has ``status()`` for the health page and doctor.
``[panel] kind`` chooses; an unknown kind is a ConfigError, never a fallback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..config import Settings
from ..errors import ConfigError
from .formats import Card

log = logging.getLogger(__name__)

SCBK_SECRET = "panel-scbk"
Out = Callable[[str], None]


def card_lookup(vault) -> Callable[[str], Card | None]:
    """The subject's card from the vault at the moment of a grant (None without a vault)."""
    if vault is None:
        return lambda subject: None
    return vault.card


def open_output(settings: Settings, vault, pin_factory=None, listener=None, out: Out = print, on_feedback=None):
    """The door's output for ``settings.panel.kind``: the relay (falling back to simulated pins
    when there are none, as before), the OSDP reader, or the Wiegand output."""
    kind = settings.panel.kind
    if kind == "relay":
        from ..io.door import Door
        from ..io.door import pin_factory as factory_for

        factory = pin_factory or factory_for(settings.door.pin_factory)
        try:
            return Door(settings.door, factory, listener=listener)
        except ConfigError as exc:
            out(f"{exc}: simulating the door")
            return Door(settings.door, factory_for("mock"), listener=listener)
    if kind == "osdp":
        from .osdp_reader import OsdpReader

        cfg = settings.panel
        scbk = vault.secret(SCBK_SECRET) if vault is not None else None
        if cfg.allow_plain:
            out("WARNING: panel.allow_plain: the OSDP line may run without Secure Channel; card numbers then "
                "cross it in clear and can be replayed by anyone on the bus")

        def keep_key(key: bytes) -> bool:
            if vault is None:
                return False
            vault.put_secret(SCBK_SECRET, key)
            return True

        reader = OsdpReader(cfg, scbk, card_lookup(vault), listener=listener, on_feedback=on_feedback,
                            on_keyset=keep_key).start()
        out(f"panel: OSDP reader at address {cfg.address} on {cfg.port} ({cfg.card_format}, "
            f"{'secure channel required' if not cfg.allow_plain else 'plain allowed'})")
        return reader
    if kind == "wiegand":
        from .wiegand import WiegandOutput, pulse_writer

        writer = pulse_writer(settings.panel, out)
        return WiegandOutput(settings.panel, writer, card_lookup(vault), listener=listener)
    raise ConfigError(f"unknown panel.kind {kind!r}")


def card_field(text: str, settings: Settings, vault) -> Card | None:
    """The staff enrolment page's optional card number (facility: ``panel.facility``): None when
    empty; a ConfigError or CardInUse saying what is wrong (never echoing the number)."""
    from ..errors import CardInUse
    from .formats import check_card

    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 20:
        raise ConfigError("the card number must be digits only")
    card = Card(settings.panel.facility, int(text))
    check_card(settings.panel.card_format, card, settings.panel.raw_bits)
    if vault is not None and vault.card_in_use(card):
        raise CardInUse("that card is already registered to another person")
    return card


def live_check(app) -> list:
    """doctor's panel check from the running appliance's output (the staff page): the port is its own."""
    from .doctor import live_check as check

    return check(getattr(app, "door", None))


def panel_health(app) -> dict:
    """The panel line for the running appliance's health page ({} for the relay)."""
    status = getattr(getattr(app, "door", None), "status", None)
    return {"panel": status()} if callable(status) else {}
