"""Card frames as access-control panels read them: HID H10301 (26-bit), H10304 (37-bit) and raw.

A frame is a bit string sent first bit first: on OSDP packed MSB first into bytes and padded with
zeros at the end (26 bits -> 4 bytes), on Wiegand one pulse per bit (D0 for 0, D1 for 1).

- h10301: bit 1 even parity over bits 2-13, 8-bit facility (bits 2-9), 16-bit card (bits 10-25),
  bit 26 odd parity over bits 14-25.
- h10304: bit 1 even parity over bits 2-19, 16-bit facility (bits 2-17), 19-bit card
  (bits 18-36), bit 37 odd parity over bits 19-36.
- raw: the card number in ``raw_bits`` bits, no facility, no parity.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError, ConsentryError

log = logging.getLogger(__name__)

FORMATS = ("h10301", "h10304", "raw")
# (facility bits, card bits) of the formats with parity
_LAYOUT = {"h10301": (8, 16), "h10304": (16, 19)}


@dataclass(frozen=True)
class Card:
    """A subject's credential: ``facility`` (site code, 0 for raw) and ``number``. Its repr
    hides the number so it never lands in a log by accident."""

    facility: int
    number: int

    def __repr__(self) -> str:
        return "Card(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class Frame:
    """``bits``: the frame as a tuple of 0/1, first bit first; ``length`` == len(bits)."""

    bits: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.bits)

    def packed(self) -> bytes:
        """MSB first, zero padded at the end (OSDP's raw Wiegand card data)."""
        out = bytearray((len(self.bits) + 7) // 8)
        for i, bit in enumerate(self.bits):
            if bit:
                out[i // 8] |= 0x80 >> (i % 8)
        return bytes(out)

    def __repr__(self) -> str:
        return f"Frame({self.length} bits)"


def _bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def check_card(card_format: str, card: Card, raw_bits: int = 32) -> None:
    """Refuse a credential the format cannot carry (ConfigError naming the limit, not the number)."""
    if card_format == "raw":
        if not 0 <= card.number < 1 << raw_bits:
            raise ConfigError(f"a raw card number must fit in {raw_bits} bits (panel.raw_bits)")
        return
    if card_format not in _LAYOUT:
        raise ConfigError(f"unknown card format {card_format!r}; expected one of {', '.join(FORMATS)}")
    fac_bits, card_bits = _LAYOUT[card_format]
    if not 0 <= card.facility < 1 << fac_bits:
        raise ConfigError(f"{card_format}: the facility code must be 0-{(1 << fac_bits) - 1}")
    if not 0 <= card.number < 1 << card_bits:
        raise ConfigError(f"{card_format}: the card number must be 0-{(1 << card_bits) - 1}")


def encode(card_format: str, card: Card, raw_bits: int = 32) -> Frame:
    check_card(card_format, card, raw_bits)
    if card_format == "raw":
        return Frame(tuple(_bits(card.number, raw_bits)))
    fac_bits, card_bits = _LAYOUT[card_format]
    body = _bits(card.facility, fac_bits) + _bits(card.number, card_bits)
    half = (len(body) + 1) // 2  # 26-bit: 12 and 12; 37-bit: 18 over bits 2-19 and 18 over bits 19-36
    first, last = body[:half], body[-half:]
    even = sum(first) % 2
    odd = 1 - sum(last) % 2
    return Frame(tuple([even, *body, odd]))


def decode(card_format: str, bits: tuple[int, ...] | list[int], raw_bits: int = 32) -> Card:
    """The inverse of :func:`encode`; a wrong length or parity is a ValueError (what a panel does
    with such a read: it ignores it)."""
    bits = tuple(int(b) for b in bits)
    if card_format == "raw":
        if len(bits) != raw_bits:
            raise ValueError(f"raw frame of {len(bits)} bits, expected {raw_bits}")
        return Card(0, int("".join(map(str, bits)), 2))
    fac_bits, card_bits = _LAYOUT[card_format]
    if len(bits) != fac_bits + card_bits + 2:
        raise ValueError(f"{card_format} frame of {len(bits)} bits, expected {fac_bits + card_bits + 2}")
    body = bits[1:-1]
    half = (len(body) + 1) // 2
    if (bits[0] + sum(body[:half])) % 2 != 0:
        raise ValueError("leading (even) parity bit is wrong")
    if (bits[-1] + sum(body[-half:])) % 2 != 1:
        raise ValueError("trailing (odd) parity bit is wrong")
    facility = int("".join(map(str, body[:fac_bits])), 2)
    number = int("".join(map(str, body[fac_bits:])), 2)
    return Card(facility, number)


def unpack(data: bytes, length: int) -> tuple[int, ...]:
    """OSDP card data (MSB first, padded) back to ``length`` bits."""
    if length > len(data) * 8:
        raise ValueError(f"{length} bits do not fit in {len(data)} bytes")
    return tuple((data[i // 8] >> (7 - i % 8)) & 1 for i in range(length))


def grant_frame(cfg, card_for: Callable[[str], Card | None], subject: str | None, reason: str,
                listener: Callable[[str, dict], None]) -> Frame | None:
    """The frame a panel output sends for a grant: ``subject``'s card in ``cfg.card_format``.
    None for anything but a grant, or when the card is missing or unusable (said in the log and
    to ``listener``, never with the number)."""
    if reason != "grant" or subject is None:
        return None
    try:
        card = card_for(subject)
    except ConsentryError as exc:
        log.error("grant for %s: its card cannot be used (%s); nothing sent", subject, exc)
        listener("credential_unusable", {})
        return None
    if card is None:
        log.warning("grant for %s: no card registered (`consentry subjects card`); nothing sent", subject)
        listener("credential_missing", {})
        return None
    return encode(cfg.card_format, card, cfg.raw_bits)
