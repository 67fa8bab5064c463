"""Presentation-attack detection measured in ISO/IEC 30107-3 terms.

APCER (per species, and the worst): share of attacks accepted as live at the threshold.
BPCER: share of bona fide presentations refused. BPCER20 / BPCER100: BPCER at the threshold
where the worst species' APCER is at most 5 % / 1 %. A face the detector cannot find counts as
a failure to acquire and is left out of the rates (reported separately, as the standard asks).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import EvaluationError
from ..vision.image_io import read_image as read_rgb
from ..vision.pipeline import FacePipeline, largest_face
from .attacks import attack_frames

Scorer = Callable[[np.ndarray, tuple], float]


def _apcer(attacks: dict[str, np.ndarray], t: float) -> dict[str, float]:
    rates = {k: float(np.mean(v >= t)) for k, v in attacks.items() if len(v)}
    rates["worst"] = max(rates.values(), default=0.0)
    return rates


def _bpcer_at(bona: np.ndarray, attacks: dict[str, np.ndarray], apcer: float) -> float | None:
    """BPCER at the lowest threshold where the worst species' APCER is <= ``apcer``."""
    if not len(bona):
        return None
    for t in np.unique(np.concatenate([bona, *attacks.values(), [1.01]])):
        if _apcer(attacks, float(t))["worst"] <= apcer:
            return round(float(np.mean(bona < t)), 4)
    return None


def _auc(bona: np.ndarray, attacks: np.ndarray) -> float | None:
    if not len(bona) or not len(attacks):
        return None
    greater = (bona[:, None] > attacks[None, :]).mean()
    ties = (bona[:, None] == attacks[None, :]).mean()
    return round(float(greater + ties / 2), 4)


def pad_metrics(bona: list[float], attacks: dict[str, list[float]], threshold: float) -> dict:
    b = np.asarray(bona, dtype=np.float64)
    a = {k: np.asarray(v, dtype=np.float64) for k, v in attacks.items()}
    every = np.concatenate(list(a.values())) if a else np.zeros(0)
    return {"threshold": threshold,
            "apcer": {k: round(v, 4) for k, v in _apcer(a, threshold).items()},
            "bpcer": round(float(np.mean(b < threshold)), 4) if len(b) else None,
            "bpcer20": _bpcer_at(b, a, 0.05), "bpcer100": _bpcer_at(b, a, 0.01),
            "auc": _auc(b, every), "bona_fide": len(b), "attacks": {k: len(v) for k, v in a.items()}}


def read_labels(folder: Path) -> list[tuple[Path, str, str]]:
    """(file, ``live`` | ``spoof``, species) rows of ``folder``/labels.csv."""
    path = folder / "labels.csv"
    if not path.is_file():
        raise EvaluationError(f"{path} not found (expected file,label[,species])")
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            label = (row.get("label") or "").strip()
            if label not in ("live", "spoof"):
                raise EvaluationError(f"{path}: label must be live or spoof, got {label!r}")
            rows.append((folder / row["file"], label, (row.get("species") or "spoof").strip() or "spoof"))
    return rows


def eval_liveness(folder: Path, pipeline: FacePipeline, scorer: Scorer, threshold: float,
                  progress: Callable[[str], None] | None = None, curve: dict | None = None) -> dict:
    """Score the largest face of every image of a labelled folder; aggregate figures only."""
    rows = read_labels(folder)
    bona: list[float] = []
    attacks: dict[str, list[float]] = {}
    missed = unreadable = 0
    for i, (path, label, species) in enumerate(rows, 1):
        try:
            image = read_rgb(path)
        except Exception:  # noqa: BLE001 - an unreadable file is counted, never fatal
            unreadable += 1
            continue
        face = largest_face(pipeline.faces(image, still=True))
        if face is None:
            missed += 1
        else:
            score = float(scorer(image, face.detection.box))
            (bona if label == "live" else attacks.setdefault(species, [])).append(score)
        image.fill(0)
        pipeline.wipe()
        if progress and i % 25 == 0:
            progress(f"{i}/{len(rows)} images")
    if curve is not None:
        curve.update(bona=list(bona), attacks=[s for v in attacks.values() for s in v])
    return {"dataset": str(folder), "images": len(rows), "failures_to_acquire": missed,
            "unreadable": unreadable, **pad_metrics(bona, attacks, threshold)}


def make_attack_set(source: Path, out: Path, species: tuple[str, ...] = ("print_flat", "print_bent", "screen"),
                    limit: int = 50, seed: int = 0) -> int:
    """A labelled folder from the stills of ``source`` (labels.csv with ``file``): each still as
    bona fide, and one webcam-like frame of each attack species made from it."""
    with open(source / "labels.csv", newline="") as fh:
        files = [row["file"] for row in csv.DictReader(fh)][:limit]
    out.mkdir(parents=True, exist_ok=True)
    import cv2

    rows = []
    for i, name in enumerate(files):
        photo = read_rgb(source / name)
        stem = f"{i:04d}"
        cv2.imwrite(str(out / f"{stem}_live.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        rows.append((f"{stem}_live.jpg", "live", ""))
        for sp in species:
            frames = list(attack_frames(photo, sp, frames=9, seed=seed + i))
            cv2.imwrite(str(out / f"{stem}_{sp}.jpg"), cv2.cvtColor(frames[-1], cv2.COLOR_RGB2BGR))
            rows.append((f"{stem}_{sp}.jpg", "spoof", sp))
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "species"])
        w.writerows(rows)
    print(f"wrote {len(rows)} images to {out}", file=sys.stderr)
    return len(rows)
