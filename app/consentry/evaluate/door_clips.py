"""`consentry eval --clips DIR --enrol DIR`: the door as it is used, one clip a visit.

People are enrolled (in memory) from labelled stills the way `consentry enroll` takes them:
images with exactly one face that passes the quality gates, at most ``templates`` each. Each
clip is then replayed through the door's own recognizer, liveness gate and door policy on
the video's own clock (frame index / fps), so time from first detection to grant is video
seconds, whatever this machine's speed. Output: per clip, granted or not, to whom, and the
time to grant (from the clip's first detection of anyone, and from the first detection of the
granted track: in a clip where others appear first, the person's own wait); strangers
granted; a summary. Nothing but these figures is kept.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..camera.sources import VIDEO_SUFFIXES
from ..config import Settings
from ..errors import ConfigError
from ..match import Gallery, policy_from_config
from ..vision.pipeline import FacePipeline


class _Door:
    """A door that only counts (the replay drives no relay)."""

    def unlock(self, seconds: float, subject: str | None = None) -> None:
        pass


class _VideoClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rows(folder: Path) -> list[tuple[Path, str]]:
    path = folder / "labels.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found: clips and enrolment folders need labels.csv (file,identity)")
    with open(path, newline="") as fh:
        return [(folder / r["file"], r["identity"]) for r in csv.DictReader(fh)]


def enrol_gallery(pipeline: FacePipeline, folder: Path, settings: Settings, templates: int = 5,
                  progress: Callable[[str], None] | None = None) -> tuple[Gallery, dict[str, int]]:
    """A gallery keyed by identity label, enrolled as `consentry enroll` enrols (one face that
    passes the gates per image, at most ``templates`` each); templates taken per identity."""
    from ..enrolment import enrolment_templates

    paths: dict[str, list[Path]] = {}
    for path, identity in _rows(folder):
        paths.setdefault(identity, []).append(path)
    gallery = Gallery(pipeline.embedder.name, policy_from_config(settings.match))
    taken: dict[str, int] = {}
    for identity, files in paths.items():
        videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
        vectors, _ = enrolment_templates(pipeline, [f for f in files if f not in videos])
        for video in videos:
            vectors += video_templates(pipeline, video, templates)
        vectors = vectors[:templates]
        if vectors:
            gallery.add(identity, vectors)
        taken[identity] = len(vectors)
        for v in vectors:
            v.fill(0)
    if progress:
        progress(f"enrolled {sum(1 for n in taken.values() if n)} identities from {folder}")
    return gallery, taken


def video_templates(pipeline: FacePipeline, path: Path, count: int) -> list[np.ndarray]:
    """Templates from ``count`` frames spread evenly over a clip, each the clip's only face and
    passing the quality gates (the next usable frame when one is not)."""
    from ..camera.sources import OpenCVSource

    source = OpenCVSource(str(path), finite=True)
    total = max(source.frame_count, 1)
    wanted = [int(total * (k + 0.5) / count) for k in range(count)]
    out: list[np.ndarray] = []
    try:
        for i, frame in enumerate(source.frames()):
            if len(out) < count and wanted[len(out)] <= i:
                faces = pipeline.faces(frame)
                if len(faces) == 1 and pipeline.assess(frame, faces[0]).ok:
                    out.append(pipeline.embed(frame, faces[0]).vector.copy())
                pipeline.wipe()
            frame.fill(0)
    finally:
        source.close()
    return out


def replay_clip(path: Path, recognizer, door_policy_factory, clock: _VideoClock,
                trace: Callable | None = None, scored: bool = False) -> dict:
    """Frames of one clip through recognizer and door policy; the first grant and its time.
    ``trace``: called with each frame's evaluate/door_trace.py FrameTrace rows (window
    distances only when ``scored``: the clip's identity is enrolled)."""
    from ..camera.sources import OpenCVSource
    from .door_trace import TracingGate, frame_traces

    source = OpenCVSource(str(path), finite=True)
    fps = source.fps
    events: list[dict] = []
    policy = door_policy_factory(lambda topic, payload: events.append({"topic": topic, **payload}))
    gate = None
    if trace is not None and policy.liveness is not None:
        gate = policy.liveness = TracingGate(policy.liveness)
    first_face, frames, grant = None, 0, None
    track_seen: dict[int, float] = {}  # each track's first detection
    try:
        for i, frame in enumerate(source.frames()):
            clock.now = i / fps
            frames += 1
            results = recognizer.step(frame, now=clock.now)
            if results and first_face is None:
                first_face = clock.now
            for r in results:
                track_seen.setdefault(r.track_id, clock.now)
            policy.handle(results, 0.0, frame, alive=set(recognizer.tracker.tracks))
            if trace is not None:
                for row in frame_traces(clock.now, results, recognizer, gate, scored):
                    trace(row)
            frame.fill(0)
            granted = [e for e in events if e["topic"] == "event/access" and e.get("decision") == "granted"]
            if granted and grant is None:
                grant = (granted[0]["subject"], clock.now, track_seen.get(granted[0].get("track"), first_face))
    finally:
        source.close()
        recognizer.wipe_visits()
    denials = sum(1 for e in events if e.get("decision") == "denied")
    return {"frames": frames, "fps": round(fps, 2), "first_detection_s": first_face,
            "granted_to": grant[0] if grant else None,
            "time_to_grant_s": None if grant is None or first_face is None else round(grant[1] - first_face, 3),
            "track_time_to_grant_s": None if grant is None or grant[2] is None else round(grant[1] - grant[2], 3),
            "liveness_denials": denials}


def eval_door_clips(clips: Path, enrol: Path, settings: Settings,
                    progress: Callable[[str], None] | None = None, trace: Callable | None = None) -> dict:
    """``trace(clip_name, FrameTrace)``: every frame's view of the door (evaluate/door_trace.py)."""
    from ..decide.door import DoorPolicy
    from ..decide.recognizer import Recognizer, visit_options
    from ..vision.factory import pipeline_from_config, tracking_options
    from ..vision.tracking import FaceTracker

    clock = _VideoClock()
    with pipeline_from_config(settings.vision, settings.quality) as pipeline:
        gallery, enrolled = enrol_gallery(pipeline, enrol, settings, settings.http.capture_templates, progress)
        liveness_factory, spoof = _liveness(settings, pipeline, clock)
        try:
            rows = []
            for path, identity in _rows(clips):
                recognizer = Recognizer(FaceTracker(pipeline, tracking_options(settings.tracking)), gallery,
                                        visit_options(settings), clock=clock)

                def policy(publish, _settings=settings):
                    return DoorPolicy(_settings.door, _Door(), publish, clock=clock,
                                      liveness=liveness_factory(publish) if liveness_factory else None)

                is_enrolled = enrolled.get(identity, 0) > 0
                out = replay_clip(path, recognizer, policy, clock, scored=is_enrolled,
                                  trace=None if trace is None else (lambda row, _n=path.name: trace(_n, row)))
                rows.append({"clip": path.name, "identity": identity, "enrolled": is_enrolled,
                             "granted": out["granted_to"] is not None,
                             "correct": out["granted_to"] == identity if is_enrolled else out["granted_to"] is None,
                             **out})
                if progress:
                    progress(f"{path.name}: {'granted to ' + out['granted_to'] if out['granted_to'] else 'no grant'}")
        finally:
            if spoof is not None:
                spoof.close()
            gallery.close()
    return _summary(rows, settings)


def _liveness(settings: Settings, pipeline: FacePipeline, clock: _VideoClock):
    """A factory of the door's liveness gate (one per clip) and the networks it scores with
    (the caller closes them), or (None, None) when liveness is off."""
    if settings.liveness.mode == "off":
        return None, None
    from ..decide.liveness import LivenessGate, LivenessJudge, LivenessOptions
    from ..vision.antispoof import AntiSpoof

    spoof = AntiSpoof(pipeline.manifest, threads=pipeline.options.threads, runtime=pipeline.options.runtime)
    options = LivenessOptions.from_config(settings.liveness)

    def gate(publish):
        judge = LivenessJudge(options, lambda frame, box: spoof.score(frame, box).p_real, clock=clock)
        return LivenessGate(judge, publish, clock=clock)
    return gate, spoof


def _summary(rows: list[dict], settings: Settings) -> dict:
    mine = [r for r in rows if r["enrolled"]]
    strangers = [r for r in rows if not r["enrolled"]]
    times = [r["time_to_grant_s"] for r in mine if r["correct"] and r["time_to_grant_s"] is not None]
    return {
        "clips": rows,
        "enrolled_clips": len(mine), "enrolled_granted": sum(r["correct"] for r in mine),
        "wrong_person_grants": sum(r["granted"] and not r["correct"] for r in mine),
        "stranger_clips": len(strangers), "strangers_granted": sum(r["granted"] for r in strangers),
        "time_to_grant_s": {"p50": _pct(times, 50), "p90": _pct(times, 90), "max": max(times) if times else None},
        "liveness": settings.liveness.mode,
        "visit_threshold": settings.match.visit_threshold or settings.match.threshold,
    }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def table(result: dict) -> str:
    lines = [f"{'clip':32} {'identity':24} {'enrolled':8} {'granted to':24} {'t (s)':>6} {'track t':>7}"]
    for r in result["clips"]:
        t = "" if r["time_to_grant_s"] is None else f"{r['time_to_grant_s']:.2f}"
        tt = "" if r.get("track_time_to_grant_s") is None else f"{r['track_time_to_grant_s']:.2f}"
        lines.append(f"{r['clip'][:32]:32} {r['identity'][:24]:24} {'yes' if r['enrolled'] else 'no':8} "
                     f"{(r['granted_to'] or '-')[:24]:24} {t:>6} {tt:>7}")
    lines.append(f"enrolled granted {result['enrolled_granted']}/{result['enrolled_clips']}, strangers granted "
                 f"{result['strangers_granted']}/{result['stranger_clips']}, "
                 f"wrong person {result['wrong_person_grants']}, "
                 f"time to grant p50 {result['time_to_grant_s']['p50']} s")
    return "\n".join(lines)
