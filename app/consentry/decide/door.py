"""The door profile: grant when a track's k-of-n evidence names a subject; report strangers
as ``unknown`` (no subject, no figures); one event per track per verdict; a cooldown per
subject so one person at the door pulses the relay once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..bus import messages
from ..config import DoorConfig
from .recognizer import TrackResult

log = logging.getLogger(__name__)

Publish = Callable[[str, dict], None]


class DoorPolicy:
    def __init__(self, cfg: DoorConfig, door, publish: Publish, *, on_grant: Callable[[str], None] | None = None,
                 on_unknown: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.door = door
        self.publish = publish
        self.on_grant = on_grant or (lambda subject: None)
        self.on_unknown = on_unknown or (lambda: None)
        self.clock = clock
        self._reported: dict[int, tuple[str, str | None]] = {}
        self._last_grant: dict[str, float] = {}
        self.grants = 0

    def handle(self, results: list[TrackResult], latency_ms: float) -> None:
        live = set()
        for r in results:
            live.add(r.track_id)
            if r.state == "pending" or self._reported.get(r.track_id) == (r.state, r.subject):
                continue
            self._reported[r.track_id] = (r.state, r.subject)
            if r.state == "match" and r.subject is not None:
                self._grant(r, latency_ms)
            else:
                self.publish("event/access", messages.access_event("unknown", None, None, latency_ms, r.track_id))
                self.on_unknown()
        for gone in set(self._reported) - live:
            del self._reported[gone]

    def _grant(self, r: TrackResult, latency_ms: float) -> None:
        now = self.clock()
        last = self._last_grant.get(r.subject)
        if last is not None and now - last < self.cfg.cooldown_seconds:
            log.debug("subject %s within cooldown; no second grant", r.subject)
            return
        self._last_grant[r.subject] = now
        self.door.unlock(self.cfg.unlock_seconds)
        self.grants += 1
        self.publish("event/access", messages.access_event("granted", r.subject, r.distance, latency_ms, r.track_id))
        self.on_grant(r.subject)
