"""Open-set matching: a gallery of enrolled templates, 1:N search and 1:1 verification.

The answer is ``match`` only when the best subject's distance passes the threshold *and*
beats the second-best subject by a margin; everything else is ``unknown``. There is no
"closest match" for a stranger, and no figure about a stranger leaves this module: the
scratch buffer holding the distances is owned here and zeroed before a search returns.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .config import MatchConfig
from .errors import ConfigError, ConsentryError

log = logging.getLogger(__name__)

DIM = 128


class UnknownSubject(ConsentryError, KeyError):
    """A 1:1 claim named a subject that has no template in the gallery."""


Scoring = Literal["centroid", "nearest"]


@dataclass(frozen=True)
class MatchPolicy:
    """threshold: largest L2 distance (dlib metric) that can be a match.
    margin: how much closer (L2) the best subject must be than the second-best subject.
    scoring: how a subject's templates are scored: ``centroid`` (distance to the mean of the
    subject's templates; measured best on the shared still sets, docs/thresholds.md) or
    ``nearest`` (the minimum over the templates)."""

    threshold: float = 0.6
    margin: float = 0.0
    scoring: Scoring = "centroid"

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 2.0 or not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"bad match policy: threshold {self.threshold}, margin {self.margin}")
        if self.scoring not in ("centroid", "nearest"):
            raise ConfigError(f"bad match scoring {self.scoring!r}: centroid or nearest")


@dataclass(frozen=True)
class Decision:
    """The answer for one face.

    decision: ``match`` or ``unknown``.
    subject: the pseudonymous id matched (1:N) or claimed (1:1); None for an unknown 1:N face.
    distance: L2 distance to ``subject``'s templates (as the policy scores them); None whenever ``subject`` is None,
    so nothing measured on a stranger is ever reported.
    """

    decision: Literal["match", "unknown"]
    subject: str | None = None
    distance: float | None = None

    @property
    def matched(self) -> bool:
        return self.decision == "match"


UNKNOWN = Decision("unknown")


def _locked(method):
    """Run under the gallery's lock: the web page revokes (and so removes rows) on its own
    thread while the loop searches."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


def policy_from_config(cfg: MatchConfig) -> MatchPolicy:
    return MatchPolicy(threshold=cfg.threshold, margin=cfg.margin, scoring=cfg.scoring)


class Gallery:
    """Enrolled templates as one contiguous (N, 128) float32 matrix, rows grouped by subject.

    A gallery holds templates of one embedder model only. It lives in memory while the
    appliance runs; :meth:`remove` and :meth:`close` zero the rows they drop.

    transform: the deployment's secret (128, 128) orthogonal matrix the stored templates were
    multiplied by; queries are multiplied by it too (distances are unchanged).
    still_enrolled: asked before any match is reported, so a subject revoked elsewhere never
    matches from a stale gallery.
    """

    def __init__(self, model: str, policy: MatchPolicy | None = None, *, transform: np.ndarray | None = None,
                 still_enrolled: Callable[[str], bool] | None = None) -> None:
        self.model = model
        self.policy = policy or MatchPolicy()
        self.transform = None if transform is None else np.ascontiguousarray(transform, np.float32)
        self.still_enrolled = still_enrolled
        self._transformed = np.zeros(DIM, np.float32)
        self._lock = threading.RLock()
        self._matrix = np.zeros((0, DIM), np.float32)
        self._sq_norms = np.zeros(0, np.float32)
        self._subjects: list[str] = []       # one per subject, in row-group order
        self._subject_set: frozenset[str] = frozenset()
        self._starts = np.zeros(0, np.intp)  # first row of each subject
        self._centroids = np.zeros((0, DIM), np.float32)
        self._c_norms = np.zeros(0, np.float32)
        self._unit_centroids = np.zeros((0, DIM), np.float32)
        self._scratch = np.zeros(0, np.float32)
        self._per_subject = np.zeros(0, np.float32)
        self._query = np.zeros(DIM, np.float32)

    # -- contents -------------------------------------------------------------------------
    @property
    def subjects(self) -> tuple[str, ...]:
        return tuple(self._subjects)

    def __contains__(self, subject: object) -> bool:
        return subject in self._subject_set

    def __len__(self) -> int:
        return int(self._matrix.shape[0])

    def scratch_buffers(self) -> tuple[np.ndarray, ...]:
        """The distance buffers a search writes (exposed so tests can prove they are zeroed)."""
        return self._scratch, self._per_subject, self._query, self._transformed

    @_locked
    def replace(self, templates: Iterable[tuple[str, np.ndarray]]) -> None:
        """Load ``(subject_id, vector)`` pairs, replacing everything held before."""
        groups: dict[str, list[np.ndarray]] = {}
        for subject, vector in templates:
            vec = np.array(vector, np.float32).reshape(-1)
            if vec.shape != (DIM,) or not np.all(np.isfinite(vec)):
                raise ValueError(f"template for {subject} is not a finite {DIM}-D vector")
            groups.setdefault(subject, []).append(vec)
        self._rebuild(groups)

    @_locked
    def add(self, subject: str, vectors: Iterable[np.ndarray]) -> None:
        groups = self._groups()
        groups.setdefault(subject, []).extend(np.array(v, np.float32).reshape(DIM) for v in vectors)
        self._rebuild(groups)

    @_locked
    def remove(self, subject: str) -> bool:
        """Drop a subject's templates; True when it was present."""
        if subject not in self._subjects:
            return False
        groups = self._groups()
        found = groups.pop(subject, None) is not None
        if found:
            self._rebuild(groups)
        return found

    @_locked
    def close(self) -> None:
        self._rebuild({})

    @_locked
    def retransform(self, transform: np.ndarray) -> None:
        """The deployment's transform was renewed (a site removed a door): every held template
        moves by new @ old.T, as the vault's stored ones do, and queries use the new one."""
        new = np.ascontiguousarray(transform, np.float32)
        change = new if self.transform is None else new @ self.transform.T
        groups = self._groups()
        moved = {s: [change @ v for v in vecs] for s, vecs in groups.items()}
        for vecs in groups.values():
            for v in vecs:
                v.fill(0)
        self._rebuild(moved)
        self.transform = new

    def _groups(self) -> dict[str, list[np.ndarray]]:
        if not self._subjects:
            return {}
        ends = list(self._starts[1:]) + [len(self)]
        return {s: [r.copy() for r in self._matrix[a:b]]
                for s, a, b in zip(self._subjects, self._starts, ends, strict=True)}

    def _rebuild(self, groups: dict[str, list[np.ndarray]]) -> None:
        self.wipe()  # the scratch buffers are replaced below; never drop one holding distances
        old = self._matrix
        rows = [v for vecs in groups.values() for v in vecs]
        self._matrix = np.ascontiguousarray(np.stack(rows) if rows else np.zeros((0, DIM)), np.float32)
        self._sq_norms = np.einsum("ij,ij->i", self._matrix, self._matrix)
        self._subjects = list(groups)
        self._subject_set = frozenset(groups)
        self._starts = np.cumsum([0] + [len(v) for v in groups.values()])[:-1].astype(np.intp)
        old_centroids = self._centroids
        self._centroids = np.zeros((len(groups), DIM), np.float32)
        for k, vecs in enumerate(groups.values()):
            np.mean(np.stack(vecs), axis=0, out=self._centroids[k])
        self._c_norms = np.einsum("ij,ij->i", self._centroids, self._centroids)
        old_units = self._unit_centroids
        self._unit_centroids = np.zeros((len(groups), DIM), np.float32)
        step = np.zeros(DIM, np.float32)
        for k, vecs in enumerate(groups.values()):
            row = self._unit_centroids[k]
            for v in vecs:
                row += np.multiply(v, 1.0 / max(float(np.linalg.norm(v)), 1e-12), out=step)
            row *= 1.0 / max(float(np.linalg.norm(row)), 1e-12)
        step.fill(0)
        old_units.fill(0)
        self._scratch = np.zeros(len(rows), np.float32)
        self._per_subject = np.zeros(len(groups), np.float32)
        old_centroids.fill(0)
        old.fill(0)  # the replaced matrix may be a removed subject's only copy in memory
        for vecs in groups.values():
            for v in vecs:
                v.fill(0)

    # -- questions ------------------------------------------------------------------------
    def _partial(self, query: np.ndarray, rows: slice) -> np.ndarray:
        """|g|² - 2 g·q for ``rows``, in the owned scratch buffer; adding |q|² gives the
        squared L2 distance. One pass over the matrix: the product with -2q, then the norms."""
        out = self._scratch[rows]
        np.multiply(query, -2.0, out=self._query)
        np.matmul(self._matrix[rows], self._query, out=out)
        out += self._sq_norms[rows]
        return out

    def _per_subject_partial(self, query: np.ndarray) -> np.ndarray:
        """|g|² - 2 g·q per subject under the policy's scoring, in owned scratch."""
        if self.policy.scoring == "centroid":
            out = self._per_subject
            np.multiply(query, -2.0, out=self._query)
            np.matmul(self._centroids, self._query, out=out)
            out += self._c_norms
            return out
        partial = self._partial(query, slice(None))
        if len(self._subjects) == len(self):
            return partial
        np.minimum.reduceat(partial, self._starts, out=self._per_subject)
        return self._per_subject

    def _per_subject_unit(self, query: np.ndarray) -> np.ndarray:
        """Squared chord distances 2 - 2 cos(q, u) to the unit centroids, in owned scratch (an
        orthogonal deployment transform leaves them unchanged)."""
        out = self._per_subject
        norm = float(np.linalg.norm(query))
        np.matmul(self._unit_centroids, query, out=out)
        out *= -2.0 / max(norm, 1e-12)
        out += 2.0
        return out

    def _check(self, query: np.ndarray, model: str) -> np.ndarray:
        if model != self.model:
            raise ConfigError(f"embedding from {model} cannot be compared with {self.model} templates")
        q = np.asarray(query, np.float32).reshape(-1)
        if q.shape != (DIM,):
            raise ValueError(f"query must be a {DIM}-D vector, got {q.shape}")
        if self.transform is not None:
            np.matmul(self.transform, q, out=self._transformed)
            return self._transformed
        return q

    @_locked
    def identify(self, query: np.ndarray, model: str, threshold: float | None = None,
                 unit: bool = False) -> Decision:
        """1:N: the enrolled subject this face is, or ``unknown``. ``threshold`` replaces the
        policy's (a visit's mean descriptor has its own, calibrated per visit). ``unit``: the
        query on the unit sphere against each subject's unit-normalised centroid (the mean of
        its unit templates, normalised): a chord distance, on its own scale (the door's visit
        rule ``match.visit_scoring = "unit"``; docs/thresholds.md)."""
        q = self._check(query, model)
        if not self._subjects:
            return UNKNOWN
        try:
            if unit:
                per, qq = self._per_subject_unit(q), 0.0
            else:
                per = self._per_subject_partial(q)
                qq = float(q @ q)
            first = int(np.argmin(per))
            best = math.sqrt(max(float(per[first]) + qq, 0.0))
            second = None
            if per.size > 1:
                per[first] = np.inf  # scratch: the runner-up is the minimum of the rest
                second = math.sqrt(max(float(per.min()) + qq, 0.0))
            return self._decide(self._subjects[first], best, second, named=False, threshold=threshold)
        finally:
            self.wipe()

    @_locked
    def verify(self, query: np.ndarray, model: str, subject: str) -> Decision:
        """1:1: is this face the claimed subject? The distance is reported for the claim."""
        if subject not in self._subjects or not self._enrolled(subject):
            raise UnknownSubject(f"subject {subject} has no templates in the gallery")
        idx = self._subjects.index(subject)
        q = self._check(query, model)
        try:
            if self.policy.scoring == "centroid":
                c = self._centroids[idx]
                best = math.sqrt(max(float(self._c_norms[idx] - 2.0 * (c @ q) + q @ q), 0.0))
            else:
                end = self._starts[idx + 1] if idx + 1 < len(self._starts) else len(self)
                partial = self._partial(q, slice(int(self._starts[idx]), int(end)))
                best = math.sqrt(max(float(partial.min()) + float(q @ q), 0.0))
            return self._decide(subject, best, None, named=True)
        finally:
            self.wipe()

    def _enrolled(self, subject: str) -> bool:
        if self.still_enrolled is None or self.still_enrolled(subject):
            return True
        log.info("subject %s was revoked elsewhere; dropping it from the gallery", subject)
        self.remove(subject)
        return False

    def _decide(self, subject: str, best: float, second: float | None, *, named: bool,
                threshold: float | None = None) -> Decision:
        policy = self.policy
        limit = policy.threshold if threshold is None else threshold
        if best <= limit and (second is None or second - best >= policy.margin):
            if not named and not self._enrolled(subject):
                return UNKNOWN
            return Decision("match", subject, round(best, 4))
        if named:
            return Decision("unknown", subject, round(best, 4))
        return UNKNOWN

    @_locked
    def wipe(self) -> None:
        self._transformed.fill(0)
        self._query.fill(0)
        self._scratch.fill(0)
        self._per_subject.fill(0)


@dataclass(frozen=True, eq=False)
class LoadedGallery:
    """A gallery from the vault, plus the templates that failed authentication and the
    subjects that have only other embedders' templates (they need re-enrolment)."""

    gallery: Gallery
    damaged: list[str]
    other_models: list[str]


def gallery_from_vault(vault, model: str, policy: MatchPolicy, purpose: str | None = None,
                       opted_in_only: bool = False) -> LoadedGallery:
    """Load ``model``'s templates; the gallery drops revoked subjects at once (in this process
    via the vault's revoke callback, from any other process via ``still_enrolled``)."""
    templates = vault.load_templates(model, purpose, opted_in_only)
    gallery = Gallery(model, policy, transform=vault.transform, still_enrolled=vault.exists)
    try:
        gallery.replace(templates.templates)
    finally:
        templates.wipe()
    vault.on_revoke(gallery.remove)
    if templates.damaged:
        log.error("integrity error: %d template(s) fail authentication (tampered, or moved to another subject's "
                  "row) and were left out of the gallery; run `consentry doctor`", len(templates.damaged))
    return LoadedGallery(gallery, templates.damaged, templates.other_models)
