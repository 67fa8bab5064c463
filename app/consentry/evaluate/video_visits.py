"""`consentry calibrate --visits`: the visit threshold on visits as video makes them.

A stranger at the door is one track, not one window: the door decides a visit after each good
frame from the ``min_frames``-th on (a window of the last ``frames`` good frames), for the whole
budget (``budget_s`` at the camera's ``fps``: 30 fps gives twice the windows of 15), and then
re-opens it — a fresh budget, more windows — when the settled face grows by ``grow`` or when a
slow re-check frame (every ``recheck_frames`` frames, one frame at the per-image threshold)
matches on its own. :func:`looks` replays exactly that schedule (decide/visit.py,
decide/recognizer.py, vision/tracking.py) over a track's frames, so a stranger's false grant
is *any* window of *any* of its visits within the threshold of *any* subject.

The frames come from generated approach clips (:mod:`.approach`, checked against the shared
real clips by :mod:`.approach_check`), whose consecutive frames make the same errors as real
ones; and from the shared real clips themselves (strangers only). Several ways of using a
visit's evidence (:data:`RULES`) are scored on the same visits and galleries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EvaluationError


@dataclass(frozen=True)
class Schedule:
    """The door's visit schedule. fps: camera frames a second. budget_s: visit budget (s).
    min_frames / frames: tracking.evidence_k / evidence_n. grow: tracking.visit_regrow.
    recheck_frames: tracking.recheck_frames. frame_threshold: match.threshold (the
    single-frame re-check)."""

    fps: float = 15.0
    budget_s: float = 3.0
    min_frames: int = 3
    frames: int = 8
    grow: float = 1.25
    recheck_frames: int = 15
    frame_threshold: float = 0.3978

    @property
    def frames_per_visit(self) -> int:
        """Good frames one visit adds when every frame is good: those before the budget ends."""
        return int(math.ceil(self.budget_s * self.fps - 1e-9))

    @property
    def windows_per_visit(self) -> int:
        return max(0, self.frames_per_visit - self.min_frames + 1)


def weights(sharpness: np.ndarray, turn: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """A frame's quality weight in (0, 1]: sharp, frontal and large faces count more (the
    quality gate's own measurements; blurry below 30, 40 px the smallest embedded face)."""
    sharp = np.clip(sharpness / 150.0, 0.2, 1.0)
    frontal = np.clip(np.cos(np.radians(np.minimum(turn, 80.0))), 0.2, 1.0)
    size = np.clip(widths / 100.0, 0.4, 1.0)
    return sharp * frontal * size


def _window_sums(x: np.ndarray, k: int, n: int) -> np.ndarray:
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0, dtype=np.float64)])
    ends = np.arange(k, len(x) + 1)
    return csum[ends] - csum[np.maximum(ends - n, 0)]


class MeanRule:
    """The door's rule: L2 distance of the mean of the last ``frames`` good frames."""

    name = "mean"

    def prepare(self, centroids: np.ndarray) -> np.ndarray:
        return centroids

    def frame(self, vecs: np.ndarray) -> np.ndarray:
        return vecs

    def visit(self, f: np.ndarray, w: np.ndarray, c: np.ndarray, s: Schedule) -> tuple[np.ndarray, int]:
        """(scores (windows, subjects), smaller is closer; frames the visit used)."""
        if len(f) < s.min_frames:
            return np.zeros((0, len(c))), len(f)
        m = _window_sums(f, s.min_frames, s.frames) / _window_sums(np.ones((len(f), 1)), s.min_frames, s.frames)
        return np.linalg.norm(m[:, None, :] - c[None, :, :], axis=2), len(f)


class WeightedRule(MeanRule):
    """The quality-weighted mean of the last ``frames`` good frames."""

    name = "weighted"

    def visit(self, f, w, c, s):
        if len(f) < s.min_frames:
            return np.zeros((0, len(c))), len(f)
        m = _window_sums(f * w[:, None], s.min_frames, s.frames) / _window_sums(w[:, None], s.min_frames, s.frames)
        return np.linalg.norm(m[:, None, :] - c[None, :, :], axis=2), len(f)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class UnitRule(MeanRule):
    """The unit-normalised centroid: frames and templates on the unit sphere, the window mean
    normalised again (a chord distance, on its own scale)."""

    name = "unit"

    def prepare(self, centroids):
        return centroids  # already the normalised mean of unit templates (see :func:`centroids`)

    def frame(self, vecs):
        return _unit(vecs)

    def visit(self, f, w, c, s):
        if len(f) < s.min_frames:
            return np.zeros((0, len(c))), len(f)
        m = _unit(_window_sums(f, s.min_frames, s.frames))
        return np.linalg.norm(m[:, None, :] - c[None, :, :], axis=2), len(f)


class SequentialRule(MeanRule):
    """A sequential test on per-frame distances: the evidence for a subject after n good frames
    is S_n = sum (reference - d_t); a grant as soon as S_n reaches the calibrated level (the
    score is -S_n), an early ``unknown`` as soon as every subject's S_n is below -reject."""

    name = "sequential"

    def __init__(self, reference: float = 0.403, reject: float = math.inf, unit: bool = True) -> None:
        """``unit``: per-frame chord distances of unit descriptors to the unit-normalised
        centroid (the door's visit scale) instead of L2 to the mean; ``reject`` may be inf (no
        early ``unknown``: the budget ends the visit, so a stranger gets no extra re-opens).
        Defaults (docs/thresholds.md): the textbook SPRT reference, midway between the mean
        per-frame chord distance of genuine frames (0.266) and of impostor frames (0.540) on the
        calibration visits; no early rejection (it changed no FNMR and added re-opens)."""
        self.reference, self.reject, self.unit = reference, reject, unit

    def frame(self, vecs):
        return _unit(vecs) if self.unit else vecs

    def visit(self, f, w, c, s):
        if len(f) < s.min_frames:
            return np.zeros((0, len(c))), len(f)
        d = np.linalg.norm(f[:, None, :] - c[None, :, :], axis=2)
        evidence = np.cumsum(self.reference - d, axis=0)[s.min_frames - 1:]
        out = np.flatnonzero(evidence.max(axis=1) <= -self.reject)
        used = int(out[0]) + 1 if out.size else len(evidence)
        return -evidence[:used], used + s.min_frames - 1


RULES = {"mean": MeanRule, "weighted": WeightedRule, "unit": UnitRule, "sequential": SequentialRule}


@dataclass(frozen=True)
class Looks:
    """What one track gets from the door against one gallery. scores: (windows, subjects)
    over all its visits in time order (smaller is closer); times: (windows,) seconds from the
    track's first good frame; visits: visits opened (1 + re-opens)."""

    scores: np.ndarray
    times: np.ndarray
    visits: int


def looks(vecs: np.ndarray, ok: np.ndarray, widths: np.ndarray, w: np.ndarray, frame_best: np.ndarray,
          centroids: np.ndarray, rule, s: Schedule) -> Looks:
    """Replay the door's schedule over one track (frames at ``s.fps``). ``frame_best``: (L,)
    each frame's distance to its nearest subject in the per-image scoring (the re-check)."""
    fps, n = s.fps, len(ok)
    good = np.flatnonzero(ok)
    scores, times, visits = [], [], 0
    first = good[0] / fps if good.size else 0.0
    i, last_embedded = 0, None
    while i < n:
        # An open visit: its good frames until the budget runs out (or the rule settles it).
        cand = good[good >= i]
        if cand.size == 0:
            break
        start = cand[0] / fps
        cand = cand[cand / fps - start < s.budget_s - 1e-9]
        sc, used = rule.visit(vecs[cand], w[cand], centroids, s)
        visits += 1
        if len(sc):
            scores.append(sc)
            times.append(cand[s.min_frames - 1:s.min_frames - 1 + len(sc)] / fps - first)
        used_idx = cand[:max(used, 1)]
        settled_width = widths[used_idx[-1]]
        if used < len(cand):  # settled early by the rule, on its last frame
            i, last_embedded = int(used_idx[-1]) + 1, int(used_idx[-1])
        else:  # settled by the budget at the first frame past it, whatever that frame shows
            i = int(math.ceil((start + s.budget_s) * fps - 1e-9))
            last_embedded = i - s.recheck_frames  # the track was still open: this frame is embedded
        # Settled: scan for a re-open (growth, or a re-check frame matching on its own).
        reopened = False
        while i < n:
            if widths[i] > 0 and widths[i] >= s.grow * settled_width:
                reopened = True  # re-opened; this frame is embedded only if due for a re-check
                due = ok[i] and i - last_embedded >= s.recheck_frames
                if not due:
                    i += 1
                break
            if ok[i] and (last_embedded is None or i - last_embedded >= s.recheck_frames):
                last_embedded = i
                if frame_best[i] <= s.frame_threshold:
                    reopened = True
                    break
            i += 1
        if not reopened:
            break
    if not scores:
        return Looks(np.zeros((0, len(centroids))), np.zeros(0), visits)
    return Looks(np.concatenate(scores), np.concatenate(times), visits)


@dataclass(frozen=True)
class Visitor:
    """One track at the door: whose (``identity``; None for real clips of nobody enrolled),
    from where (``source``: the set), and its frames (an approach_check.Track)."""

    identity: str | None
    source: str
    track: object


@dataclass(frozen=True)
class Plan:
    """gallery_size: N enrolled subjects. templates: K per subject (scored by their centroid).
    repeats: rotations of the calibration set with different draws, pooled. seed: the draws."""

    gallery_size: int = 100
    templates: int = 5
    repeats: int = 8
    seed: int = 0


def centroids(templates: np.ndarray, rule) -> np.ndarray:
    """A subject's reference for ``rule`` from its (K, 128) templates."""
    if isinstance(rule, UnitRule) or getattr(rule, "unit", False):
        return _unit(_unit(templates).mean(axis=0))
    return templates.mean(axis=0)


def _rotations(names: list[str], plan: Plan) -> list[tuple[list[str], set[str]]]:
    n = plan.gallery_size
    out = []
    for repeat in range(plan.repeats):
        order = list(np.random.default_rng(plan.seed + repeat).permutation(names))
        block = len(order) - n
        for start in range(0, len(order), block):
            strangers = set(order[start:start + block])
            out.append(([x for x in order if x not in strangers][:n], strangers))
    return out


def _first_grant(lk: Looks, owner: int, threshold: float) -> tuple[str, float | None]:
    """('granted' | 'wrong' | 'refused', seconds from the first good frame)."""
    if lk.scores.shape[0] == 0:
        return "refused", None
    hit = np.flatnonzero(lk.scores.min(axis=1) <= threshold)
    if hit.size == 0:
        return "refused", None
    k = int(hit[0])
    return ("granted" if int(lk.scores[k].argmin()) == owner else "wrong"), float(lk.times[k])


def score_visits(references: dict[str, np.ndarray], visitors: list[Visitor], rule, s: Schedule,
                 plan: Plan) -> dict:
    """Every visitor against every rotation's gallery: stranger scores (the closest any window
    of any visit came to any subject) and genuine looks (for FNMR and time at a threshold)."""
    names = sorted(references)
    if len(names) <= plan.gallery_size:
        raise EvaluationError(f"{len(names)} enrolled identities; a gallery of {plan.gallery_size} needs more")
    templates = {k: np.asarray(v) for k, v in references.items()}
    stranger: dict[str, list[float]] = {}
    genuine: list[tuple[Looks, int]] = []
    windows, opened, pairs = [], [], []
    for gallery, strangers in _rotations(names, plan):
        raw = np.stack([templates[g].mean(axis=0) for g in gallery])
        ref = np.stack([centroids(templates[g], rule) for g in gallery])
        index = {g: k for k, g in enumerate(gallery)}
        for v in visitors:
            if v.identity in index or v.identity in strangers or v.identity not in references:
                t = v.track
                if not t.ok.any():
                    continue
                best = np.linalg.norm(t.vecs[:, None, :] - raw[None], axis=2).min(axis=1)
                w = weights(t.sharpness, t.turn, t.widths)
                lk = looks(rule.frame(t.vecs), t.ok, t.widths, w, best, ref, rule, s)
                if v.identity in index:
                    genuine.append((lk, index[v.identity]))
                else:
                    score = float(lk.scores.min()) if lk.scores.size else np.inf
                    stranger.setdefault(v.source, []).append(score)
                    windows.append(lk.scores.shape[0])
                    opened.append(lk.visits)
                    if lk.scores.size:
                        pairs.append(lk.scores.min(axis=0))
    return {"stranger": {k: np.asarray(x) for k, x in stranger.items()}, "genuine": genuine,
            "windows": np.asarray(windows), "opened": np.asarray(opened),
            "pairs": np.concatenate(pairs) if pairs else np.zeros(0), "splits": len(_rotations(names, plan))}


def summarise(scored: dict, fmr: float, rule_name: str, s: Schedule, plan: Plan) -> dict:
    """The threshold for ``fmr`` false grants per stranger visit and what it gives."""
    import datetime as dt

    from . import metrics
    from .visits import _threshold_for_rate

    all_strangers = np.concatenate(list(scored["stranger"].values()))
    threshold = _threshold_for_rate(all_strangers, fmr)
    outcomes = [_first_grant(lk, owner, threshold) for lk, owner in scored["genuine"]]
    granted = [t for o, t in outcomes if o == "granted"]
    wrong = sum(o == "wrong" for o, _ in outcomes)
    min_rate = metrics.rule_of_three(int(all_strangers.size))

    def pct(q: float) -> float | None:
        return round(float(np.percentile(granted, q)), 3) if granted else None

    return {
        "stated_rate": fmr, "gallery_size": plan.gallery_size, "fps": s.fps,
        "windows_per_visit": s.windows_per_visit, "threshold": round(threshold, 4),
        "fnmr_per_visit": round(1.0 - len(granted) / max(len(outcomes), 1), 4),
        "visits": {"genuine": len(outcomes), "stranger": int(all_strangers.size)},
        "rule": rule_name, "templates_per_subject": plan.templates, "min_frames": s.min_frames,
        "frames": s.frames, "budget_s": s.budget_s,
        "measured_false_grant_rate": round(float(np.mean(all_strangers <= threshold)), 6),
        "false_grants": {k: int((v <= threshold).sum()) for k, v in scored["stranger"].items()},
        "stranger_visits_by_source": {k: int(v.size) for k, v in scored["stranger"].items()},
        "looks_per_stranger_track": {"windows_mean": round(float(scored["windows"].mean()), 1),
                                     "windows_max": int(scored["windows"].max()),
                                     "visits_mean": round(float(scored["opened"].mean()), 2),
                                     "visits_max": int(scored["opened"].max())},
        "wrong_subject_rate": round(wrong / max(len(outcomes), 1), 5),
        "time_to_grant_s": {"p50": pct(50), "p90": pct(90)},
        "splits": scored["splits"], "repeats": plan.repeats,
        "min_supported_rate": min_rate, "supported": min_rate is not None and fmr >= min_rate,
        "date": dt.date.today().isoformat(),
    }


def union_bound(scored: dict, fmr: float, gallery_size: int, n_target: int) -> dict:
    """A threshold for ``n_target`` subjects from the per-(visit, subject) scores measured at
    ``gallery_size`` (union bound: a per-visit rate fmr needs fmr / N per subject); supported
    only when that many pairs were measured (rule of three)."""
    from . import metrics
    from .visits import _threshold_for_rate

    pairs = scored["pairs"]
    per_pair = fmr / n_target
    t = _threshold_for_rate(pairs, per_pair)
    outcomes = [_first_grant(lk, owner, t) for lk, owner in scored["genuine"]]
    min_rate = metrics.rule_of_three(int(pairs.size))
    return {"gallery_size": n_target, "threshold": round(t, 4), "per_subject_rate": per_pair,
            "fnmr_per_visit": round(1.0 - sum(o == "granted" for o, _ in outcomes) / max(len(outcomes), 1), 4),
            "visit_subject_pairs": int(pairs.size), "measured_at_gallery_size": gallery_size,
            "supported": min_rate is not None and per_pair >= min_rate}


def gather(pipeline, calibration: Path, strangers: list[Path], clips: Path | None, base, s: Schedule,
           plan: Plan, per_identity: int = 1, identities: int | None = None,
           progress=None) -> tuple[dict[str, np.ndarray], list[Visitor]]:
    """Templates of the calibration set's identities and every visitor's track: generated
    approach visits of every identity of every set (``per_identity`` each, from stills that
    are not its templates) and the real clips (largest face, at ``s.fps``, strangers only)."""
    from dataclasses import replace

    from . import approach_check as ac

    base = replace(base, fps=s.fps)
    references: dict[str, np.ndarray] = {}
    visitors: list[Visitor] = []
    for folder, enrolled in [(calibration, True), *((f, False) for f in strangers)]:
        group = ac.people(folder, plan.templates if enrolled else 0, per_identity,
                          identities if enrolled else None, plan.seed)
        for person in group:
            if enrolled:
                vecs = [v for v in (ac.still_vector(pipeline, p) for p in person.templates) if v is not None]
                if len(vecs) < 1:
                    continue
                references[person.identity] = np.stack(vecs)
            for k in range(len(person.stills)):
                track = ac.visitor_track(pipeline, person, k, base, plan.seed)
                if track is not None:
                    visitors.append(Visitor(person.identity, folder.name, track))
        if progress:
            progress(f"{folder.name}: {len(group)} identities, {len(visitors)} visitors so far")
    if clips is not None:
        from ..camera.sources import VIDEO_SUFFIXES

        for video in sorted(p for p in clips.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
            frames, fps = ac.real_faces(pipeline, video)
            if fps + 0.5 >= s.fps:  # a clip slower than the camera cannot stand for it
                visitors.append(Visitor(None, "clips", ac.at_fps(ac.real_track(frames, fps, None), s.fps)))
    return references, visitors
