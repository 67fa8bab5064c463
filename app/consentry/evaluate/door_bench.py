"""`consentry bench --video`: the door's own loop on a clip — per-frame cost split by what the
frame had to do, embeddings per frame, and time from a track's first detection to its
decision (video seconds: frame index / fps, so it does not depend on this machine's speed).

The gallery is synthetic (nobody in the clip is enrolled), so every decision here is
``unknown``: the time measured is how long a stranger's visit stays open, the worst case
for both the embedding budget and the time a stranger's descriptors exist.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import Settings
from ..vision.pipeline import FacePipeline
from .bench import stats
from .frames_bench import synthetic_gallery, video_frames


def door_timing(pipeline: FacePipeline, video: Path, settings: Settings, limit: int | None = None,
                gallery_size: int = 100) -> dict:
    from ..camera.sources import OpenCVSource
    from ..decide.recognizer import Recognizer, visit_options
    from ..vision.factory import tracking_options
    from ..vision.tracking import FaceTracker
    from .frames_bench import Clock

    probe = OpenCVSource(str(video), finite=True)
    fps = probe.fps
    probe.close()
    gallery = synthetic_gallery(pipeline.embedder.name, gallery_size)
    recognizer = Recognizer(FaceTracker(pipeline, tracking_options(settings.tracking)), gallery,
                            visit_options(settings))
    first_seen: dict[int, float] = {}
    decided: dict[int, float] = {}
    per_frame = {"with_embeddings": [], "without_embeddings": [], "no_face": []}
    embeds: list[int] = []
    try:
        for i, frame in enumerate(video_frames(video, Clock(), limit)):
            now = i / fps
            start = time.perf_counter()
            results = recognizer.step(frame, now=now)
            ms = (time.perf_counter() - start) * 1000.0
            n = sum(r.embedded for r in results)
            embeds.append(n)
            per_frame["no_face" if not results else "with_embeddings" if n else "without_embeddings"].append(ms)
            for r in results:
                first_seen.setdefault(r.track_id, now)
                if r.state != "pending":
                    decided.setdefault(r.track_id, now)
            frame.fill(0)
    finally:
        recognizer.wipe_visits()
        gallery.close()
    waits = [decided[t] - first_seen[t] for t in decided]
    return {
        "fps_of_video": round(fps, 2), "frames": len(embeds),
        "frame_ms": {k: stats(v) for k, v in per_frame.items() if v},
        "embeddings_per_frame": {"mean": round(float(np.mean(embeds)), 2) if embeds else 0,
                                 "max": int(max(embeds, default=0)),
                                 "limit": settings.tracking.max_embeds_per_frame},
        "tracks": len(first_seen), "decided": len(decided),
        "time_to_decision_s": {"p50": _pct(waits, 50), "p90": _pct(waits, 90), "max": max(waits, default=None)},
    }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def pipeline_comparison(settings: Settings, video: Path, limit: int | None = None, gallery_size: int = 100) -> dict:
    """`tracking.pipeline` serial against detect-ahead on the same clip, on this machine:
    frames per second when frames come as fast as the loop takes them, and — paced at the
    clip's frame rate, as a camera delivers them — milliseconds from a frame's arrival to the
    decisions about it (detect-ahead returns them one frame later, and that wait is counted)."""
    from ..camera.sources import OpenCVSource
    from ..decide.recognizer import Recognizer, visit_options
    from ..vision.embedder import template_model
    from ..vision.factory import tracker_from_settings
    from .frames_bench import Clock

    probe = OpenCVSource(str(video), finite=True)
    fps = probe.fps
    probe.close()
    clip = list(video_frames(video, Clock(), limit))
    out: dict = {"frames": len(clip), "fps_of_video": round(fps, 2), "threads": settings.vision.threads}
    try:
        for mode in ("serial", "detect-ahead"):
            tracking = settings.tracking.model_copy(update={"pipeline": mode})
            mode_settings = settings.model_copy(update={"tracking": tracking})
            gallery = synthetic_gallery(template_model(settings.vision.embedder, settings.vision.flip), gallery_size)
            with Recognizer(tracker_from_settings(mode_settings), gallery, visit_options(settings)) as recognizer:
                out[mode] = {"saturated_fps": _saturated(recognizer, clip, fps),
                             "arrival_to_decision_ms": stats(_paced(recognizer, clip, fps, mode))}
    finally:
        for frame in clip:
            frame.fill(0)
    out["ratio_fps"] = round(out["detect-ahead"]["saturated_fps"] / out["serial"]["saturated_fps"], 3)
    return out


def _saturated(recognizer, clip: list[np.ndarray], fps: float) -> float:
    start = time.perf_counter()
    for i, frame in enumerate(clip):
        recognizer.step(frame, now=i / fps)  # the tracker only reads it (detect-ahead copies it)
        recognizer.tracker.release()
    recognizer.wipe_visits()
    return round(len(clip) / (time.perf_counter() - start), 2)


def _paced(recognizer, clip: list[np.ndarray], fps: float, mode: str) -> list[float]:
    """Each frame arrives at i / fps; its decisions come back with it (serial) or with the next
    frame (detect-ahead). A frame that arrives while the loop is busy waits, as it would."""
    arrivals, waits = [], []
    start = time.perf_counter()
    for i, frame in enumerate(clip):
        arrival = start + i / fps
        time.sleep(max(0.0, arrival - time.perf_counter()))
        arrivals.append(arrival)
        recognizer.step(frame, now=i / fps)
        recognizer.tracker.release()
        done = time.perf_counter()
        decided = i if mode == "serial" else i - 1
        if decided >= 0:
            waits.append((done - arrivals[decided]) * 1000.0)
    recognizer.wipe_visits()
    return waits
