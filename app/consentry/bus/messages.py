"""Every MQTT payload the appliance sends, built here and checked against an allowlist.

docs/mqtt.md documents each topic. Nothing here may carry a name, an image, a vector or
any figure measured on a stranger's face: each message kind has a fixed set of keys, a
``distance`` only ever travels with a named subject, and values must be short scalars.
"""

from __future__ import annotations

import datetime as dt
import uuid

from ..errors import ConsentryError

ALLOWED: dict[str, frozenset[str]] = {
    "event/access": frozenset({"event_id", "ts", "decision", "subject", "distance", "liveness", "reason",
                               "latency_ms", "track"}),
    "event/presentation_attack": frozenset({"event_id", "ts", "subject", "failures", "lockout_seconds"}),
    "event/door": frozenset({"event_id", "ts", "event", "reason", "seconds"}),
    "checkout/response": frozenset({"event_id", "ts", "request_id", "subject", "verified", "distance",
                                    "reason", "latency_ms"}),
    "cmd/revoke/result": frozenset({"event_id", "ts", "request_id", "subject", "ok", "error", "audit_hash"}),
    "status": frozenset({"event_id", "ts", "frames", "fps", "camera", "dropped_events", "queued_events",
                         "profile", "subjects"}),
}
DECISIONS = ("granted", "denied", "unknown")
LIVENESS = ("passed", "failed", "not_checked")


class PayloadRefused(ConsentryError, ValueError):
    """A message would have carried something the bus must never carry."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def envelope(**fields: object) -> dict:
    return {"event_id": uuid.uuid4().hex, "ts": now_iso(), **fields}


def check(topic: str, payload: dict) -> dict:
    """Raise PayloadRefused unless ``payload`` fits ``topic``'s allowlist and carries only
    short scalars; a distance needs a named subject."""
    allowed = ALLOWED.get(topic)
    if allowed is None:
        raise PayloadRefused(f"no payload schema for topic {topic}")
    extra = set(payload) - allowed
    if extra:
        raise PayloadRefused(f"{topic} may not carry {sorted(extra)}")
    for key, value in payload.items():
        short_text = isinstance(value, str) and len(value) <= 80
        if not (value is None or isinstance(value, bool | int | float) or short_text):
            raise PayloadRefused(f"{topic}.{key} must be a short scalar")
    if payload.get("distance") is not None and not payload.get("subject"):
        raise PayloadRefused(f"{topic}: a distance may only travel with a named subject")
    if topic == "event/access" and payload.get("decision") not in DECISIONS:
        raise PayloadRefused(f"event/access decision must be one of {DECISIONS}")
    if topic == "event/access" and payload.get("liveness") not in LIVENESS:
        raise PayloadRefused(f"event/access liveness must be one of {LIVENESS}")
    if topic == "event/access" and not payload.get("subject") and payload.get("liveness") != "not_checked":
        raise PayloadRefused("event/access: liveness is only ever judged for a named subject")
    return payload


def access_event(decision: str, subject: str | None, distance: float | None, latency_ms: float,
                 track: int | None = None, *, liveness: str = "not_checked", reason: str | None = None) -> dict:
    return check("event/access", envelope(decision=decision, subject=subject,
                                          distance=distance if subject else None, liveness=liveness,
                                          reason=reason, latency_ms=round(latency_ms, 1), track=track))


def presentation_attack(subject: str, failures: int, lockout_seconds: float) -> dict:
    return check("event/presentation_attack", envelope(subject=subject, failures=failures,
                                                       lockout_seconds=lockout_seconds))


def door_event(event: str, **detail: object) -> dict:
    return check("event/door", envelope(event=event, **detail))


def checkout_response(request_id: str, subject: str | None, verified: bool, distance: float | None,
                      reason: str, latency_ms: float) -> dict:
    return check("checkout/response", envelope(request_id=request_id, subject=subject, verified=verified,
                                               distance=distance if subject else None, reason=reason,
                                               latency_ms=round(latency_ms, 1)))
