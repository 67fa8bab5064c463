"""The door profile: grant when a track's evidence names a subject and (unless liveness is
off) the face proves live; report strangers as ``unknown`` (no subject, no figures); one
event per track per verdict; a cooldown per subject so one person at the door pulses the
relay once. Liveness runs only for matched tracks: a stranger is never scored."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet

import numpy as np

from ..bus import messages
from ..config import DoorConfig
from .liveness import LivenessGate
from .recognizer import TrackResult

log = logging.getLogger(__name__)

Publish = Callable[[str, dict], None]


class DoorPolicy:
    def __init__(self, cfg: DoorConfig, door, publish: Publish, *, on_grant: Callable[[str], None] | None = None,
                 on_unknown: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 liveness: LivenessGate | None = None, on_prompt: Callable[[int, str | None], None] | None = None,
                 gate: Callable[[], object] | None = None,
                 adapt: Callable[[int, str, bool, str], object] | None = None) -> None:
        """``gate``: asked before every grant (a site door's replica: ``granting`` and a
        ``reason`` such as ``fleet_stale``); a refusal is a denial with that reason.
        ``adapt``: told (track, subject, granted, liveness) once a matched track is decided
        (decide/adapt.py may learn a door template from a granted, live visit)."""
        self.cfg = cfg
        self.door = door
        self.publish = publish
        self.on_grant = on_grant or (lambda subject: None)
        self.on_unknown = on_unknown or (lambda: None)
        self.clock = clock
        self.liveness = liveness
        self.on_prompt = on_prompt or (lambda track, prompt: None)
        self.gate = gate
        self.adapt = adapt or (lambda track, subject, granted, liveness: None)
        self._prompting: set[int] = set()
        self._reported: dict[int, tuple[str, str | None]] = {}
        self._last_grant: dict[str, float] = {}
        self.grants = 0
        self.denials = 0

    def handle(self, results: list[TrackResult], latency_ms: float, frame: np.ndarray | None = None,
               alive: AbstractSet[int] | None = None) -> None:
        """``alive``: the tracker's live track ids. A track the detector missed in this frame is
        still alive (tracking.max_missed); its report and liveness state are kept until it ends."""
        live = alive if alive is not None else {r.track_id for r in results}
        for r in results:
            if r.state == "pending" or self._reported.get(r.track_id) == (r.state, r.subject):
                continue
            if r.state == "match" and r.subject is not None:
                if not self._matched(r, latency_ms, frame):
                    continue  # liveness still collecting frames: no verdict yet
            else:
                self.publish("event/access", messages.access_event("unknown", None, None, latency_ms, r.track_id))
                self.on_unknown()
            self._reported[r.track_id] = (r.state, r.subject)
        for gone in self._reported.keys() - live:
            del self._reported[gone]
        for gone in self._prompting - live:
            self._prompt(gone, None)
        if self.liveness is not None:
            self.liveness.keep_only(live)

    def _matched(self, r: TrackResult, latency_ms: float, frame: np.ndarray | None) -> bool:
        """Decide a matched track; False while its liveness verdict is pending."""
        now = self.clock()
        last = self._last_grant.get(r.subject)
        if last is not None and now - last < self.cfg.cooldown_seconds:
            log.debug("subject %s within cooldown; no second grant", r.subject)
            return True
        if self.gate is not None:
            verdict = self.gate()
            if not verdict.granting:
                self._deny(r, latency_ms, verdict.reason, "not_checked")
                return True
        if self.liveness is None:
            self._grant(r, latency_ms, "not_checked")
            return True
        verdict = self.liveness.check(r.track_id, r.subject, frame, r.box, r.mesh)
        self._prompt(r.track_id, verdict.prompt)
        if verdict.state == "pending":
            return False
        if verdict.state == "passed":
            self._grant(r, latency_ms, "passed")
        else:
            self._deny(r, latency_ms, verdict.reason, "not_checked" if verdict.reason == "locked_out" else "failed")
        return True

    def _prompt(self, track_id: int, prompt: str | None) -> None:
        """Tell the kiosk what a challenge asks of this track, and when it stops asking."""
        if prompt is not None:
            self._prompting.add(track_id)
        elif track_id not in self._prompting:
            return
        else:
            self._prompting.discard(track_id)
        self.on_prompt(track_id, prompt)

    def _grant(self, r: TrackResult, latency_ms: float, liveness: str) -> None:
        self._last_grant[r.subject] = self.clock()
        self.door.unlock(self.cfg.unlock_seconds, subject=r.subject)  # a panel output sends that subject's card
        self.grants += 1
        self.publish("event/access", messages.access_event("granted", r.subject, r.distance, latency_ms, r.track_id,
                                                           liveness=liveness))
        self.on_grant(r.subject)
        self.adapt(r.track_id, r.subject, True, liveness)

    def _deny(self, r: TrackResult, latency_ms: float, reason: str | None, liveness: str = "failed") -> None:
        self.denials += 1
        self.publish("event/access", messages.access_event("denied", r.subject, None, latency_ms, r.track_id,
                                                           liveness=liveness, reason=reason))
        self.adapt(r.track_id, r.subject, False, liveness)
