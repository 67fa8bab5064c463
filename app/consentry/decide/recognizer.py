"""Frame → per-track verdicts: track, gate, embed, match 1:N, accumulate k-of-n evidence.

Every buffer that held a face (chip, quality patch, embedding slots, distance scratch) is
zeroed before :meth:`Recognizer.step` returns, whatever the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..match import Gallery, policy_from_config
from ..vision.tracking import FaceTracker
from .evidence import Evidence, EvidenceOptions, State


@dataclass(frozen=True)
class TrackResult:
    """One face in one frame after deciding.

    box: (x1, y1, x2, y2) frame pixels, for on-screen feedback only (never published).
    state / subject / distance: the track's verdict (subject and distance only on ``match``).
    reasons: quality gates the face failed this frame (empty when it passed or was not measured:
    a settled track between re-checks is not gated).
    embedded: whether this frame's face was embedded and voted.
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
    def __init__(self, tracker: FaceTracker, gallery: Gallery, evidence: EvidenceOptions | None = None) -> None:
        self.tracker = tracker
        self.gallery = gallery
        self.evidence_options = evidence or EvidenceOptions()
        self._evidence: dict[int, Evidence] = {}

    def close(self) -> None:
        self.tracker.pipeline.close()
        self.gallery.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self, frame: np.ndarray) -> list[TrackResult]:
        try:
            observations = self.tracker.process(frame)
            results = []
            for obs in observations:
                evidence = self._evidence.setdefault(obs.track_id, Evidence(self.evidence_options))
                if obs.embedding is not None:
                    verdict = evidence.add(self.gallery.identify(obs.embedding.vector, obs.embedding.model))
                    self.tracker.settle(obs.track_id, verdict.state != "pending")
                else:
                    verdict = evidence.verdict()
                if verdict.subject is not None and verdict.subject not in self.gallery:
                    # Revoked since these votes were cast: a track's evidence is a cache too,
                    # and a revoked subject must never be granted from it.
                    evidence.forget(verdict.subject)
                    verdict = evidence.verdict()
                    self.tracker.settle(obs.track_id, False)
                reasons = obs.quality.reasons if obs.quality else ()
                mesh = obs.face.landmarks.mesh if verdict.state == "match" else None
                results.append(TrackResult(obs.track_id, obs.face.detection.box, verdict.state,
                                           verdict.subject, verdict.distance, reasons, obs.embedding is not None,
                                           mesh))
            for gone in set(self._evidence) - set(self.tracker.tracks):
                del self._evidence[gone]
            return results
        finally:
            self.tracker.wipe()
            self.gallery.wipe()


def recognizer_from_settings(settings: Settings, gallery: Gallery | None = None) -> Recognizer:
    """A recognizer over a new pipeline; the gallery defaults to an empty one for the embedder."""
    from ..vision.factory import tracker_from_settings

    tracker = tracker_from_settings(settings)
    gallery = gallery or Gallery(tracker.pipeline.embedder.name, policy_from_config(settings.match))
    cfg = settings.tracking
    return Recognizer(tracker, gallery, EvidenceOptions(cfg.evidence_k, cfg.evidence_n))
