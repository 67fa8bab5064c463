"""Still-image lifecycle steps shared by the CLI and the kiosk: templates for enrolment
(exactly one good face per image) and identification of every face in a photo."""

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
            return None
        finally:
            self.pipeline.wipe()

    def _far(self, vector: np.ndarray) -> bool:
        centre = np.mean(self.vectors, axis=0)
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
