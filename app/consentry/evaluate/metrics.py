"""Verification and open-set identification metrics over L2 distances (lower = more alike).

A comparison is a match when ``distance <= threshold``. Failures to acquire (no face or an
unreadable image) are counted as errors by the accuracy figures and reported separately.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EvaluationError


def threshold_for_fmr(impostor: np.ndarray, fmr: float) -> float:
    """Largest threshold, rounded down to 1e-4, whose false-match rate on ``impostor``
    distances is <= ``fmr``. Rounding down keeps the figure safe in float32 and in config."""
    imp = np.sort(np.asarray(impostor, np.float64))
    if imp.size == 0:
        raise EvaluationError("no impostor comparisons")
    allowed = int(math.floor(fmr * imp.size + 1e-9))
    if allowed >= imp.size:
        return math.floor(float(imp[-1]) * 1e4) / 1e4
    return math.floor((float(imp[allowed]) - 1e-6) * 1e4) / 1e4


def rate_at_or_below(values: np.ndarray, threshold: float) -> float:
    values = np.asarray(values)
    return float(np.mean(values <= threshold)) if values.size else 0.0


def rule_of_three(n: int) -> float | None:
    """Smallest error rate that ``n`` trials with no errors can support at 95 % confidence."""
    return 3.0 / n if n else None


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> dict:
    """TAR at the threshold giving FAR <= ``far``; ``supported`` is False when there are too
    few impostor comparisons for that FAR (rule of three)."""
    t = threshold_for_fmr(impostor, far)
    return {"tar": round(rate_at_or_below(genuine, t), 4), "threshold": round(t, 4),
            "supported": len(impostor) * far >= 3.0}


def roc_curve(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) at every distinct distance, ascending threshold."""
    gen, imp = np.sort(genuine), np.sort(impostor)
    thresholds = np.unique(np.concatenate([gen, imp]))
    tar = np.searchsorted(gen, thresholds, side="right") / max(gen.size, 1)
    far = np.searchsorted(imp, thresholds, side="right") / max(imp.size, 1)
    return far, tar, thresholds


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Equal error rate: where the false-match and false-non-match rates cross."""
    far, tar, _ = roc_curve(genuine, impostor)
    frr = 1.0 - tar
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2.0)


def auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Probability that a genuine pair is closer than an impostor pair (ties count half)."""
    imp = np.sort(impostor)
    below = np.searchsorted(imp, genuine, side="left")
    ties = np.searchsorted(imp, genuine, side="right") - below
    greater = imp.size - below - ties
    return float((greater.sum() + 0.5 * ties.sum()) / (max(genuine.size, 1) * max(imp.size, 1)))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold that maximises accuracy on these pairs (a midpoint between distances)."""
    if distances.size == 0:
        raise EvaluationError("no pairs to choose a threshold from")
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order]
    genuine_below = np.concatenate([[0], np.cumsum(s)])  # genuine pairs among the first i
    i = np.arange(d.size + 1)
    correct = genuine_below + (np.count_nonzero(~s) - (i - genuine_below))
    best = int(np.argmax(correct))
    if best == 0:
        return float(d[0] - 1e-6)
    if best == d.size:
        return float(d[-1] + 1e-6)
    return float((d[best - 1] + d[best]) / 2.0)


def accuracy(distances: np.ndarray, same: np.ndarray, valid: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided correctly; invalid (failed to acquire) pairs are errors."""
    correct = valid & ((distances <= threshold) == same)
    return float(correct.sum() / max(same.size, 1))


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, valid: np.ndarray, folds: np.ndarray) -> dict:
    """LFW protocol: for each fold pick the best threshold on the other folds, test on it."""
    scores, thresholds = [], []
    for k in np.unique(folds):
        train = (folds != k) & valid
        test = folds == k
        t = best_threshold(distances[train], same[train])
        thresholds.append(t)
        scores.append(accuracy(distances[test], same[test], valid[test], t))
    return {"mean": round(float(np.mean(scores)), 4), "std": round(float(np.std(scores)), 4),
            "thresholds": [round(t, 4) for t in thresholds]}


def verification_report(distances: np.ndarray, same: np.ndarray, valid: np.ndarray, folds: np.ndarray,
                        threshold: float) -> dict:
    """Every verification figure ``consentry eval`` prints, from per-pair distances."""
    gen, imp = distances[valid & same], distances[valid & ~same]
    if gen.size == 0 or imp.size == 0:
        raise EvaluationError("need at least one genuine and one impostor pair with faces on both sides")
    return {
        "pairs": int(same.size),
        "genuine_pairs": int(same.sum()),
        "impostor_pairs": int((~same).sum()),
        "accuracy_10fold": kfold_accuracy(distances, same, valid, folds),
        "threshold": threshold,
        "accuracy_at_threshold": round(accuracy(distances, same, valid, threshold), 4),
        "tar_at_far": {"1e-2": tar_at_far(gen, imp, 1e-2), "1e-3": tar_at_far(gen, imp, 1e-3)},
        "eer": round(eer(gen, imp), 4),
        "auc": round(auc(gen, imp), 5),
        "failed_pairs": int((~valid).sum()),
    }


def open_set_report(mated: list[tuple[str, str | None, float]], nonmated: np.ndarray) -> dict:
    """Open-set identification.

    mated: per probe of an enrolled identity, (true subject, nearest subject, its distance).
    nonmated: nearest-template distance of every probe of a non-enrolled identity.
    DIR at FPIR f: rank-1 correct and within the threshold that lets a fraction f of
    non-mated probes through.
    """
    correct = np.array([t == n for t, n, _ in mated], bool)
    dist = np.array([d for _, _, d in mated], np.float64)
    out: dict = {"mated_probes": len(mated), "nonmated_probes": int(nonmated.size),
                 "rank1": round(float(correct.mean()), 4) if correct.size else None, "dir_at_fpir": {}}
    for label, fpir in (("1e-2", 1e-2), ("1e-3", 1e-3)):
        t = threshold_for_fmr(nonmated, fpir)
        rate = round(float(np.mean(correct & (dist <= t))), 4) if correct.size else None
        out["dir_at_fpir"][label] = {"dir": rate, "threshold": round(t, 4),
                                     "supported": nonmated.size * fpir >= 3.0}
    return out
