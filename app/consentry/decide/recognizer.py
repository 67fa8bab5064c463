"""Frame → per-track verdicts: track, gate, embed, and decide each track on its visit.

Every buffer that held a face (chip, quality patch, embedding slots, distance scratch) is
zeroed before :meth:`Recognizer.step` returns, whatever the verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..match import Gallery, policy_from_config
from ..vision.tracking import FaceTracker, Observation
from .visit import State, Visit, VisitOptions


@dataclass(frozen=True)
class TrackResult:
    """One face in one frame after deciding.

    box: (x1, y1, x2, y2) frame pixels, for on-screen feedback only (never published).
    state / subject / distance: the track's verdict (subject and distance only on ``match``).
    reasons: quality gates the face failed this frame (empty when it passed or was not measured:
    a settled track between re-checks is not gated).
    embedded: whether this frame's face was embedded (and added to its visit or re-checked).
    mesh: (468, 3) frame-pixel mesh points, only on a ``match`` (for the liveness cues); None
    for every other face, so nothing about a stranger's face leaves the recognizer.
    """

    track_id: int
    box: tuple[float, float, float, float]
    state: State
    subject: str | None
    distance: float | None
    reasons: tuple[str, ...]
    embedded: bool
    mesh: np.ndarray | None = None


class Recognizer:
    """Tracks → visits → verdicts. ``clock`` (seconds) times the visit budget; :meth:`step`
    takes an explicit ``now`` for replays that run on the video's own time."""

    def __init__(self, tracker: FaceTracker, gallery: Gallery, visit: VisitOptions | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tracker = tracker
        self.gallery = gallery
        self.visit_options = visit or VisitOptions()
        self.clock = clock
        self._visits: dict[int, Visit] = {}
        self.hold = None  # decide/adapt.py's MatchHold on a door that learns: what a matched visit decided on

    def close(self) -> None:
        self.wipe_visits()
        self.tracker.close()
        self.gallery.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def visits(self) -> dict[int, Visit]:
        """Live visits by track id (tests read their buffers)."""
        return dict(self._visits)

    def wipe_visits(self) -> None:
        for visit in self._visits.values():
            visit.wipe()
        self._visits.clear()
        if self.hold is not None:
            self.hold.wipe()

    def step(self, frame: np.ndarray, now: float | None = None) -> list[TrackResult]:
        now = self.clock() if now is None else now
        try:
            for visit in self._visits.values():
                visit.expire(now)  # every open visit, seen this frame or not: the budget is a hard bound
            results = [self._decide(obs, now) for obs in self.tracker.process(frame)]
            for gone in self._visits.keys() - self.tracker.tracks.keys():
                self._visits.pop(gone).wipe()  # the track left: its descriptors go with it
            if self.hold is not None:
                self.hold.keep_only(self.tracker.tracks.keys())
            return results
        finally:
            self.tracker.wipe()
            self.gallery.wipe()

    def _decide(self, obs: Observation, now: float) -> TrackResult:
        visit = self._visits.setdefault(obs.track_id, Visit(self.visit_options))
        box = obs.face.detection.box
        width = float(box[2] - box[0])
        if visit.grew(width):
            visit.reopen()
        if obs.embedding is not None:
            vector, model = obs.embedding.vector, obs.embedding.model
            if not visit.open and visit.recheck(self.gallery.identify(vector, model)):
                if visit.verdict.state == "match":
                    visit.reverify()
                else:
                    visit.reopen()
            gallery = self.gallery if self.hold is None else self.hold.witness(obs.track_id, self.gallery)
            verdict = visit.add(vector, model, width, now, gallery) if visit.open else visit.verdict
        else:
            verdict = visit.verdict
        if verdict.subject is not None and verdict.subject not in self.gallery:
            # Revoked since the visit decided: a track's verdict is a cache too, and a revoked
            # subject must never be granted from it.
            visit.reopen()
            verdict = visit.verdict
        if self.hold is not None and verdict.state != "match":
            self.hold.drop(obs.track_id)
        self.tracker.settle(obs.track_id, not visit.open)
        reasons = obs.quality.reasons if obs.quality else ()
        mesh = obs.face.landmarks.mesh if verdict.state == "match" else None
        return TrackResult(obs.track_id, box, verdict.state, verdict.subject, verdict.distance, reasons,
                           obs.embedding is not None, mesh)


def visit_options(settings: Settings) -> VisitOptions:
    cfg = settings.tracking
    return VisitOptions(threshold=settings.match.visit_threshold, scoring=settings.match.visit_scoring,
                        min_frames=cfg.evidence_k, frames=cfg.evidence_n,
                        budget_s=cfg.visit_seconds, stall_frames=max(cfg.visit_stall_frames, cfg.evidence_k),
                        grow=cfg.visit_regrow)


def recognizer_from_settings(settings: Settings, gallery: Gallery | None = None) -> Recognizer:
    """A recognizer over a new pipeline; the gallery defaults to an empty one for the embedder."""
    from ..vision.factory import tracker_from_settings

    tracker = tracker_from_settings(settings)
    gallery = gallery or Gallery(tracker.pipeline.embedder.name, policy_from_config(settings.match))
    return Recognizer(tracker, gallery, visit_options(settings))
