"""Build the vision pipeline and tracker from validated settings."""

from __future__ import annotations

from ..config import QualityConfig, Settings, TrackingConfig, VisionConfig
from .detector import DetectorOptions
from .pipeline import FacePipeline, VisionOptions
from .quality import QualityOptions
from .tracking import FaceTracker, TrackingOptions


def pipeline_from_config(cfg: VisionConfig, quality: QualityConfig | None = None) -> FacePipeline:
    options = VisionOptions(
        detector=cfg.detector, landmarks=cfg.landmarks, embedder=cfg.embedder, flip=cfg.flip, threads=cfg.threads,
        refine="dlib_shape_predictor_5" if cfg.refine_landmarks else None,
        still_fallback="blazeface_full_range" if cfg.still_fallback else None,
        runtime=cfg.runtime,
        detector_options=DetectorOptions(min_score=cfg.min_detection_score, max_faces=cfg.max_faces),
        quality=QualityOptions(**(quality or QualityConfig()).model_dump()),
    )
    return FacePipeline(options, models_dir=cfg.models_dir)


def tracking_options(cfg: TrackingConfig) -> TrackingOptions:
    return TrackingOptions(min_iou=cfg.min_iou, max_missed=cfg.max_missed, recheck_frames=cfg.recheck_frames,
                           max_embeds=cfg.max_embeds_per_frame)


def tracker_from_settings(settings: Settings) -> FaceTracker:
    """The serial tracker, or with ``tracking.pipeline = "detect-ahead"`` the one that detects
    the next frame on a second thread (docs/performance-notes.md: the measured trade-off)."""
    from .tracking import AheadTracker

    kind = AheadTracker if settings.tracking.pipeline == "detect-ahead" else FaceTracker
    return kind(pipeline_from_config(settings.vision, settings.quality), tracking_options(settings.tracking))
