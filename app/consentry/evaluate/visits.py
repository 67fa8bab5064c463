"""`consentry calibrate --visits`: a threshold for a visit's mean descriptor, chosen for a
stated false-grant rate per stranger visit against a gallery of N enrolled subjects.

A visit is decided as the door decides it: after each good frame from the ``min_frames``-th
on, the mean descriptor of the most recent ``frames`` good frames is searched 1:N, and the
visit is a grant as soon as one such window is within the threshold. So a stranger visit is a
false grant when *any* of its windows comes within the threshold of any subject. Visits are
built two ways:

- from labelled still sets: up to ``visit_images`` different images of one identity in a
  random order (independent frames);
- from clips: each run of ``clip_frames`` consecutive frames (a visit budget's worth) of the
  face nearest the centre (correlated frames, as a camera gives them). Clip visits are
  strangers only: nobody in the clips is in the still sets' galleries.

Galleries of N identities (K templates each, scored as the appliance scores them: distance to
the mean of the templates) are drawn from the calibration set in rotation, so that every
identity is a stranger in one split. The threshold is the largest at which the measured
false-grant rate per stranger visit is at most the target; it is only ``supported`` when there
are at least 3 / target stranger visits (rule of three).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EvaluationError
from . import metrics


@dataclass(frozen=True)
class VisitPlan:
    """min_frames / frames: as the door decides (tracking.evidence_k / evidence_n).
    visit_images: most still images in one visit. clip_frames: frames of one clip visit.
    gallery_size: N enrolled subjects. templates: K per subject. per_identity: visits drawn
    from one identity's images (each role). seed: the draws. repeats: rotations with different
    draws, pooled (which look-alikes land in the gallery moves the threshold by ±0.03).
    rule: ``mean`` (the door's: the mean descriptor of a window) or ``votes`` (the rule it
    replaced, for comparison: ``votes`` = (k, n), k of the last n frames' nearest subjects agree
    within the threshold)."""

    min_frames: int = 3
    frames: int = 8
    visit_images: int = 8
    clip_frames: int = 45
    gallery_size: int = 100
    templates: int = 5
    per_identity: int = 40
    seed: int = 0
    repeats: int = 4
    rule: str = "mean"
    votes: tuple[int, int] = (3, 5)


def window_means(sequence: np.ndarray, min_frames: int, frames: int) -> np.ndarray:
    """(W, 128): the mean of the last ``frames`` rows after each row from the ``min_frames``-th."""
    csum = np.concatenate([np.zeros((1, sequence.shape[1])), np.cumsum(sequence, axis=0, dtype=np.float64)])
    ends = np.arange(min_frames, len(sequence) + 1)
    starts = np.maximum(ends - frames, 0)
    return (csum[ends] - csum[starts]) / (ends - starts)[:, None]


def _sequences(rows: np.ndarray, length: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(rows)[:length] for _ in range(count)]


def clip_runs(ok: np.ndarray, length: int) -> list[np.ndarray]:
    """Row indices of the embedded frames of consecutive, non-overlapping runs of ``length``."""
    return [np.flatnonzero(ok[a:a + length]) + a for a in range(0, len(ok) - length + 1, length)]


class _Search:
    """Window means of one visit against one gallery's centroids."""

    def __init__(self, centroids: np.ndarray, plan: VisitPlan) -> None:
        self.c, self.plan = centroids, plan

    def distances(self, sequence: np.ndarray) -> np.ndarray | None:
        if len(sequence) < self.plan.min_frames:
            return None
        m = window_means(sequence, self.plan.min_frames, self.plan.frames)
        return np.linalg.norm(m[:, None, :] - self.c[None, :, :], axis=2)  # (windows, subjects)

    def stranger(self, sequence: np.ndarray) -> float | None:
        """The smallest distance any window of the visit comes to any subject."""
        d = self.distances(sequence)
        return None if d is None else float(d.min())

    def genuine(self, sequence: np.ndarray, owner: int) -> tuple[float, bool] | None:
        """(smallest own distance over windows where the owner is rank 1 or any, rank-1 there)."""
        d = self.distances(sequence)
        if d is None:
            return None
        own = d[:, owner]
        rank1 = d.argmin(axis=1) == owner
        best = int(np.argmin(np.where(rank1, own, np.inf))) if rank1.any() else int(np.argmin(own))
        return float(own[best]), bool(rank1[best])


class _VoteSearch:
    """The k-of-n frame vote, scored as the smallest threshold at which a visit is granted."""

    def __init__(self, centroids: np.ndarray, plan: VisitPlan) -> None:
        self.c, (self.k, self.n) = centroids, plan.votes

    def _scores(self, sequence: np.ndarray) -> dict[int, float] | None:
        if len(sequence) < self.k:
            return None
        d = np.linalg.norm(sequence[:, None, :] - self.c[None, :, :], axis=2)
        best, dist = d.argmin(axis=1), d.min(axis=1)
        out: dict[int, float] = {}
        for end in range(self.k, len(sequence) + 1):
            b, x = best[max(0, end - self.n):end], dist[max(0, end - self.n):end]
            for subject in set(b.tolist()):
                mine = np.sort(x[b == subject])
                if mine.size >= self.k:
                    out[subject] = min(out.get(subject, np.inf), float(mine[self.k - 1]))
        return out

    def stranger(self, sequence: np.ndarray) -> float | None:
        scores = self._scores(sequence)
        return None if scores is None else min(scores.values(), default=np.inf)

    def genuine(self, sequence: np.ndarray, owner: int) -> tuple[float, bool] | None:
        scores = self._scores(sequence)
        return None if scores is None else (scores.get(owner, np.inf), True)


def _split(ids: np.ndarray, vecs: np.ndarray, gallery: list[str], strangers: list[str],
           extra: Sequence[np.ndarray], plan: VisitPlan, rng: np.random.Generator) -> dict:
    centroids, genuine = [], []
    for k, name in enumerate(gallery):
        rows = rng.permutation(np.flatnonzero(ids == name))
        centroids.append(vecs[rows[:plan.templates]].mean(axis=0))
        genuine += [(k, seq) for seq in _sequences(rows[plan.templates:], plan.visit_images, plan.per_identity, rng)]
    search = (_VoteSearch if plan.rule == "votes" else _Search)(np.stack(centroids), plan)
    own = [search.genuine(vecs[seq], k) for k, seq in genuine]
    own = [g for g in own if g is not None]
    still = [search.stranger(vecs[seq]) for name in strangers
             for seq in _sequences(np.flatnonzero(ids == name), plan.visit_images, plan.per_identity, rng)]
    other = [search.stranger(seq) for seq in extra]
    return {"stranger": np.array([x for x in still if x is not None]),
            "extra": np.array([x for x in other if x is not None]),
            "own": np.array([g[0] for g in own]), "rank1": np.array([g[1] for g in own], bool)}


def calibrate_visits(ids: np.ndarray, vecs: np.ndarray, fmr: float, plan: VisitPlan,
                     extra_visits: Sequence[np.ndarray] = ()) -> dict:
    """Threshold for ``fmr`` false grants per stranger visit. ``ids``/``vecs``: the embedded
    calibration set; ``extra_visits``: frame sequences (L, 128) of stranger visits from
    elsewhere (other still sets, clip runs), searched against every split's gallery."""
    counts = {name: int((ids == name).sum()) for name in sorted(set(ids))}
    usable = [n for n, c in counts.items() if c >= plan.templates + plan.min_frames]
    n = plan.gallery_size
    if len(usable) <= n:
        raise EvaluationError(f"{len(usable)} identities have {plan.templates + plan.min_frames}+ images; "
                              f"a gallery of {n} needs more (use --gallery-size)")
    parts = []
    for repeat in range(plan.repeats):
        rng = np.random.default_rng(plan.seed + repeat)
        order = list(rng.permutation(usable))
        block = len(order) - n
        for start in range(0, len(order), block):
            strangers = order[start:start + block]
            gallery = [x for x in order if x not in strangers][:n]
            parts.append(_split(ids, vecs, gallery, strangers, extra_visits, plan, rng))
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    stranger = np.concatenate([joined["stranger"], joined["extra"]])
    threshold = _threshold_for_rate(stranger, fmr)
    granted = (joined["own"] <= threshold) & joined["rank1"]
    wrong = (joined["own"] <= threshold) & ~joined["rank1"]
    min_rate = metrics.rule_of_three(int(stranger.size))
    return {
        "min_frames": plan.min_frames, "frames": plan.frames, "visit_images": plan.visit_images,
        "clip_visit_frames": plan.clip_frames, "gallery_size": n, "templates_per_subject": plan.templates,
        "rule": plan.rule if plan.rule == "mean" else f"votes {plan.votes[0]} of {plan.votes[1]}",
        "scoring": "centroid", "target_false_grant_per_stranger_visit": fmr, "threshold": round(threshold, 4),
        "measured_false_grant_rate": round(float(np.mean(stranger <= threshold)), 6),
        "stranger_visit_searches": int(stranger.size),
        "stranger_visits": {"calibration_set": int(joined["stranger"].size),
                            "other_sets_and_clips": len(extra_visits), "each_searched_in_splits": len(parts)},
        "repeats": plan.repeats,
        "false_grants": {"calibration_set": int((joined["stranger"] <= threshold).sum()),
                         "other_sets_and_clips": int((joined["extra"] <= threshold).sum())},
        "genuine_visits": int(joined["own"].size),
        "fnmr_per_visit": round(float(1.0 - granted.mean()), 4), "wrong_subject_rate": round(float(wrong.mean()), 5),
        "min_supported_rate": min_rate, "supported": min_rate is not None and fmr >= min_rate,
        "date": dt.date.today().isoformat(),
    }
def _threshold_for_rate(best: np.ndarray, rate: float) -> float:
    """Largest threshold (rounded down to 1e-4) with share(best <= t) <= rate."""
    ordered = np.sort(best)
    allowed = int(np.floor(rate * ordered.size))
    if ordered.size == 0:
        raise EvaluationError("no stranger visits to calibrate on")
    limit = ordered[allowed] if allowed < ordered.size else ordered[-1] + 1e-4
    return float(np.floor((limit - 1e-6) * 1e4) / 1e4)


def embed_clips(folder: Path, embed, quiet: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(vectors, ok) per video in ``folder``: each frame's face nearest the centre."""
    from ..camera.sources import VIDEO_SUFFIXES, OpenCVSource
    from .datasets import Progress

    out = []
    videos = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    for path in videos:
        source = OpenCVSource(str(path), finite=True)
        vecs, ok = [], []
        progress = None if quiet else Progress(path.name, source.frame_count)
        try:
            for frame in source.frames():
                v = embed(frame)
                vecs.append(np.zeros(128, np.float32) if v is None else v)
                ok.append(v is not None)
                frame.fill(0)
                if progress:
                    progress.step()
        finally:
            source.close()
        if vecs:
            out.append((np.stack(vecs), np.asarray(ok)))
    return out


def stranger_still_visits(ids: np.ndarray, vecs: np.ndarray, plan: VisitPlan) -> list[np.ndarray]:
    """Frame sequences of up to ``per_identity`` still visits of every identity."""
    rng = np.random.default_rng(plan.seed + 2)
    return [vecs[seq] for name in sorted(set(ids))
            for seq in _sequences(np.flatnonzero(ids == name), plan.visit_images, plan.per_identity, rng)]


def clip_visits(clips: Sequence[tuple[np.ndarray, np.ndarray]], length: int) -> list[np.ndarray]:
    return [vecs[run] for vecs, ok in clips for run in clip_runs(ok, length)]
