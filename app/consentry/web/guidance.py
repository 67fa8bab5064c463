"""What the kiosk may show about the face in view, without pixels: whether a face is seen,
what to do (the quality gates' first reason), and — only for someone who consented — where
the face is, as fractions of the frame, so the page can draw it against the oval to aim for.

Who consented: a track the recognizer matched to an enrolled subject (still being confirmed,
or answering a liveness challenge), or the one person in front of the camera during their own
enrolment. For anyone else the page learns "a face is seen" and the gate's advice word
("Come a little closer"): words, never a figure. A stranger's box never leaves this module,
so it is neither published nor kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Guidance:
    """face: a face is in view. box: (centre x, centre y, width, height) as fractions of the
    frame (0..1, unmirrored), or None. reason: a key of web.state.ADVICE, or None."""

    face: bool = False
    box: Box | None = None
    reason: str | None = None

    def as_json(self) -> dict:
        return {"face": self.face, "box": list(self.box) if self.box else None}


def fraction(box: Sequence[float], shape: Sequence[int]) -> Box:
    """A pixel box (x1, y1, x2, y2) in a frame of ``shape`` (h, w, ...) as rounded fractions."""
    h, w = float(shape[0]), float(shape[1])
    x1, y1, x2, y2 = (float(v) for v in box)
    clip = lambda v: round(min(max(v, 0.0), 1.0), 3)  # noqa: E731
    return clip((x1 + x2) / 2 / w), clip((y1 + y2) / 2 / h), clip((x2 - x1) / w), clip((y2 - y1) / h)


def kiosk(results: Sequence, shape: Sequence[int] | None) -> Guidance:
    """From one frame's TrackResults (decide/recognizer.py)."""
    if not results:
        return Guidance()
    width = lambda r: r.box[2] - r.box[0]  # noqa: E731
    matched = [r for r in results if r.state == "match"]
    box = fraction(max(matched, key=width).box, shape) if matched and shape is not None else None
    # An "unknown" track whose gate refused every frame was never compared: it may be someone
    # enrolled who stands too far away, so the advice word (not a figure) is still given.
    waiting = [r for r in results if r.state != "match" and r.reasons]
    reason = max(waiting, key=width).reasons[0] if waiting else None
    return Guidance(face=True, box=box, reason=reason)
