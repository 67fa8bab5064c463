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
