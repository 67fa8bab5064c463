"""Per-stage runtime on this machine: median and 90th percentile of N runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from ..errors import EvaluationError
from ..runtime import Manifest, Model
from ..vision.align import extract_chip
from ..vision.detector import BlazeFaceDetector
from ..vision.embedder import FaceEmbedder
from ..vision.landmarks import FaceMesh


def stats(samples: list[float]) -> dict:
    """Median and 90th percentile (ms) of timing samples."""
    return {"median_ms": round(statistics.median(samples), 3),
            "p90_ms": round(float(np.percentile(samples, 90)), 3), "runs": len(samples)}


def _time(fn: Callable[[], object], runs: int) -> dict:
    fn()  # warm-up: first invoke allocates XNNPACK buffers
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return stats(samples)


def bench(image: np.ndarray, runs: int = 100, threads: int = 1, manifest: Manifest | None = None) -> dict:
    """Time detector, landmarks, aligner and each embedder on one image's largest face."""
    manifest = manifest or Manifest.load()
    results: dict[str, dict] = {}
    det = BlazeFaceDetector(Model(manifest.get("blazeface_short_range"), threads=threads))
    full = BlazeFaceDetector(Model(manifest.get("blazeface_full_range"), threads=threads))
    mesh = FaceMesh(Model(manifest.get("face_mesh"), threads=threads))
    faces = det.detect(image)
    if not faces:
        raise EvaluationError("the benchmark image has no face")
    face = faces[0]
    lm = mesh.landmarks(image, face)
    if lm is None:
        raise EvaluationError("the benchmark face has no landmarks")
    chip = np.zeros((150, 150, 3), np.uint8)
    results["detector_short_range"] = _time(lambda: det.detect(image), runs)
    results["detector_full_range"] = _time(lambda: full.detect(image), runs)
    results["landmarks"] = _time(lambda: mesh.landmarks(image, face), runs)
    results["aligner"] = _time(lambda: extract_chip(image, lm.five, out=chip), runs)
    for name in ("dlib_resnet_v1_int8", "dlib_resnet_v1_float16", "dlib_resnet_v1_float32"):
        emb = FaceEmbedder(Model(manifest.get(name), threads=threads))
        results[f"embedder_{name.rsplit('_', 1)[-1]}"] = _time(lambda e=emb: e.embed(chip), runs)
    from ..vision.antispoof import AntiSpoof

    # liveness runs only while a matched track waits for its verdict (liveness.frames frames a visit)
    with AntiSpoof(manifest, threads=threads) as spoof:
        results["liveness_passive"] = _time(lambda: spoof.score(image, face.box), runs)
    return {"threads": threads, "image": list(image.shape), "stages": results,
            "runtime": f"{det.model.runtime.name} {det.model.runtime.version}"}
