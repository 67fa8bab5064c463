"""k-of-n evidence: a track is a subject only when k of its last n embedded frames agree."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..match import Decision

State = Literal["pending", "match", "unknown"]


@dataclass(frozen=True)
class EvidenceOptions:
    """k matching frames out of the last n embedded frames (door: 3 of 5; a photo: 1 of 1)."""

    k: int = 3
    n: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ConfigError(f"evidence needs 1 <= k <= n, got k={self.k}, n={self.n}")


@dataclass(frozen=True)
class Verdict:
    """state: ``pending`` until k of n agree (``match``) or n frames gave no k (``unknown``).
    subject / distance: only for ``match`` (distance: mean L2 of the agreeing frames)."""

    state: State
    subject: str | None = None
    distance: float | None = None
    votes: int = 0


class Evidence:
    """Votes of one track. A vote is a subject id or None (unknown); never a stranger's score."""

    def __init__(self, options: EvidenceOptions) -> None:
        self.options = options
        self._votes: deque[tuple[str | None, float | None]] = deque(maxlen=options.n)

    def add(self, decision: Decision) -> Verdict:
        if decision.matched:
            self._votes.append((decision.subject, decision.distance))
        else:
            self._votes.append((None, None))
        return self.verdict()

    def forget(self, subject: str) -> None:
        """Drop the votes for ``subject`` (revoked): they become unknown votes."""
        self._votes = deque(((None, None) if s == subject else (s, d) for s, d in self._votes),
                            maxlen=self.options.n)

    def verdict(self) -> Verdict:
        counts: dict[str, list[float]] = {}
        for subject, distance in self._votes:
            if subject is not None and distance is not None:
                counts.setdefault(subject, []).append(distance)
        votes = len(self._votes)
        for subject, distances in counts.items():
            if len(distances) >= self.options.k:
                return Verdict("match", subject, round(sum(distances) / len(distances), 4), votes)
        if votes >= self.options.n:
            return Verdict("unknown", votes=votes)
        return Verdict("pending", votes=votes)
