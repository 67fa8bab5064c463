"""`consentry bench --images DIR | --video FILE`: the appliance's path frame by frame.

Per stage (decode, detect, landmarks, quality, refine (dlib's 5 points), align, embed, match) the median and 90th
percentile in milliseconds; our per-frame span is decoded frame → every face embedded, the
same span timed for face_recognition (face_locations HOG upsample 1 + face_encodings) when
``--vs face_recognition`` runs it on the same frames, alternating frame by frame.
"""

from __future__ import annotations

import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..camera.sources import IMAGE_SUFFIXES
from ..errors import ConfigError, ImageError, ModelError
from ..match import Gallery
from ..vision.align import extract_chip
from ..vision.image_io import read_image
from ..vision.pipeline import Face, FacePipeline
from .bench import stats
from .macs import frame_figures


class Clock:
    """Accumulates per-stage samples in milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def time(self, stage: str, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        self.samples[stage].append((time.perf_counter() - start) * 1000.0)
        return result


def image_frames(folder: Path, clock: Clock, limit: int | None) -> Iterator[np.ndarray]:
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"no images under {folder}")
    for path in paths[:limit]:
        try:
            yield clock.time("decode", read_image, path)
        except ImageError:
            continue


def video_frames(path: Path, clock: Clock, limit: int | None) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConfigError(f"cannot open video {path}")
    try:
        count = 0
        while limit is None or count < limit:
            ok, bgr = clock.time("decode", cap.read)
            if not ok:
                return
            count += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def synthetic_gallery(model: str, size: int, seed: int = 0) -> Gallery:
    """``size`` random unit vectors as 1:N search load (one template per subject)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gallery = Gallery(model)
    gallery.replace((f"s{i}", v) for i, v in enumerate(vectors))
    return gallery


def ours(pipeline: FacePipeline, gallery: Gallery, frame: np.ndarray, clock: Clock) -> int:
    """Every stage on every face; returns the number of faces embedded."""
    start = time.perf_counter()
    detections = clock.time("detect", pipeline.detector.detect, frame)
    embedded = 0
    vectors = []
    for slot, det in enumerate(detections):
        lm = clock.time("landmarks", pipeline.mesh.landmarks, frame, det)
        if lm is None:
            continue
        clock.time("quality", pipeline.quality.assess, frame, det, lm)
        five = clock.time("refine", pipeline.five_points, frame, Face(det, lm))
        clock.time("align", extract_chip, frame, five, pipeline.chip)
        emb = clock.time("embed", pipeline.embedder.embed, pipeline.chip, pipeline.vectors[slot])
        vectors.append(emb)
        embedded += 1
    clock.samples["frame"].append((time.perf_counter() - start) * 1000.0)
    if embedded:  # the span the model medians are compared with: frames that embedded a face
        clock.samples["frame_with_face"].append(clock.samples["frame"][-1])
    for emb in vectors:
        clock.time("match", gallery.identify, emb.vector, emb.model)
    if not detections:
        clock.samples["detect_no_face"].append(clock.samples["detect"][-1])
    pipeline.wipe()
    return embedded


def theirs(reference, frame: np.ndarray, clock: Clock) -> int:
    start = time.perf_counter()
    boxes = reference.locate(frame)
    encodings = reference.encode(frame, boxes) if boxes else []
    clock.samples["frame_face_recognition"].append((time.perf_counter() - start) * 1000.0)
    return len(encodings)


def no_face_frames(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Public-domain scikit-image scenes without a face, at the benchmark frame size."""
    from skimage import data

    h, w = shape[:2]
    return [cv2.resize(img, (w, h)) for img in (data.coffee(), data.rocket(), data.chelsea())]


def bench_frames(pipeline: FacePipeline, frames: Iterator[np.ndarray], clock: Clock, *,
                 gallery_size: int = 1000, reference=None) -> dict:
    gallery = synthetic_gallery(pipeline.embedder.name, gallery_size)
    from skimage import data

    ours(pipeline, gallery, data.astronaut(), Clock())  # warm-up: XNNPACK allocates on first invoke
    if reference is not None:
        theirs(reference, data.astronaut(), Clock())
    counts = {"frames": 0, "faces": 0, "faces_face_recognition": 0}
    first_shape = None
    wall = time.perf_counter()
    for frame in frames:
        first_shape = first_shape or frame.shape
        counts["frames"] += 1
        counts["faces"] += ours(pipeline, gallery, frame, clock)
        if reference is not None:
            counts["faces_face_recognition"] += theirs(reference, frame, clock)
        frame.fill(0)
    wall = time.perf_counter() - wall
    if not counts["frames"]:
        raise ConfigError("no readable frames to benchmark")
    for img in no_face_frames(first_shape):
        for _ in range(20):
            clock.time("detect_no_face", pipeline.detector.detect, img)
    result = {
        "runtime": pipeline.runtime, "threads": pipeline.options.threads, "embedder": pipeline.embedder.name,
        **counts, "gallery_size": gallery_size,
        "stages": {k: stats(v) for k, v in clock.samples.items()},
        "fps_ours": round(1000.0 / stats(clock.samples["frame"])["median_ms"], 1),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    medians = {k: v["median_ms"] for k, v in result["stages"].items()}
    try:
        result["macs"] = frame_figures(pipeline, medians)
    except ModelError as exc:  # a runtime without the flatbuffer schema still benches
        result["macs"] = {"error": str(exc)}
    if reference is not None:
        result["ratio_vs_face_recognition"] = round(
            stats(clock.samples["frame_face_recognition"])["median_ms"] / stats(clock.samples["frame"])["median_ms"], 1)
        result["face_recognition"] = f"dlib {reference.version} via {reference.name}"
    gallery.close()
    return result


def bench_search(model: str, size: int, runs: int = 200) -> dict:
    """1:N search time over ``size`` synthetic templates (the match stage alone)."""
    gallery = synthetic_gallery(model, size)
    query = np.random.default_rng(1).standard_normal(128).astype(np.float32)
    clock = Clock()
    for _ in range(runs):
        clock.time("search", gallery.identify, query, model)
    gallery.close()
    return {"gallery_size": size, **stats(clock.samples["search"])}
