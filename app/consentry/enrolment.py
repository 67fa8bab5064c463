"""Lifecycle steps shared by the CLI and the kiosk: templates for enrolment (exactly one good
face per image, or frames spread over a clip) and identification of every face in a photo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError
from .match import Gallery
from .vision.image_io import read_image
from .vision.pipeline import FacePipeline


@dataclass(frozen=True)
class Rejected:
    """An image not used for enrolment and why: unreadable, no_face, several_faces, or the
    quality gates' reason codes joined by '+'."""

    image: str
    reason: str


def enrolment_templates(pipeline: FacePipeline, images: Sequence[Path]) -> tuple[list[np.ndarray], list[Rejected]]:
    """Embeddings (copies, for the vault to encrypt) of images holding exactly one good face."""
    vectors: list[np.ndarray] = []
    rejected: list[Rejected] = []
    for path in images:
        try:
            rgb = read_image(path)
        except ImageError:
            rejected.append(Rejected(str(path), "unreadable"))
            continue
        try:
            faces = pipeline.faces(rgb, still=True)
            if len(faces) != 1:
                rejected.append(Rejected(str(path), "no_face" if not faces else "several_faces"))
                continue
            quality = pipeline.assess(rgb, faces[0])
            if not quality.ok:
                rejected.append(Rejected(str(path), "+".join(quality.reasons)))
                continue
            vectors.append(pipeline.embed(rgb, faces[0]).vector.copy())
        finally:
            pipeline.wipe()
            rgb.fill(0)
    return vectors, rejected


@dataclass(frozen=True, eq=False)
class VideoEnrolment:
    """Templates from one clip: ``vectors`` (copies, for the vault to encrypt; the caller zeroes
    them), ``frames`` read, ``usable`` frames (exactly one face passing every gate), and per
    reason the frames that were not (``no_face``, ``several_faces``, gate codes)."""

    vectors: list[np.ndarray]
    frames: int
    usable: int
    skipped: dict[str, int]


def video_templates(pipeline: FacePipeline, path: Path, count: int = 5, *, min_usable: int = 3,
                    consistency: float = 0.6, max_crowded: float = 0.01) -> VideoEnrolment:
    """Templates from frames spread over a clip, the way a door sees the person: the clip is
    read twice, first to find the frames with exactly one face that passes the quality gates,
    then to embed ``count`` of them spread evenly over those (so over the clip's poses and
    light, not one burst). The clip must show the person alone: more than ``max_crowded`` of
    its frames with several faces refuses it, and so does a clip in which two people each have
    the frame to themselves at different times (every two templates must lie within
    ``consistency``, L2: at most 0.49 apart on the shared webcam clips of one person, 0.74 for
    two people in turn). No frame or crop is kept."""
    from .camera.sources import OpenCVSource
    from .errors import CameraError, ConfigError

    def frames():
        try:
            source = OpenCVSource(str(path), finite=True)
        except CameraError as exc:
            raise ConfigError(f"cannot read the clip {path}: {exc}") from None
        try:
            yield from source.frames()
        finally:
            source.close()

    usable: list[int] = []
    skipped: dict[str, int] = {}
    total = 0
    for i, frame in enumerate(frames()):
        total += 1
        try:
            reason = one_good_face(pipeline, frame)[1]
        finally:
            pipeline.wipe()
            frame.fill(0)
        if reason is None:
            usable.append(i)
        else:
            skipped[reason] = skipped.get(reason, 0) + 1
    crowded = skipped.get("several_faces", 0)
    if crowded > max_crowded * total:
        raise ConfigError(f"{path}: another face appears in {crowded} of {total} frames; enrol from a clip of the "
                          "consenting person alone. Nothing was stored")
    if len(usable) < min_usable:
        raise ConfigError(f"{path}: only {len(usable)} of {total} frames show exactly one face that passes the "
                          f"quality gates (at least {min_usable} needed); nothing was stored")
    n = min(count, len(usable))
    wanted = {usable[int((k + 0.5) * len(usable) / n)] for k in range(n)}
    vectors: list[np.ndarray] = []
    for i, frame in enumerate(frames()):
        if i in wanted:
            vector = one_good_vector(pipeline, frame)
            if vector is not None:
                vectors.append(vector)
        frame.fill(0)
    if len(vectors) < min(min_usable, n):
        raise ConfigError(f"{path}: the clip could not be read the same way twice; nothing was stored")
    stack = np.stack(vectors)
    spread = np.linalg.norm(stack[:, None] - stack[None], axis=2)
    widest = float(spread.max())
    stack.fill(0)
    spread.fill(0)
    if widest > consistency:
        for v in vectors:
            v.fill(0)
        raise ConfigError(f"{path}: the frames do not all show the same person (or one face was misread); "
                              "use a clip of the consenting person alone. Nothing was stored")
    return VideoEnrolment(vectors, total, len(usable), skipped)


def one_good_vector(pipeline: FacePipeline, frame: np.ndarray) -> np.ndarray | None:
    """A copy of the (128,) descriptor of the frame's one face passing every gate, else None;
    the pipeline's own buffers are wiped either way (the caller owns and zeroes the copy)."""
    try:
        face, reason = one_good_face(pipeline, frame)
        return pipeline.embed(frame, face).vector.copy() if reason is None else None
    finally:
        pipeline.wipe()


def one_good_face(pipeline: FacePipeline, frame: np.ndarray):
    """(the face, None) when the frame holds exactly one face passing every gate, else (None, reason)."""
    faces = pipeline.faces(frame)
    if len(faces) != 1:
        return None, "no_face" if not faces else "several_faces"
    quality = pipeline.assess(frame, faces[0])
    if not quality.ok:
        return None, "+".join(quality.reasons)
    return faces[0], None


def identify_image(pipeline: FacePipeline, gallery: Gallery, path: Path, debug: bool = False) -> list[dict]:
    """Per face: ``decision`` (match | unknown), ``subject`` or None, ``distance`` (only for a
    match). A match also gets its ``box``; an unknown face is reported as unknown and nothing
    else — its box and quality reasons (gates failed; a gated face is never embedded) are
    figures measured on a stranger's face, shown only with ``debug``."""
    rgb = read_image(path)
    out = []
    try:
        for slot, face in enumerate(pipeline.faces(rgb, still=True)):
            quality = pipeline.assess(rgb, face)
            entry = {"box": [round(v, 1) for v in face.detection.box], "decision": "unknown",
                     "subject": None, "distance": None, "quality": list(quality.reasons)}
            if quality.ok:
                emb = pipeline.embed(rgb, face, slot=slot)
                decision = gallery.identify(emb.vector, emb.model)
                entry.update(decision=decision.decision, subject=decision.subject, distance=decision.distance)
            if entry["decision"] != "match" and not debug:
                entry = {"decision": "unknown", "subject": None, "distance": None}
            out.append(entry)
    finally:
        pipeline.wipe()
        rgb.fill(0)
    return out


class GuidedCapture:
    """Enrolment from live frames: exactly one face, all quality gates passed, and a
    template from every ``spacing``-th good frame until ``needed`` are collected. ``step``
    returns the reason a frame was not usable (a key of web.state.ADVICE) or None.

    Every template is of the person the capture started with: the face stays on one track
    (its box overlaps the last one by ``min_overlap`` IoU, and it is missing from at most
    ``max_gap`` frames in a row), and each new template lies within ``threshold`` (L2, the
    match rule's distance to the mean of a subject's templates) of the mean of those already
    taken. Otherwise the templates are zeroed and the capture starts again from the next
    good frame: ``step`` returns "restarted" and ``restarts`` counts it. Two people taking
    turns in front of the camera therefore never become one subject.

    The mean is kept as a running sum in one buffer, zeroed with the templates on a restart
    or wipe: no stacked copy of the held templates (before a restart, maybe a bystander's) is
    ever left in memory.
    """

    def __init__(self, pipeline: FacePipeline, needed: int = 5, spacing: int = 3, *, threshold: float = 0.3978,
                 max_gap: int = 10, min_overlap: float = 0.25) -> None:
        self.pipeline = pipeline
        self.needed = needed
        self.spacing = spacing
        self.threshold = threshold
        self.max_gap = max_gap
        self.min_overlap = min_overlap
        self.vectors: list[np.ndarray] = []
        self.box: tuple[float, float, float, float] | None = None  # the one face, as web/guidance.fraction
        self._sum: np.ndarray | None = None  # of self.vectors
        self.restarts = 0
        self._good = 0
        self._box: tuple[float, ...] | None = None  # the tracked face's last box
        self._gap = 0

    @property
    def done(self) -> bool:
        return len(self.vectors) >= self.needed

    def step(self, frame: np.ndarray) -> str | None:
        from .vision.tracking import iou

        try:
            faces = self.pipeline.faces(frame)
            self.box = None
            if len(faces) != 1:
                self._gap += 1
                if self._box is not None and self._gap > self.max_gap:
                    self._box = None  # the track is lost: whoever comes next starts afresh
                    if self.vectors:
                        return self._restart()
                return "no_face" if not faces else "several_faces"
            box = faces[0].detection.box
            from .web.guidance import fraction

            self.box = fraction(box, frame.shape)  # the enrolling person consented: drawn on their screen
            jumped = self._box is not None and iou(box, self._box) < self.min_overlap
            self._box, self._gap = box, 0
            if jumped and self.vectors:
                return self._restart()
            quality = self.pipeline.assess(frame, faces[0])
            if not quality.ok:
                return quality.reasons[0]
            self._good += 1
            if self._good % self.spacing == 1 or self.spacing == 1:
                vector = self.pipeline.embed(frame, faces[0]).vector
                if self.vectors and self._far(vector):
                    return self._restart()
                self.vectors.append(vector.copy())
                if self._sum is None:
                    self._sum = np.zeros_like(vector, dtype=np.float64)
                self._sum += vector
            return None
        finally:
            self.pipeline.wipe()

    def _far(self, vector: np.ndarray) -> bool:
        centre = self._sum / len(self.vectors)
        try:
            centre -= vector
            return float(np.linalg.norm(centre)) > self.threshold
        finally:
            centre.fill(0)

    def _restart(self) -> str:
        self.wipe()
        self._good = 0  # the next good frame is the new first template
        self.restarts += 1
        return "restarted"

    def wipe(self) -> None:
        for v in self.vectors:
            v.fill(0)
        self.vectors.clear()
        if self._sum is not None:
            self._sum.fill(0)
