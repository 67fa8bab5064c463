"""Door templates that learn the door, safely.

Consent-time templates come from a kiosk or from photos; the door sees its own light, angle
and camera. After a grant whose liveness passed, the descriptor the visit was decided on
(its mean) may become a *door template* of that subject (stored by the vault,
vault/door_templates.py), so the next visits are scored nearer to how this door sees them.

What keeps a lookalike from dragging a subject towards himself:

- only a visit well inside the visit threshold (``match.adapt_margin`` below it) is learned;
  a lookalike who scraped in near the threshold teaches nothing;
- the visit must also lie within the visit threshold of the *consent-time* centroid, which
  door templates never move: every door template, so the subject's whole centroid, stays
  within reach of what the person consented with, however many grants a lookalike collects;
- at most ``match.adapt_max`` door templates per subject (the oldest replaced); the
  consent-time ones are never displaced.

Privacy: the descriptor is held only for a track whose visit *matched* an enrolled subject
(the gallery names one); a stranger's visit never reaches :class:`MatchHold`, so its buffer is
zeroed as before (decide/visit.py). The hold is zeroed when the door has decided the track,
and when the track ends. Nothing of this goes on the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from ..config import Settings
from ..errors import ConsentryError
from ..match import DIM, Decision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptOptions:
    """threshold: the visit threshold (L2) grants are made at. margin: how far (L2) inside it a
    visit must be to be learned. keep: door templates per subject at most. consents: the
    consent texts (``id@version``) that tell the person so; nobody else is learned from."""

    threshold: float
    margin: float
    keep: int
    consents: frozenset[str] = frozenset({"consentry-door@2"})
    unit: bool = False  # visit_scoring "unit": both distances on the unit sphere, as the door scores

    @classmethod
    def from_settings(cls, settings: Settings) -> AdaptOptions | None:
        m = settings.match
        if not m.adapt:
            return None
        return cls(m.visit_threshold or m.threshold, m.adapt_margin, m.adapt_max, frozenset(m.adapt_consents),
                   unit=m.visit_scoring == "unit")


@dataclass(frozen=True)
class Learned:
    """What one offer came to: ``stored`` or the reason it was not (``denied``, ``not_live``,
    ``no_visit``, ``not_consented``, ``outside_margin``, ``far_from_consent``,
    ``no_consent_templates``, ``vault``);
    ``kept``: the subject's door templates afterwards (0 when nothing was stored)."""

    outcome: str
    kept: int = 0


def judge(visit_distance: float, consent_distance: float | None, options: AdaptOptions) -> str:
    """``stored`` when a granted live visit may be learned, else the reason it may not."""
    if visit_distance > options.threshold - options.margin:
        return "outside_margin"
    if consent_distance is None:
        return "no_consent_templates"
    if consent_distance > options.threshold:
        return "far_from_consent"
    return "stored"


class _Witness:
    """The gallery as a visit sees it: it answers as the gallery does, and when the answer is a
    match it copies the visit's descriptor into the hold (never for ``unknown``)."""

    def __init__(self, hold: MatchHold, track_id: int, gallery) -> None:
        self._hold, self._track, self._gallery = hold, track_id, gallery

    def identify(self, query: np.ndarray, model: str, threshold: float | None = None,
                 unit: bool = False) -> Decision:
        decision = self._gallery.identify(query, model, threshold=threshold, unit=unit)
        if decision.matched:
            self._hold.keep(self._track, decision, query)
        return decision

    def __getattr__(self, name: str):
        return getattr(self._gallery, name)


class MatchHold:
    """Per track, the descriptor its visit matched on: (128,) float32 in owned rows, zeroed on
    :meth:`take`, :meth:`drop` and :meth:`wipe`."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[str, float, np.ndarray]] = {}

    def witness(self, track_id: int, gallery) -> _Witness:
        return _Witness(self, track_id, gallery)

    def keep(self, track_id: int, decision: Decision, query: np.ndarray) -> None:
        self.drop(track_id)  # a re-verified visit replaces what the track held
        self._held[track_id] = (decision.subject, float(decision.distance),
                                np.array(query, np.float32).reshape(DIM))

    def peek(self, track_id: int) -> tuple[str, float, np.ndarray] | None:
        """What is held for a track, left in place (for evaluations that report it)."""
        return self._held.get(track_id)

    def take(self, track_id: int) -> tuple[str, float, np.ndarray] | None:
        """The held (subject, distance, descriptor); the caller zeroes the descriptor."""
        return self._held.pop(track_id, None)

    def drop(self, track_id: int) -> None:
        held = self._held.pop(track_id, None)
        if held is not None:
            held[2].fill(0)

    def keep_only(self, tracks: AbstractSet[int]) -> None:
        for gone in self._held.keys() - tracks:
            self.drop(gone)

    def wipe(self) -> None:
        for track in list(self._held):
            self.drop(track)

    def __len__(self) -> int:
        return len(self._held)

    def buffers(self) -> list[np.ndarray]:
        """The held descriptors (tests prove they are zeroed)."""
        return [v for _, _, v in self._held.values()]


class DoorAdapter:
    """Called by the door policy once it has decided a matched track (granted or denied)."""

    def __init__(self, options: AdaptOptions, vault, gallery, hold: MatchHold, model: str) -> None:
        self.options = options
        self.vault = vault
        self.gallery = gallery
        self.hold = hold
        self.model = model
        self.outcomes: dict[str, int] = {}

    def __call__(self, track_id: int, subject: str, granted: bool, liveness: str) -> Learned:
        held = self.hold.take(track_id)
        try:
            if not granted or liveness != "passed":
                return self._count(Learned("not_live" if granted else "denied"))
            if held is None or held[0] != subject:
                return self._count(Learned("no_visit"))
            _, distance, vector = held
            try:
                if self.vault.consent_text(subject) not in self.options.consents:
                    return self._count(Learned("not_consented"))
                consent = self.vault.consent_distance(subject, self.model, vector, unit=self.options.unit)
                outcome = judge(distance, consent, self.options)
                if outcome != "stored":
                    return self._count(Learned(outcome))
                kept = self.vault.add_door_template(subject, vector, self.model, self.options.keep)
                self._reload(subject)
            except ConsentryError as exc:  # a revoked or damaged subject: the grant stands, nothing is learned
                log.warning("door template for %s not stored: %s", subject, exc)
                return self._count(Learned("vault"))
            log.info("door template stored for %s (%d kept)", subject, kept)
            return self._count(Learned("stored", kept))
        finally:
            if held is not None:
                held[2].fill(0)

    def _reload(self, subject: str) -> None:
        """The subject's gallery rows: consent-time plus the door templates now kept."""
        consent, door = self.vault.subject_templates(subject, self.model)
        try:
            self.gallery.remove(subject)
            if consent:
                self.gallery.add(subject, consent + door)
        finally:
            for v in consent + door:
                v.fill(0)

    def _count(self, learned: Learned) -> Learned:
        self.outcomes[learned.outcome] = self.outcomes.get(learned.outcome, 0) + 1
        return learned


def door_adapter(app) -> DoorAdapter | None:
    """Wire adaptation into an appliance's door (its settings, vault, gallery and recognizer);
    None when off or there is no vault. With ``adapt`` off, door templates learned earlier
    are destroyed."""
    if app.vault is None:
        return None
    options = AdaptOptions.from_settings(app.settings)
    if options is None:
        dropped = app.vault.drop_door_templates("match.adapt is off")
        if dropped:
            app.out(f"match.adapt is off: destroyed {dropped} door template(s)")
        return None
    hold = MatchHold()
    app.recognizer.hold = hold
    app._closers.append(hold.wipe)  # a track still in view at stop: what it held goes too
    model = app.recognizer.tracker.pipeline.embedder.name
    return DoorAdapter(options, app.vault, app.gallery, hold, model)
