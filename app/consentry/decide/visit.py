"""Visit-level evidence: a track decides on the mean descriptor of its good frames.

One frame is one still photo's worth of evidence; a person walking up to a door gives many.
A track keeps the descriptors of its most recent good frames in an owned, bounded buffer and
asks the gallery about their mean (noise in single frames averages out; measured in
docs/thresholds.md). The buffer is the only place a stranger's descriptors outlive a frame:
it is zeroed the moment the visit is decided (match or unknown for good), when its budget
runs out, and when the track leaves the frame, so a stranger's descriptor exists for at most
``budget_s`` plus one frame.

An ``unknown`` visit is not final while the person is still approaching: the track is
re-opened (a fresh buffer and budget) when its face grows markedly, or when a slow re-check
frame matches on its own. A ``match`` is re-checked the same way; a miss starts a new visit
while the track stays ``match`` (:meth:`Visit.reverify`), and that visit's verdict replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..match import DIM, Decision, Gallery

State = Literal["pending", "match", "unknown"]


@dataclass(frozen=True)
class VisitOptions:
    """threshold: L2 distance of a visit's mean descriptor that can be a match (None: the
    gallery's per-image threshold). min_frames: good frames a visit needs before it can decide.
    frames: the most recent good frames whose mean descriptor is scored (buffer length).
    budget_s: seconds from a visit's first good frame after which, still without a match, it
    is ``unknown`` (settled).
    stall_frames: a visit whose face has not grown by ``grow_stall`` over this many good frames
    (the person stopped approaching) settles early. grow: a settled ``unknown`` track whose face
    width reaches this multiple of its width at settling is re-opened. scoring: ``mean`` (the
    window's mean descriptor, L2 to the subject's centroid) or ``unit`` (the window's unit
    descriptors averaged, on the unit sphere against the subject's unit-normalised centroid;
    at an equal false-grant rate it turns away fewer people, docs/thresholds.md) — the
    threshold belongs to the scoring it was calibrated with."""

    threshold: float | None = None
    scoring: Literal["mean", "unit"] = "mean"
    min_frames: int = 3
    frames: int = 8
    budget_s: float = 3.0
    stall_frames: int = 300
    grow_stall: float = 1.05
    grow: float = 1.25

    def __post_init__(self) -> None:
        if not 1 <= self.min_frames <= self.frames:
            raise ConfigError(f"a visit needs 1 <= min_frames <= frames, got {self.min_frames}, {self.frames}")
        if self.stall_frames < self.min_frames:
            raise ConfigError("stall_frames must be at least min_frames")
        if self.scoring == "unit" and self.threshold is None:
            raise ConfigError("unit visit scoring needs its own threshold (the per-image one is on another scale)")


@dataclass(frozen=True)
class Verdict:
    """state: ``pending`` while the visit collects frames, ``match`` when the mean descriptor of
    its frames is an enrolled subject, ``unknown`` once its budget ran out without one.
    subject / distance: only for ``match`` (distance: L2 of the visit's mean descriptor to the
    subject). frames: good frames behind the current visit (0 once its buffer is zeroed)."""

    state: State
    subject: str | None = None
    distance: float | None = None
    frames: int = 0


PENDING = Verdict("pending")


class Visit:
    """The evidence of one track. Holds descriptors only while undecided; never a score about a
    stranger (the gallery answers ``unknown`` with no figures)."""

    def __init__(self, options: VisitOptions) -> None:
        self.options = options
        self._buf = np.zeros((options.frames, DIM), np.float32)
        self._mean = np.zeros(DIM, np.float32)
        self._count = 0       # good frames added to this visit
        self._started: float | None = None
        self._widths: list[float] = []
        self._settled_width: float | None = None
        self._checking = False  # a matched track re-verifying: it stays ``match`` meanwhile
        self.verdict = PENDING

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The owned descriptor buffers (exposed so tests can prove they are zeroed)."""
        return self._buf, self._mean

    @property
    def open(self) -> bool:
        """Collecting frames: undecided, or a match being re-verified."""
        return self.verdict.state == "pending" or self._checking

    def add(self, vector: np.ndarray, model: str, width: float, now: float, gallery: Gallery) -> Verdict:
        """One good frame's descriptor (face box ``width`` px) into an open visit; the verdict."""
        if self._started is None:
            self._started = now
        slot = self._buf[self._count % self.options.frames]
        slot[:] = vector
        if self.options.scoring == "unit":
            slot *= 1.0 / max(float(np.linalg.norm(slot)), 1e-12)
        self._count += 1
        self._widths.append(width)
        n = min(self._count, self.options.frames)
        if n >= self.options.min_frames:
            np.mean(self._buf[:n], axis=0, out=self._mean)
            decision = gallery.identify(self._mean, model, threshold=self.options.threshold,
                                        unit=self.options.scoring == "unit")
            self._mean.fill(0)  # scratch: recomputed from the buffer on the next frame
            if decision.matched:
                return self._close(Verdict("match", decision.subject, decision.distance, n))
        if now - self._started >= self.options.budget_s or self._stalled():
            return self._close(Verdict("unknown"), width)
        if not self._checking:
            self.verdict = Verdict("pending", frames=n)
        return self.verdict

    def expire(self, now: float) -> Verdict:
        """Close an open visit whose budget ran out even if no good frame came (a face turned
        away keeps its track but adds nothing): its descriptors must not outlive the budget."""
        if self.open and self._started is not None and now - self._started >= self.options.budget_s:
            width = self._widths[-1] if self._widths else None
            return self._close(Verdict("unknown"), width)
        return self.verdict

    def recheck(self, decision: Decision) -> bool:
        """A settled track's slow re-check (one frame, per-image threshold). True when the visit
        should re-open: an ``unknown`` track's face matched on its own, or a ``match`` track's
        face no longer matches its subject (someone else may have stepped into the track)."""
        if self.verdict.state == "match":
            return not (decision.matched and decision.subject == self.verdict.subject)
        return decision.matched

    def grew(self, width: float) -> bool:
        """A settled ``unknown`` face that is now markedly larger (worth a new visit)."""
        return (self.verdict.state == "unknown" and self._settled_width is not None
                and width >= self.options.grow * self._settled_width)

    def reopen(self) -> None:
        self._restart()
        self.verdict = PENDING

    def reverify(self) -> None:
        """A matched track whose re-check missed: collect a new visit while it stays ``match``
        (a turning head keeps its liveness challenge); the new visit's verdict replaces it —
        the same subject, another one, or ``unknown`` when its budget runs out."""
        self._restart()
        self._checking = True

    def _restart(self) -> None:
        self.wipe()
        self._started = None
        self._widths = []
        self._settled_width = None
        self._checking = False

    def wipe(self) -> None:
        self._buf.fill(0)
        self._mean.fill(0)
        self._count = 0

    def _stalled(self) -> bool:
        k = self.options.stall_frames
        w = self._widths
        return len(w) >= k and w[-1] < self.options.grow_stall * min(w[-k:])

    def _close(self, verdict: Verdict, width: float | None = None) -> Verdict:
        self.wipe()
        self._checking = False
        self._settled_width = width
        self.verdict = verdict
        return verdict
