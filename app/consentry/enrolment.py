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
    returns the reason a frame was not usable (a key of web.state.ADVICE) or None."""

    def __init__(self, pipeline: FacePipeline, needed: int = 5, spacing: int = 3) -> None:
        self.pipeline = pipeline
        self.needed = needed
        self.spacing = spacing
        self.vectors: list[np.ndarray] = []
        self.box: tuple[float, float, float, float] | None = None  # the one face, as web/guidance.fraction
        self._good = 0

    @property
    def done(self) -> bool:
        return len(self.vectors) >= self.needed

    def step(self, frame: np.ndarray) -> str | None:
        try:
            faces = self.pipeline.faces(frame)
            self.box = None
            if len(faces) != 1:
                return "no_face" if not faces else "several_faces"
            from .web.guidance import fraction

            self.box = fraction(faces[0].detection.box, frame.shape)  # the enrolling person consented
            quality = self.pipeline.assess(frame, faces[0])
            if not quality.ok:
                return quality.reasons[0]
            self._good += 1
            if self._good % self.spacing == 1 or self.spacing == 1:
                self.vectors.append(self.pipeline.embed(frame, faces[0]).vector.copy())
            return None
        finally:
            self.pipeline.wipe()

    def wipe(self) -> None:
        for v in self.vectors:
            v.fill(0)
        self.vectors.clear()
