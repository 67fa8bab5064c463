"""Door templates measured on the shared webcam clips: distances before and after adaptation.

`python -m consentry.evaluate.adapt --clips DIR [--json]` (DIR: the shared ``video`` folder).
For every ordered triple of the webcam clips of one person (enrol, door, measure):

1. the person is enrolled (a real vault in a temporary folder) from ``templates`` frames
   spread over the *enrol* clip, as `consentry enroll --video` takes them;
2. the *door* clip is replayed through the door as it runs (recognizer, liveness gate, door
   policy, decide/adapt.py) on the video's own clock: its grant may leave a door template;
3. on the *measure* clip, the visit-mean distance (``evidence_n`` consecutive good frames) to
   the subject is computed for every window, with the consent-time templates only (before)
   and with the door templates too (after).

Printed: per triple, the adaptation's outcome with the granting visit's distance and its
distance to the consent-time centroid, and the best / median visit distance and the share of
windows within the visit threshold, before and after. Only these aggregates of a consenting
test person are kept; no frame, crop or descriptor is written anywhere.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from itertools import permutations
from pathlib import Path

import numpy as np

from ..config import Settings
from .door_clips import _Door, _liveness, _rows, _VideoClock, replay_clip


def clip_descriptors(pipeline, path: Path) -> np.ndarray:
    """(n, 128) descriptors of the frames with exactly one face passing the gates, in order
    (the evaluation's own copy of one consenting test person; the caller zeroes it)."""
    from ..camera.sources import OpenCVSource
    from ..enrolment import one_good_vector

    source = OpenCVSource(str(path), finite=True)
    out = []
    try:
        for frame in source.frames():
            try:
                vector = one_good_vector(pipeline, frame)
                if vector is not None:
                    out.append(vector)
            finally:
                frame.fill(0)
    finally:
        source.close()
    return np.stack(out)


def _units(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def visit_distances(descriptors: np.ndarray, templates: np.ndarray, frames: int, unit: bool = False) -> np.ndarray:
    """Distance of every window of ``frames`` consecutive good frames to the subject whose
    (k, 128) ``templates`` are given, as the door scores a visit: the window's mean to the
    templates' mean, or (``unit``, visit_scoring "unit") the window's unit descriptors averaged
    and normalised, against the normalised mean of the unit templates (a chord distance)."""
    if unit:
        descriptors, templates = _units(descriptors), _units(templates)
    centroid = np.mean(templates, axis=0)
    kernel = np.cumsum(np.vstack([np.zeros((1, descriptors.shape[1])), descriptors]), axis=0)
    means = (kernel[frames:] - kernel[:-frames]) / frames
    if unit:
        means, centroid = _units(means), _units(centroid)
    return np.linalg.norm(means - centroid, axis=1)


def _figures(distances: np.ndarray, threshold: float) -> dict:
    return {"best": round(float(distances.min()), 3), "median": round(float(np.median(distances)), 3),
            "within_threshold": round(float(np.mean(distances <= threshold)), 3)}


def _consent():
    import datetime as dt

    from ..vault import ConsentRecord

    return ConsentRecord("consentry-door", "2", "0" * 64, dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
                         "cli", "evaluation", 1, "adult", ("door",))


def learn(settings: Settings, pipeline, enrol: list[np.ndarray], door_clip: Path, workdir: Path) -> dict:
    """Enrol in a fresh vault, replay the door clip through the door, return what it learned."""
    from ..decide.adapt import AdaptOptions, DoorAdapter, MatchHold
    from ..decide.door import DoorPolicy
    from ..decide.recognizer import Recognizer, visit_options
    from ..match import gallery_from_vault, policy_from_config
    from ..vault import KeyFile, Vault
    from ..vision.factory import tracking_options
    from ..vision.tracking import FaceTracker

    KeyFile(workdir / "master.key").create()
    model = pipeline.embedder.name
    clock = _VideoClock()
    with Vault(workdir, KeyFile(workdir / "master.key"), create=True) as vault:
        subject = vault.enroll("test person", _consent(), enrol, model)
        gallery = gallery_from_vault(vault, model, policy_from_config(settings.match), "door").gallery
        hold = MatchHold()
        options = AdaptOptions.from_settings(settings)
        adapter = DoorAdapter(options, vault, gallery, hold, model)
        offers: list[dict] = []

        def adapt(track, who, granted, liveness):
            held = hold.peek(track)
            distance = held[1] if held else None
            consent = vault.consent_distance(who, model, held[2], unit=options.unit) if held else None
            outcome = adapter(track, who, granted, liveness)
            offers.append({"outcome": outcome.outcome, "visit_distance": distance,
                           "consent_distance": None if consent is None else round(consent, 3)})

        liveness_factory, spoof = _liveness(settings, pipeline, clock)
        recognizer = Recognizer(FaceTracker(pipeline, tracking_options(settings.tracking)), gallery,
                                visit_options(settings), clock=clock)
        recognizer.hold = hold

        def policy(publish):
            return DoorPolicy(settings.door, _Door(), publish, clock=clock, adapt=adapt,
                              liveness=liveness_factory(publish) if liveness_factory else None)
        try:
            replay = replay_clip(door_clip, recognizer, policy, clock)
        finally:
            if spoof is not None:
                spoof.close()
        consent_t, door_t = vault.subject_templates(subject, model)
        back = vault.transform.T
        result = {"granted": replay["granted_to"] == subject, "time_to_grant_s": replay["time_to_grant_s"],
                  "offers": offers, "consent": [back @ v for v in consent_t], "door": [back @ v for v in door_t]}
        for v in consent_t + door_t:
            v.fill(0)
        gallery.close()
    return result


def grant_distances(settings: Settings, pipeline, enrol: list[np.ndarray], clip: Path, step_s: float = 1.0) -> list:
    """The distance of the visit that first matches, for a visit starting every ``step_s`` of
    the clip (a fresh recognizer each, up to the visit budget): what a margin is taken from."""
    from ..camera.sources import OpenCVSource
    from ..decide.recognizer import Recognizer, visit_options
    from ..match import Gallery, policy_from_config
    from ..vision.factory import tracking_options
    from ..vision.tracking import FaceTracker

    gallery = Gallery(pipeline.embedder.name, policy_from_config(settings.match))
    gallery.add("person", enrol)
    source = OpenCVSource(str(clip), finite=True)
    fps, total = source.fps, source.frame_count
    source.close()
    out = []
    span = settings.tracking.visit_seconds + 1.0
    try:
        for start in np.arange(0.0, max(total / fps - 1.0, 0.0), step_s):
            recognizer = Recognizer(FaceTracker(pipeline, tracking_options(settings.tracking)), gallery,
                                    visit_options(settings))
            source = OpenCVSource(str(clip), finite=True)
            found = None
            try:
                for i, frame in enumerate(source.frames()):
                    t = i / fps
                    if start <= t < start + span and found is None:
                        for r in recognizer.step(frame, now=t):
                            if r.state == "match" and found is None:
                                found = r.distance
                    frame.fill(0)
            finally:
                source.close()
                recognizer.wipe_visits()
            out.append(found)
    finally:
        gallery.close()
    return out


def stranger_tail(still_set: Path, settings: Settings, thresholds: list[float], templates: int = 5) -> dict:
    """Per-comparison false-match counts of single stills against 5-template centroids (the
    shared CelebA set) at each threshold: how much a margin below a threshold cuts a
    lookalike's chance of being learned (a visit mean is worth about one look, issue 19)."""
    from .verify import contenders, embedded_set, subject_scores

    with contenders(settings) as (ours, *_):
        ids, vecs = embedded_set(still_set, ours, quiet=True)
    scoring = "unit" if settings.match.visit_scoring == "unit" else "centroid"
    _, impostor = subject_scores(ids, vecs, templates, scoring=scoring)
    vecs.fill(0)
    return {"impostor_comparisons": int(impostor.size),
            "false_matches": {f"{t:.4f}": int(np.sum(impostor <= t)) for t in thresholds}}


def evaluate(clips: Path, settings: Settings, templates: int = 5, progress=None) -> dict:
    from ..enrolment import video_templates
    from ..vision.factory import pipeline_from_config

    webcam: dict[str, list[Path]] = {}
    for path, identity in _rows(clips):
        if path.name.startswith("webcam"):
            webcam.setdefault(identity, []).append(path)
    threshold = settings.match.visit_threshold or settings.match.threshold
    unit = settings.match.visit_scoring == "unit"
    frames = settings.tracking.evidence_n
    rows = []
    with pipeline_from_config(settings.vision, settings.quality) as pipeline:
        for paths in webcam.values():
            descriptors = {p.name: clip_descriptors(pipeline, p) for p in paths}
            sweep = []
            for enrol, door in permutations(paths, 2):
                vectors = video_templates(pipeline, enrol, templates).vectors
                sweep += [d for d in grant_distances(settings, pipeline, vectors, door) if d is not None]
                for v in vectors:
                    v.fill(0)
            margins = {f"{m:.2f}": round(float(np.mean(np.asarray(sweep) <= threshold - m)), 3) if sweep else None
                       for m in (0.0, 0.01, 0.02, 0.03, 0.05)}
            grants = {"visits": len(sweep), "distance": _figures(np.asarray(sweep), threshold) if sweep else None,
                      "learned_at_margin": margins}
            for enrol, door, measure in permutations(paths, 3):
                vectors = video_templates(pipeline, enrol, templates).vectors
                with tempfile.TemporaryDirectory() as tmp:
                    learned = learn(settings, pipeline, vectors, door, Path(tmp))
                before = np.stack(learned["consent"])
                after = np.stack(learned["consent"] + learned["door"])
                probe = descriptors[measure.name]
                rows.append({"enrol": enrol.name, "door": door.name, "measure": measure.name,
                             "door_granted": learned["granted"], "door_time_to_grant_s": learned["time_to_grant_s"],
                             "offers": learned["offers"], "door_templates": len(learned["door"]),
                             "before": _figures(visit_distances(probe, before, frames, unit), threshold),
                             "after": _figures(visit_distances(probe, after, frames, unit), threshold)})
                for v in vectors + learned["consent"] + learned["door"] + [before, after]:
                    v.fill(0)
                if progress:
                    progress(json.dumps(rows[-1]))
            for d in descriptors.values():
                d.fill(0)
    return {"visit_threshold": threshold, "adapt_margin": settings.match.adapt_margin,
            "evidence_n": frames, "templates": templates, "grant_visits": grants, "triples": rows}


def main(argv: list[str] | None = None) -> int:
    from ..config import load_settings

    ap = argparse.ArgumentParser(prog="python -m consentry.evaluate.adapt", description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, required=True, help="the shared video folder (labels.csv)")
    ap.add_argument("--config", type=Path, help="a consentry.toml (default: the built-in defaults)")
    ap.add_argument("--visit-threshold", type=float, help="override match.visit_threshold")
    ap.add_argument("--margin", type=float, help="override match.adapt_margin")
    ap.add_argument("--still-set", type=Path, help="also count CelebA-style stranger matches near the threshold")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    settings = load_settings(args.config) if args.config else Settings()
    match = {k: v for k, v in (("visit_threshold", args.visit_threshold), ("adapt_margin", args.margin))
             if v is not None}
    if match:
        data = settings.model_dump()
        data["match"].update(match)
        settings = Settings.model_validate(data)
    out = evaluate(args.clips, settings)
    if args.still_set:
        t = out["visit_threshold"]
        margins = (0.1, 0.05, 0.03, 0.02, 0.01, 0.0)
        out["stranger_tail"] = stranger_tail(args.still_set, settings, [t - m for m in margins])
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"visit threshold {out['visit_threshold']}, margin {out['adapt_margin']}, windows of {out['evidence_n']}")
    g = out["grant_visits"]
    print(f"first matching visit, one every second of each door clip: {g['visits']} visits, distance {g['distance']}; "
          f"share learned at margin m: {g['learned_at_margin']}")
    if "stranger_tail" in out:
        print(f"stranger stills vs 5-template centroids: {out['stranger_tail']}")
    for r in out["triples"]:
        offer = r["offers"][0] if r["offers"] else {}
        print(f"enrol {r['enrol']:30s} door {r['door']:30s} measure {r['measure']:30s} "
              f"door: {offer.get('outcome', 'no grant'):16s} visit {offer.get('visit_distance')} consent "
              f"{offer.get('consent_distance')} | best {r['before']['best']} -> {r['after']['best']}, "
              f"median {r['before']['median']} -> {r['after']['median']}, within "
              f"{r['before']['within_threshold']} -> {r['after']['within_threshold']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
