"""`consentry eval --clips DIR --enrol DIR --trace`: what the door sees, frame by frame.

For each clip of an *enrolled* identity (a consenting test person), one line per frame and
track: face width, whether the face was embedded or which quality gates refused it, the
visit's state and size, the distance of the visit's current window to the nearest subject
(on ``visit_scoring``'s scale, the figure the door compares with ``visit_threshold``), when
the visit re-opened or started re-verifying, and the liveness gate's verdicts. It answers
"why did this person wait": gates, the evidence schedule, liveness, or a distance that only
falls under the threshold late. Clips of strangers get no distances: the trace is silent
about them as the door is (only their boxes and states).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameTrace:
    """One track in one frame. t: video seconds; width: face box width (px); embedded: the
    face was embedded this frame; reasons: quality gates it failed; state: the track's verdict;
    frames: good frames in its open visit (0 when settled); window: distance (visit scale) of
    the open visit's current window mean to ``nearest`` (None when settled, too few frames, or
    a stranger clip); distance: a match verdict's own distance; checking: a matched track
    re-verifying; liveness: the gate's verdict (state or failure reason, "prompt:..." during a
    challenge) when it was asked this frame."""

    t: float
    track: int
    width: float
    embedded: bool
    reasons: tuple[str, ...]
    state: str
    frames: int
    window: float | None
    nearest: str | None
    distance: float | None
    checking: bool
    liveness: str | None

    def line(self) -> str:
        gate = "embedded" if self.embedded else ("refused " + ",".join(self.reasons) if self.reasons else "-")
        window = "" if self.window is None else f" window {self.window:.4f} ({self.nearest})"
        if self.distance is not None:
            window += f" verdict distance {self.distance:.4f}"
        return (f"t={self.t:7.3f} T{self.track} w={self.width:5.1f} {gate:24} {self.state:8} n={self.frames:<3}"
                f"{window}{' re-verifying' if self.checking else ''}"
                f"{'' if self.liveness is None else ' liveness ' + self.liveness}")


class TracingGate:
    """The door's liveness gate, recording each verdict for the frame's trace."""

    def __init__(self, gate) -> None:
        self.gate = gate
        self.asked: dict[int, str] = {}

    def check(self, track_id, subject, frame, box, mesh):
        verdict = self.gate.check(track_id, subject, frame, box, mesh)
        self.asked[track_id] = (f"prompt:{verdict.prompt}" if verdict.prompt else
                                verdict.state if verdict.reason is None else f"{verdict.state}:{verdict.reason}")
        return verdict

    def keep_only(self, live) -> None:
        self.gate.keep_only(live)


def window_distance(visit, gallery, model: str, unit: bool) -> tuple[float | None, str | None]:
    """The open visit's window as the door scores it, against the nearest subject (any
    distance, so an evaluation can see how far it is); the scratch mean is zeroed."""
    buf, _ = visit.buffers()
    n = min(visit._count, visit.options.frames)
    if not visit.open or n < visit.options.min_frames:
        return None, None
    mean = np.mean(buf[:n], axis=0, dtype=np.float32)
    try:
        decision = gallery.identify(mean, model, threshold=1e9, unit=unit)
    finally:
        mean.fill(0)
    return decision.distance, decision.subject


def frame_traces(t: float, results, recognizer, gate: TracingGate | None, scored: bool) -> list[FrameTrace]:
    """The trace rows of one replayed frame (``scored``: the clip's identity is enrolled)."""
    visits = recognizer.visits()
    model = recognizer.gallery.model
    unit = recognizer.visit_options.scoring == "unit"
    rows = []
    for r in results:
        visit = visits.get(r.track_id)
        window, nearest = (window_distance(visit, recognizer.gallery, model, unit)
                           if scored and visit is not None else (None, None))
        rows.append(FrameTrace(round(t, 3), r.track_id, round(float(r.box[2] - r.box[0]), 1), r.embedded,
                               tuple(r.reasons), r.state, visit._count if visit is not None and visit.open else 0,
                               window, nearest, r.distance if scored else None,
                               bool(visit is not None and visit._checking),
                               gate.asked.pop(r.track_id, None) if gate is not None else None))
    if gate is not None:
        gate.asked.clear()
    return rows


Sink = Callable[[str, FrameTrace], None]
