"""Build the vision pipeline from validated settings."""

from __future__ import annotations

from ..config import VisionConfig
from .detector import DetectorOptions
from .pipeline import FacePipeline, VisionOptions


def pipeline_from_config(cfg: VisionConfig) -> FacePipeline:
    options = VisionOptions(
        detector=cfg.detector, landmarks=cfg.landmarks, embedder=cfg.embedder, threads=cfg.threads,
        runtime=cfg.runtime,
        detector_options=DetectorOptions(min_score=cfg.min_detection_score, max_faces=cfg.max_faces),
    )
    return FacePipeline(options, models_dir=cfg.models_dir)
