"""Signed remote commands (``cmd/revoke``): the checks a command passes before it acts.

A payload from the broker is hostile until proven otherwise: every field is checked for its
type and shape before any arithmetic or comparison touches it (a ``ts`` of ``1e999`` or a
non-ASCII ``hmac`` once ended the process), the timestamp must be fresh, the HMAC must verify,
and the request id must not have been seen within the freshness window — across restarts,
because the ids seen are kept by the vault.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError
from ..secretfile import read_private

log = logging.getLogger(__name__)

COMMAND_MAX_AGE_S = 300
REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
SUBJECT_ID = re.compile(r"s-[0-9a-f]{16}")
HMAC_HEX = re.compile(r"[0-9a-f]{64}")


def request_id_of(payload: dict) -> str | None:
    """The payload's ``request_id`` when it is a string of 1–64 of ``A-Za-z0-9_.:-``, else None
    (``null``, ``true`` or a number is not an id and is never echoed back as one)."""
    value = payload.get("request_id")
    return value if isinstance(value, str) and REQUEST_ID.fullmatch(value) else None


def subject_of(payload: dict) -> str | None:
    """The payload's ``subject`` when it is a pseudonymous id (``s-`` and 16 hex digits), else
    None: a result echoes nothing that failed validation."""
    value = payload.get("subject")
    return value if isinstance(value, str) and SUBJECT_ID.fullmatch(value) else None


class ReplayStore(Protocol):
    def remember_command(self, request_id: str, now: float, max_age: float) -> bool:
        """Record ``request_id``; False when it was already seen within ``max_age`` seconds."""
        ...


@dataclass(frozen=True)
class RevokeCommand:
    """A revoke command that passed every check. ``ts``: Unix seconds."""

    request_id: str
    subject: str
    ts: int


def _timestamp(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if abs(value) > 2**40:  # far beyond any real clock; keeps int() and the sums below cheap
        return None
    return int(value)


def signature(secret: bytes, request_id: str, subject: str, ts: int) -> str:
    """Hex HMAC-SHA256 of ``request_id|subject|ts`` (what the sender computes too)."""
    return hmac.new(secret, f"{request_id}|{subject}|{ts}".encode(), hashlib.sha256).hexdigest()


class CommandGate:
    """``check(payload)`` → ``(command, None)`` or ``(None, error)``; ``error`` is one of the
    strings docs/mqtt.md lists for ``cmd/revoke/result``."""

    def __init__(self, secret_file: Path | None, seen: ReplayStore | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.secret_file = secret_file
        self.seen = seen
        self.clock = clock

    def check(self, payload: dict) -> tuple[RevokeCommand | None, str | None]:
        if self.secret_file is None or self.seen is None:
            return None, "commands are disabled on this device"
        request_id, subject = request_id_of(payload), subject_of(payload)
        if request_id is None:
            return None, "bad request id"
        if subject is None:
            return None, "bad subject"
        ts = _timestamp(payload.get("ts"))
        if ts is None:
            return None, "bad timestamp"
        now = self.clock()
        if abs(now - ts) > COMMAND_MAX_AGE_S:
            return None, "stale command"
        given = payload.get("hmac")
        if not isinstance(given, str) or not HMAC_HEX.fullmatch(given):
            return None, "bad signature"
        try:
            secret = read_private(Path(self.secret_file), "command secret file").strip()
        except ConfigError as exc:
            log.error("%s", exc)
            return None, "commands are disabled on this device"
        if not hmac.compare_digest(signature(secret, request_id, subject, ts), given):
            return None, "bad signature"
        if not self.seen.remember_command(request_id, now, COMMAND_MAX_AGE_S):
            return None, "replayed command"
        return RevokeCommand(request_id, subject, ts), None
