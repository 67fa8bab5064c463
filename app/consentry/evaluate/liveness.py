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


def eval_liveness_clips(folder: Path, tracker, judge, progress: Callable[[str], None] | None = None,
                        curve: dict | None = None, matched_after: int = 3) -> dict:
    """One verdict per clip, through the appliance's tracker and liveness judge: the largest
    face's track counts as matched (these clips have no enrolment) once ``matched_after`` of its
    frames passed the quality gates and were embedded, as the door's k-of-n evidence needs, and
    is then judged frame by frame until its verdict. A clip with no verdict by its end is a
    failure to acquire. The clip's score is the mean P(real) the judge used (0 for a veto)."""
    from ..camera.sources import open_source

    rows = read_labels(folder)
    bona: list[float] = []
    attacks: dict[str, list[float]] = {}
    missed = 0
    scorer = judge.scorer
    for i, (path, label, species) in enumerate(rows, 1):
        used: list[float] = []
        judge.scorer = lambda frame, box, used=used: used.append(float(scorer(frame, box))) or used[-1]
        verdict = _clip_verdict(open_source(f"file:{path}"), tracker, judge, matched_after)
        tracker.tracks.clear()
        if verdict is None:
            missed += 1
        else:
            # a veto by another cue fails the clip whatever P(real) said so far
            score = float(np.mean(used)) if verdict.reason in (None, "passive_spoof") and used else 0.0
            (bona if label == "live" else attacks.setdefault(species, [])).append(score)
        if progress:
            progress(f"{i}/{len(rows)} clips")
    judge.scorer = scorer
    if curve is not None:
        curve.update(bona=list(bona), attacks=[s for v in attacks.values() for s in v])
    return {"dataset": str(folder), "clips": len(rows), "failures_to_acquire": missed,
            **pad_metrics(bona, attacks, judge.options.threshold)}


def bona_fide_windows(folder: Path, tracker, scorer: Scorer, frames: int, min_face_px: float) -> np.ndarray:
    """Mean P(real) of every run of ``frames`` consecutive frames of the largest face (at least
    ``min_face_px`` wide: what the door would embed) in the ``live`` clips of ``folder``: the
    scores a genuine visit's verdict could be made on."""
    from ..camera.sources import open_source

    windows: list[np.ndarray] = []
    for path, label, _ in read_labels(folder):
        if label != "live":
            continue
        scores = []
        source = open_source(f"file:{path}")
        try:
            for frame in source.frames():
                faces = tracker.pipeline.faces(frame)
                face = largest_face(faces)
                if face is not None and face.detection.width >= min_face_px:
                    scores.append(float(scorer(frame, face.detection.box)))
                tracker.wipe()
                frame.fill(0)
        finally:
            source.close()
        if len(scores) >= frames:
            windows.append(np.convolve(scores, np.ones(frames) / frames, "valid"))
    return np.concatenate(windows) if windows else np.zeros(0)


def bona_fide_visits(folder: Path, pipeline: FacePipeline, judge, min_face_px: float, every: int = 5,
                     length: int = 60) -> dict:
    """A visit starting every ``every`` frames of each ``live`` clip (up to ``length`` frames of
    the largest face at least ``min_face_px`` wide), judged by every cue: BPCER per visit and
    what refused them. A challenge cannot be answered by a recording, so ``judge`` should have
    challenges off (an unclear passive verdict then counts as refused)."""
    from ..camera.sources import open_source

    refused: dict[str, int] = {}
    visits = incomplete = 0
    for path, label, _ in read_labels(folder):
        if label != "live":
            continue
        seen: list[tuple | None] = []
        source = open_source(f"file:{path}")
        try:
            for frame in source.frames():
                face = largest_face(pipeline.faces(frame))
                ok = face is not None and face.detection.width >= min_face_px
                seen.append((frame.copy(), face.detection.box, face.landmarks.mesh) if ok else None)
                pipeline.wipe()
                frame.fill(0)
        finally:
            source.close()
        for start in range(0, max(len(seen) - 10, 0), every):
            verdict = None
            for item in (x for x in seen[start:start + length] if x is not None):
                verdict = judge.observe(-1, "visit", *item)
                if verdict.state != "pending":
                    break
            judge.forget(-1)
            if verdict is not None and verdict.state == "pending":
                incomplete += 1  # the clip ended first: a visit too short to judge, not a refusal
            elif verdict is not None:
                visits += 1
                if verdict.state != "passed":
                    refused[verdict.reason or "no_verdict"] = refused.get(verdict.reason or "no_verdict", 0) + 1
        for item in seen:
            if item is not None:
                item[0].fill(0)
    return {"visits": visits, "incomplete": incomplete, "refused": sum(refused.values()), "reasons": refused,
            "bpcer_per_visit": round(sum(refused.values()) / visits, 4) if visits else None}


def threshold_for_bpcer(windows: np.ndarray, target: float) -> dict:
    """The highest threshold (2 decimals) whose BPCER per window is at most ``target``."""
    if not len(windows):
        raise EvaluationError("no bona fide window to calibrate on (no live clip with a large enough face)")
    best = 0.0
    for t in np.arange(0.50, 1.0, 0.01):
        if np.mean(windows < t) <= target:
            best = round(float(t), 2)
    return {"target_bpcer_per_visit": target, "threshold": best, "windows": len(windows),
            "bpcer_at_threshold": round(float(np.mean(windows < best)), 4)}


def _clip_verdict(source, tracker, judge, matched_after: int):
    embedded: dict[int, int] = {}
    try:
        for frame in source.frames():
            try:
                observations = tracker.process(frame)
                for obs in observations:
                    embedded[obs.track_id] = embedded.get(obs.track_id, 0) + (obs.embedding is not None)
                if observations:
                    obs = max(observations, key=lambda o: o.face.detection.width * o.face.detection.height)
                    if embedded[obs.track_id] >= matched_after:
                        verdict = judge.observe(obs.track_id, "clip", frame, obs.face.detection.box,
                                                obs.face.landmarks.mesh)
                        if verdict.state != "pending":
                            return verdict
                judge.keep_only(set(tracker.tracks))
            finally:
                tracker.wipe()
                frame.fill(0)
        return None
    finally:
        judge.keep_only(set())
        source.close()


def make_attack_set(source: Path, out: Path, species: tuple[str, ...] = ("print_flat", "print_bent", "screen"),
                    limit: int = 50, seed: int = 0, clips: bool = False, replay: Path | None = None) -> int:
    """A labelled folder from the stills of ``source`` (labels.csv with ``file``): each still as
    bona fide, and one webcam-like frame of each attack species made from it; with ``clips``,
    a 2 s clip of each species instead (and ``replay``: a bona fide video shown on a phone)."""
    with open(source / "labels.csv", newline="") as fh:
        files = [row["file"] for row in csv.DictReader(fh)][:limit]
    out.mkdir(parents=True, exist_ok=True)
    import cv2

    replay_frames = _video_frames(replay, 30) if replay else None
    if clips and replay_frames:
        species = (*species, "replay")
    rows = []
    for i, name in enumerate(files):
        photo = read_rgb(source / name)
        stem = f"{i:04d}"
        if not clips:
            cv2.imwrite(str(out / f"{stem}_live.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
            rows.append((f"{stem}_live.jpg", "live", ""))
        for sp in species:
            frames = list(attack_frames(photo, sp, frames=30 if clips else 9, seed=seed + i, replay=replay_frames))
            if clips:
                _write_clip(out / f"{stem}_{sp}.mp4", frames)
                rows.append((f"{stem}_{sp}.mp4", "spoof", sp))
            else:
                cv2.imwrite(str(out / f"{stem}_{sp}.jpg"), cv2.cvtColor(frames[-1], cv2.COLOR_RGB2BGR))
                rows.append((f"{stem}_{sp}.jpg", "spoof", sp))
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "species"])
        w.writerows(rows)
    print(f"wrote {len(rows)} {'clips' if clips else 'images'} to {out}", file=sys.stderr)
    return len(rows)


def _video_frames(path: Path, limit: int) -> list[np.ndarray]:
    from ..camera.sources import open_source

    source = open_source(f"file:{path}")
    try:
        out = []
        for frame in source.frames():
            out.append(frame.copy())
            if len(out) >= limit:
                break
        return out
    finally:
        source.close()


def _write_clip(path: Path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def add_bona_fide_clips(out: Path, videos: Path) -> int:
    """Append every clip of a labelled video folder to ``out``/labels.csv as ``live`` (by
    absolute path: the clips are read where they are, never copied)."""
    with open(videos / "labels.csv", newline="") as fh:
        files = [str((videos / row["file"]).resolve()) for row in csv.DictReader(fh)]
    with open(out / "labels.csv", "a", newline="") as fh:
        csv.writer(fh).writerows((f, "live", "") for f in files)
    return len(files)
