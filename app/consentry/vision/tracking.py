"""Faces followed across frames by box overlap, embedded only when a track needs it.

A track is embedded on each good frame until the caller settles it (its decision is
final), then only every ``recheck_frames`` frames, so a settled face costs detection and
landmarks only. Track ids are process-local counters, never derived from a face.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from .detector import box_iou
from .pipeline import Face, FacePipeline
from .quality import Quality
from .types import Embedding


@dataclass(frozen=True)
class TrackingOptions:
    """min_iou: box overlap that continues a track. max_missed: frames a track survives
    unseen. recheck_frames: frames between embeddings of a settled track. max_embeds: faces
    gated and embedded per frame at most, largest and most central first (the others wait)."""

    min_iou: float = 0.3
    max_missed: int = 5
    recheck_frames: int = 15
    max_embeds: int = 3


@dataclass
class Track:
    id: int
    box: tuple[float, float, float, float]
    last_seen: int
    last_embedded: int | None = None
    settled: bool = False
    frames: int = 0


@dataclass(frozen=True, eq=False)
class Observation:
    """One face in one frame: its track, quality and (when embedded this frame) embedding.

    ``quality`` is None when the track did not need an embedding this frame (a settled track
    between re-checks): the gates are only measured when their answer is used.

    ``embedding.vector`` is a view of a pipeline-owned slot and is zeroed by
    :meth:`FacePipeline.wipe`; it is None when the face was gated or did not need one.
    """

    track_id: int
    face: Face
    quality: Quality | None
    embedding: Embedding | None = field(default=None)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(box_iou(np.asarray(a[:4]), np.asarray([b[:4]]))[0])


class FaceTracker:
    """Frame → observations: detect, landmark, track, gate and (when needed) embed."""

    def __init__(self, pipeline: FacePipeline, options: TrackingOptions | None = None) -> None:
        self.pipeline = pipeline
        self.options = options or TrackingOptions()
        self.tracks: dict[int, Track] = {}
        self.frame_index = 0
        self.timings: dict[str, float] = {}
        self.observed_frame: np.ndarray | None = None
        self._ids = itertools.count(1)

    def process(self, image: np.ndarray) -> list[Observation]:
        """Observations of every face; ``timings`` keeps this frame's per-stage milliseconds.
        ``observed_frame`` is the frame the observations belong to (here: ``image``)."""
        self.observed_frame = image
        return self._observe(image, *self._detect(image))

    def release(self) -> None:
        """The caller is done with ``observed_frame`` (its own frame here: nothing to zero)."""

    def close(self) -> None:
        self.pipeline.close()

    def _detect(self, image: np.ndarray) -> tuple[list[Face], float]:
        t0 = time.perf_counter()
        faces = self.pipeline.faces(image)
        return faces, (time.perf_counter() - t0) * 1000.0

    def _observe(self, image: np.ndarray, faces: list[Face], detect_ms: float) -> list[Observation]:
        self.frame_index += 1
        assigned = self._assign(faces)
        self._expire()
        chosen = self._embed_budget(assigned, image.shape[1], image.shape[0])
        out, gate_s, embed_s = [], 0.0, 0.0
        for slot, (face, track) in enumerate(assigned):
            g0 = time.perf_counter()
            quality = self.pipeline.assess(image, face) if track.id in chosen else None
            g1 = time.perf_counter()
            embedding = None
            if quality is not None and quality.ok:
                embedding = self.pipeline.embed(image, face, slot=slot)
                track.last_embedded = self.frame_index
            gate_s, embed_s = gate_s + g1 - g0, embed_s + time.perf_counter() - g1
            out.append(Observation(track.id, face, quality, embedding))
        self.timings = {"detect+landmarks": detect_ms, "quality": gate_s * 1000.0, "align+embed": embed_s * 1000.0}
        return out

    def settle(self, track_id: int, settled: bool = True) -> None:
        """Mark a track's decision final (re-checked at the interval) or open again."""
        if track_id in self.tracks:
            self.tracks[track_id].settled = settled

    def wipe(self) -> None:
        self.pipeline.wipe()

    def _embed_budget(self, assigned: list[tuple[Face, Track]], width: int, height: int) -> set[int]:
        """Ids of the tracks embedded this frame: those that need it, largest face first, then
        the most central, at most ``max_embeds``."""
        def rank(pair: tuple[Face, Track]) -> tuple[float, float]:
            x1, y1, x2, y2 = pair[0].detection.box[:4]
            off = ((x1 + x2 - width) / 2.0) ** 2 + ((y1 + y2 - height) / 2.0) ** 2
            return -(x2 - x1) * (y2 - y1), off
        wanted = sorted((p for p in assigned if self._needs_embedding(p[1])), key=rank)
        return {track.id for _, track in wanted[: self.options.max_embeds]}

    def _needs_embedding(self, track: Track) -> bool:
        if not track.settled or track.last_embedded is None:
            return True
        return self.frame_index - track.last_embedded >= self.options.recheck_frames

    def _assign(self, faces: list[Face]) -> list[tuple[Face, Track]]:
        """Greedy highest-overlap matching of faces to live tracks; the rest start tracks."""
        pairs = sorted(((iou(f.detection.box, t.box), i, t.id) for i, f in enumerate(faces)
                        for t in self.tracks.values()), reverse=True)
        taken_faces: dict[int, Track] = {}
        taken_tracks: set[int] = set()
        for overlap, i, tid in pairs:
            if overlap < self.options.min_iou:
                break
            if i not in taken_faces and tid not in taken_tracks:
                taken_faces[i] = self.tracks[tid]
                taken_tracks.add(tid)
        result = []
        for i, face in enumerate(faces):
            track = taken_faces.get(i)
            if track is None:
                track = Track(next(self._ids), face.detection.box, self.frame_index)
                self.tracks[track.id] = track
            track.box = face.detection.box
            track.last_seen = self.frame_index
            track.frames += 1
            result.append((face, track))
        return result

    def _expire(self) -> list[int]:
        gone = [tid for tid, t in self.tracks.items()
                if self.frame_index - t.last_seen > self.options.max_missed]
        for tid in gone:
            del self.tracks[tid]
        return gone


class AheadTracker(FaceTracker):
    """``tracking.pipeline = "detect-ahead"``: frame N is detected (detector and face mesh) on a
    worker thread while frame N-1 is gated and embedded on the caller's — different
    interpreters, so the two run on two cores. :meth:`process` therefore returns the
    *previous* frame's observations, one frame late, and ``observed_frame`` is this tracker's
    copy of that frame. It holds at most two copies, both its own. The caller zeroes the
    observed one with :meth:`release` as soon as its decisions are made; the other is the frame
    in flight. :meth:`close` zeroes both."""

    def __init__(self, pipeline: FacePipeline, options: TrackingOptions | None = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        super().__init__(pipeline, options)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect-ahead")
        self._copies: list[np.ndarray | None] = [None, None]
        self._turn = 0
        self._in_flight = None  # (future, copy)

    def process(self, image: np.ndarray) -> list[Observation]:
        copy = self._copies[self._turn]
        if copy is None or copy.shape != image.shape or copy.dtype != image.dtype:
            if copy is not None:
                copy.fill(0)  # a camera that changed size: the old copy is zeroed before it goes
            copy = self._copies[self._turn] = np.empty_like(image)
        self._turn ^= 1
        np.copyto(copy, image)
        previous, self._in_flight = self._in_flight, (self._pool.submit(self._detect, copy), copy)
        if previous is None:
            self.observed_frame = None
            return []
        future, frame = previous
        self.observed_frame = frame
        return self._observe(frame, *future.result())

    def release(self) -> None:
        if self.observed_frame is not None:
            self.observed_frame.fill(0)
            self.observed_frame = None

    def close(self) -> None:
        try:
            self._pool.shutdown(wait=True)  # the frame in flight is finished (or failed) first
        finally:
            for copy in self._copies:
                if copy is not None:
                    copy.fill(0)
            self.observed_frame = self._in_flight = None
            super().close()
