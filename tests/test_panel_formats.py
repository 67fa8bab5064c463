"""Card frames: layouts, parity, limits, round trips."""

from __future__ import annotations

import random

import pytest
from consentry.errors import ConfigError
from consentry.panel.formats import Card, decode, encode, unpack


def _bitstring(frame) -> str:
    return "".join(map(str, frame.bits))


def test_h10301_layout_by_hand():
    # facility 1, card 1: one 1 in bits 2-13 (even parity 1), one in bits 14-25 (odd parity 0)
    frame = encode("h10301", Card(1, 1))
    assert _bitstring(frame) == "1" + "00000001" + "0000000000000001" + "0"
    assert frame.packed() == bytes([0x80, 0x80, 0x00, 0x80])
    # facility 0, card 0: parity bits 0 (even over zeros) and 1 (odd over zeros)
    assert _bitstring(encode("h10301", Card(0, 0))) == "0" + "0" * 24 + "1"
    full = encode("h10301", Card(255, 65535))
    assert _bitstring(full) == "0" + "1" * 24 + "1"  # twelve ones each side: even 0, odd 1


def test_h10304_layout_by_hand():
    frame = encode("h10304", Card(0x8001, 0x40001))
    assert frame.length == 37
    body = f"{0x8001:016b}" + f"{0x40001:019b}"
    first, last = body[:18], body[17:]
    assert _bitstring(frame) == str(first.count("1") % 2) + body + str(1 - last.count("1") % 2)
    assert len(frame.packed()) == 5


@pytest.mark.parametrize("fmt,fac_max,card_max", [("h10301", 255, 65535), ("h10304", 65535, 524287)])
def test_round_trip_and_parity_errors(fmt, fac_max, card_max):
    rng = random.Random(7)
    for _ in range(300):
        card = Card(rng.randint(0, fac_max), rng.randint(0, card_max))
        frame = encode(fmt, card)
        assert decode(fmt, unpack(frame.packed(), frame.length)) == card
        flipped = list(frame.bits)
        flipped[rng.randrange(frame.length)] ^= 1
        with pytest.raises(ValueError):  # every single-bit error breaks one of the two parities
            decode(fmt, flipped)


def test_raw_round_trip():
    frame = encode("raw", Card(0, 0xDEADBEEF), raw_bits=32)
    assert frame.packed() == bytes.fromhex("deadbeef")
    assert decode("raw", frame.bits, 32).number == 0xDEADBEEF


@pytest.mark.parametrize("fmt,card,match", [
    ("h10301", Card(256, 1), "facility code must be 0-255"),
    ("h10301", Card(1, 65536), "card number must be 0-65535"),
    ("h10304", Card(1, 524288), "card number must be 0-524287"),
    ("raw", Card(0, 1 << 32), "32 bits"),
    ("h10301", Card(1, -1), "card number"),
])
def test_out_of_range_refused_without_the_number(fmt, card, match):
    with pytest.raises(ConfigError, match=match) as info:
        encode(fmt, card)
    assert str(card.number) not in str(info.value) or card.number in (1, -1)


def test_card_repr_hides_the_number():
    assert "12345" not in repr(Card(7, 12345)) and "12345" not in str(Card(7, 12345))
