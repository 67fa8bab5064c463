"""`consentry calibrate --visits V`: a threshold for a visit's mean descriptor, chosen for a
stated false-grant rate per stranger visit against a gallery of N enrolled subjects.

A visit is what the door decides on: the mean descriptor of V good frames of one face. Here
it is built two ways:

- from labelled still sets: V different images of one identity (independent frames);
- from clips: runs of V consecutive frames of the face nearest the centre (correlated frames,
  as a camera gives them). Clip visits are strangers only: nobody in the clips is in the
  still sets' galleries.

Galleries of N identities (K templates each, scored as the appliance scores them: distance to
the mean of the templates) are drawn from the calibration set in rotation, so that every
identity is a stranger in one split; each stranger visit is searched against all N subjects
and counts as a false grant when the nearest is within the threshold. The threshold is the
largest at which the measured false-grant rate is at most the target; it is only
``supported`` when there are at least 3 / target stranger visits (rule of three).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EvaluationError
from . import metrics


@dataclass(frozen=True)
class VisitPlan:
    """visits: frames per visit (V). gallery_size: N enrolled subjects. templates: K per subject.
    per_identity: most visits drawn from one identity's images (each role). seed: the draws."""

    visits: int = 3
    gallery_size: int = 100
    templates: int = 5
    per_identity: int = 40
    seed: int = 0


def _subsets(rows: np.ndarray, v: int, limit: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``limit`` distinct v-subsets of ``rows`` (all of them when there are few)."""
    if len(rows) < v:
        return []
    combos = list(itertools.islice(itertools.combinations(range(len(rows)), v), 20000))
    pick = rng.permutation(len(combos))[:limit]
    return [rows[list(combos[i])] for i in pick]


def clip_runs(vectors: np.ndarray, ok: np.ndarray, v: int) -> list[np.ndarray]:
    """Row indices of runs of ``v`` consecutive embedded frames (stride v // 2, at least 1)."""
    runs, start, stride = [], 0, max(1, v // 2)
    while start + v <= len(ok):
        window = np.arange(start, start + v)
        if ok[window].all():
            runs.append(window)
        start += stride
    return runs


def _best(means: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(means[:, None, :] - centroids[None, :, :], axis=2)
    return d.min(axis=1), d.argmin(axis=1)


def _split_scores(ids: np.ndarray, vecs: np.ndarray, gallery: list[str], strangers: list[str],
                  extra: Sequence[np.ndarray], plan: VisitPlan, rng: np.random.Generator) -> dict:
    centroids, genuine_means, genuine_owner = [], [], []
    for k, name in enumerate(gallery):
        rows = rng.permutation(np.flatnonzero(ids == name))
        centroids.append(vecs[rows[:plan.templates]].mean(axis=0))
        for subset in _subsets(rows[plan.templates:], plan.visits, plan.per_identity, rng):
            genuine_means.append(vecs[subset].mean(axis=0))
            genuine_owner.append(k)
    stranger_means = [vecs[s].mean(axis=0) for name in strangers
                      for s in _subsets(np.flatnonzero(ids == name), plan.visits, plan.per_identity, rng)]
    c = np.stack(centroids)
    s_best, _ = _best(np.stack(stranger_means), c) if stranger_means else (np.zeros(0), None)
    x_best, _ = _best(np.stack(extra), c) if len(extra) else (np.zeros(0), None)
    g = np.stack(genuine_means)
    owner = np.asarray(genuine_owner)
    g_best, g_arg = _best(g, c)
    g_own = np.linalg.norm(g - c[owner], axis=1)
    return {"stranger": s_best, "extra": x_best, "own": g_own, "best": g_best, "rank1": g_arg == owner}


def calibrate_visits(ids: np.ndarray, vecs: np.ndarray, fmr: float, plan: VisitPlan,
                     extra_visits: Sequence[np.ndarray] = ()) -> dict:
    """Threshold for ``fmr`` false grants per stranger visit. ``ids``/``vecs``: the embedded
    calibration set; ``extra_visits``: mean descriptors of stranger visits from elsewhere
    (other still sets, clip runs), searched against every split's gallery."""
    rng = np.random.default_rng(plan.seed)
    counts = {name: int((ids == name).sum()) for name in sorted(set(ids))}
    usable = [n for n, c in counts.items() if c >= plan.templates + plan.visits]
    n = plan.gallery_size
    if len(usable) <= n:
        raise EvaluationError(f"{len(usable)} identities have {plan.templates + plan.visits}+ images; "
                              f"a gallery of {n} needs more (use --gallery-size)")
    order = list(rng.permutation(usable))
    block = len(order) - n
    parts = []
    for start in range(0, len(order), block):
        strangers = order[start:start + block]
        gallery = [x for x in order if x not in strangers][:n]
        parts.append(_split_scores(ids, vecs, gallery, strangers, extra_visits, plan, rng))
    joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    stranger = np.concatenate([joined["stranger"], joined["extra"]])
    threshold = _threshold_for_rate(stranger, fmr)
    grant = (joined["best"] <= threshold) & joined["rank1"]
    wrong = (joined["best"] <= threshold) & ~joined["rank1"]
    min_rate = metrics.rule_of_three(int(stranger.size))
    return {
        "visit_frames": plan.visits, "gallery_size": n, "templates_per_subject": plan.templates,
        "scoring": "centroid", "target_false_grant_per_stranger_visit": fmr, "threshold": round(threshold, 4),
        "measured_false_grant_rate": round(float(np.mean(stranger <= threshold)), 6),
        "stranger_visits": int(stranger.size), "stranger_visits_from_clips_and_other_sets": int(joined["extra"].size),
        "splits": len(parts), "genuine_visits": int(joined["own"].size),
        "fnmr_per_visit": round(float(1.0 - grant.mean()), 4), "wrong_subject_rate": round(float(wrong.mean()), 5),
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
        progress = None if quiet else Progress(path.name, int(source._cap.get(7)))
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
    """Mean descriptors of up to ``per_identity`` V-image visits of every identity."""
    rng = np.random.default_rng(plan.seed + 2)
    return [vecs[s].mean(axis=0) for name in sorted(set(ids))
            for s in _subsets(np.flatnonzero(ids == name), plan.visits, plan.per_identity, rng)]


def clip_visits(clips: Sequence[tuple[np.ndarray, np.ndarray]], v: int) -> list[np.ndarray]:
    return [vecs[run].mean(axis=0) for vecs, ok in clips for run in clip_runs(vecs, ok, v)]
