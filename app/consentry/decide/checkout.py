"""The checkout profile: claim, then verify (1:1).

The point of sale publishes ``{"request_id", "subject"}``; the appliance compares faces in
front of the camera with that subject only, and answers ``verified`` true once
``frames_needed`` frames match, or false at the timeout. Only subjects whose consent
covers ``checkout`` are in the gallery. ``{"request_id", "mode": "identify"}`` searches 1:N,
but only among subjects whose consent record opts in to that. With no request pending no
face is embedded at all. A distance is reported only with a positive answer: a running
"how close was it" for a failed claim would help someone tune a spoof. With liveness on, a
face that matched enough frames must then pass the same liveness check as the door (reason
``liveness_failed`` or ``locked_out`` when it does not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..bus import messages
from ..bus.commands import request_id_of
from ..config import CheckoutConfig
from ..match import Gallery, UnknownSubject
from ..vision.tracking import Observation
from .liveness import LivenessGate

log = logging.getLogger(__name__)


@dataclass
class Pending:
    request_id: str
    subject: str | None  # None: 1:N among opted-in subjects
    started: float
    deadline: float
    hits: dict[str, list[float]] = field(default_factory=dict)


class CheckoutPolicy:
    def __init__(self, cfg: CheckoutConfig, gallery: Gallery, publish: Callable[[str, dict], None], *,
                 identify_gallery: Gallery | None = None, on_verified: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, liveness: LivenessGate | None = None,
                 gate: Callable[[], object] | None = None) -> None:
        """``gate``: asked before answering verified (a site device's replica); a refusal
        answers verified false with its reason (``fleet_stale``, ``fleet_syncing``)."""
        self.gate = gate
        self.cfg = cfg
        self.liveness = liveness
        self.gallery = gallery
        self.identify_gallery = identify_gallery
        self.publish = publish
        self.on_verified = on_verified or (lambda subject: None)
        self.clock = clock
        self.pending: list[Pending] = []

    @property
    def active(self) -> bool:
        return bool(self.pending)

    def request(self, payload: dict) -> None:
        request_id = request_id_of(payload)
        if request_id is None:
            log.warning("ignoring a checkout request without a valid request_id")
            return
        now = self.clock()
        if payload.get("mode") == "identify":
            if self.identify_gallery is None or not self.identify_gallery.subjects:
                self._answer(Pending(request_id, None, now, now), False, None, "no_identify_subjects")
                return
            self.pending.append(Pending(request_id, None, now, now + self.cfg.timeout_seconds))
            return
        subject = payload.get("subject")
        if not isinstance(subject, str) or subject not in self.gallery.subjects:
            self._answer(Pending(request_id, None, now, now), False, None, "not_enrolled_for_checkout")
            return
        self.pending.append(Pending(request_id, subject, now, now + self.cfg.timeout_seconds))

    def handle(self, observations: list[Observation], frame=None) -> None:
        now = self.clock()
        for p in list(self.pending):
            for obs in observations:
                if obs.embedding is None:
                    continue
                if self._vote(p, obs, frame):
                    break
            if p in self.pending and now >= p.deadline:
                self.pending.remove(p)
                self._answer(p, False, None, "timeout")
        if self.liveness is not None:
            self.liveness.keep_only({obs.track_id for obs in observations} if self.pending else set())

    def _vote(self, p: Pending, obs: Observation, frame=None) -> bool:
        emb = obs.embedding
        try:
            if p.subject is None:
                decision = self.identify_gallery.identify(emb.vector, emb.model)
            else:
                decision = self.gallery.verify(emb.vector, emb.model, p.subject)
        except UnknownSubject:
            self.pending.remove(p)
            self._answer(p, False, None, "revoked")
            return True
        if not decision.matched or decision.subject is None:
            return False
        hits = p.hits.setdefault(decision.subject, [])
        hits.append(decision.distance)
        if len(hits) >= self.cfg.frames_needed:
            refused = self.gate() if self.gate is not None else None
            if refused is not None and not refused.granting:
                self.pending.remove(p)
                self._answer(p, False, None, refused.reason)
                return True
            if self.liveness is not None:
                verdict = self.liveness.check(obs.track_id, decision.subject, frame, obs.face.detection.box,
                                              obs.face.landmarks.mesh)
                if verdict.state == "pending":
                    return False
                if verdict.state == "failed":
                    self.pending.remove(p)
                    self._answer(p, False, None, "locked_out" if verdict.reason == "locked_out" else "liveness_failed")
                    return True
            self.pending.remove(p)
            p.subject = decision.subject
            self._answer(p, True, round(sum(hits) / len(hits), 4), "verified")
            self.on_verified(decision.subject)
            return True
        return False

    def _answer(self, p: Pending, verified: bool, distance: float | None, reason: str) -> None:
        latency = (self.clock() - p.started) * 1000.0
        self.publish("checkout/response", messages.checkout_response(
            p.request_id, p.subject, verified, distance if verified else None, reason, latency))
