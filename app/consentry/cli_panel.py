"""Access-control panel commands of the `consentry` CLI: the OSDP Secure Channel key and the
cards of subjects. They parse arguments and call the vault and panel rooms."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable

from .config import Settings
from .errors import CardInUse, ConfigError
from .panel.formats import Card, check_card


def _vault(args: argparse.Namespace, settings: Settings):
    from .vault import open_vault

    return open_vault(settings.vault, args.home)


def card_from_args(number: int, facility: int | None, settings: Settings) -> Card:
    """The credential as the configured format will carry it (``facility`` defaults to
    ``panel.facility``); refused here, at enrolment, rather than at the door."""
    card = Card(settings.panel.facility if facility is None else facility, number)
    check_card(settings.panel.card_format, card, settings.panel.raw_bits)
    return card


def key_fingerprint(key: bytes) -> str:
    """Enough to compare with the panel's configuration; nothing to recover the key from."""
    return hashlib.sha256(b"consentry-scbk\0" + key).hexdigest()[:8]


def cmd_panel_key(args: argparse.Namespace, settings: Settings) -> int:
    from .panel import SCBK_SECRET
    from .panel.osdp_reader import parse_scbk

    with _vault(args, settings) as vault:
        if args.set is not None:
            text = sys.stdin.readline() if args.set == "-" else args.set
            key = parse_scbk(text)
            vault.put_secret(SCBK_SECRET, key)
            print(f"OSDP Secure Channel key stored sealed in the vault (fingerprint {key_fingerprint(key)}); "
                  "restart the service to use it")
            return 0
        if args.clear:
            vault.drop_secret(SCBK_SECRET)
            print("OSDP Secure Channel key removed; the reader will not start without one (or allow_plain)")
            return 0
        if args.install_mode:
            return _install(settings, vault)
        key = vault.secret(SCBK_SECRET)
    print(f"OSDP Secure Channel key: {'set, fingerprint ' + key_fingerprint(key) if key else 'not set'}")
    return 0


def _install(settings: Settings, vault) -> int:
    """Commissioning: the reader answers SCBK-D for ``panel.install_seconds`` and keeps the one
    KEYSET the panel sends (stop the service first: the port is the reader's)."""
    from .panel import SCBK_SECRET
    from .panel.osdp_reader import OsdpReader

    cfg = settings.panel
    if not cfg.port:
        raise ConfigError("set panel.port (the serial device of the RS-485 line) first")
    got: list[bytes] = []

    def keep(key: bytes) -> bool:
        vault.put_secret(SCBK_SECRET, key)
        got.append(key)
        return True

    print(f"INSTALL MODE: for {cfg.install_seconds:.0f} s the reader at OSDP address {cfg.address} on {cfg.port} "
          "accepts the published default key (SCBK-D) and ONE new key from the panel. Anyone on the RS-485 bus "
          "can set the key now: commission on a closed bus, with the panel in its 'install' / 'set key' mode.",
          flush=True)
    reader = OsdpReader(cfg, None, lambda subject: None, on_keyset=keep, install=True).start()
    try:
        end = time.monotonic() + cfg.install_seconds
        while time.monotonic() < end and not got:
            time.sleep(0.2)
    finally:
        reader.close()
    if not got:
        print("install mode ended: no KEYSET came from the panel; the stored key (if any) is unchanged")
        return 1
    print(f"the panel set a new Secure Channel key (fingerprint {key_fingerprint(got[0])}); it is stored sealed "
          "in the vault and install mode is over")
    return 0


def cmd_subjects_card(args: argparse.Namespace, settings: Settings) -> int:
    with _vault(args, settings) as vault:
        if args.remove:
            vault.set_card(args.subject, None)
            print(f"{args.subject}: card removed")
            return 0
        if args.number is None:
            raise ConfigError("give the card NUMBER (or --remove)")
        card = card_from_args(args.number, args.facility, settings)
        try:
            vault.set_card(args.subject, card)
        except CardInUse as exc:
            print(f"consentry: error: {exc}", file=sys.stderr)
            return 2
    print(f"{args.subject}: card set ({settings.panel.card_format}, facility {card.facility})")
    return 0


def add_card_arguments(sp: argparse.ArgumentParser) -> None:
    """`enroll --card NUMBER [--facility F]`."""
    sp.add_argument("--card", type=int, help="the access-control card number sent to the panel on a grant "
                    "(stored encrypted; refused if another subject has it)")
    sp.add_argument("--facility", type=int, help="facility code of that card (default: panel.facility)")


def add_commands(sub: argparse._SubParsersAction, subjects: argparse._SubParsersAction, wrap: Callable) -> None:
    """Register `panel key` and `subjects card`; ``wrap(fn)`` adapts ``fn(args, settings)``."""
    panel = sub.add_parser("panel", help="access-control panel (OSDP / Wiegand)").add_subparsers(
        dest="panel_command", required=True)
    sp = panel.add_parser("key", help="the OSDP Secure Channel key (SCBK), sealed in the vault")
    sp.set_defaults(func=wrap(cmd_panel_key))
    group = sp.add_mutually_exclusive_group()
    group.add_argument("--set", metavar="HEX", help="store this 16-byte key (32 hex digits; `-` reads it from "
                       "standard input, which keeps it out of the shell history)")
    group.add_argument("--install-mode", action="store_true", help="accept one KEYSET from the panel for "
                       "panel.install_seconds (stop the service first)")
    group.add_argument("--clear", action="store_true", help="remove the stored key")
    sp = subjects.add_parser("card", help="set or remove a subject's access-control card")
    sp.set_defaults(func=wrap(cmd_subjects_card))
    sp.add_argument("subject")
    sp.add_argument("number", type=int, nargs="?")
    sp.add_argument("--facility", type=int, help="facility code (default: panel.facility)")
    sp.add_argument("--remove", action="store_true", help="remove the subject's card")
