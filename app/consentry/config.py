"""Configuration: one TOML file, validated by pydantic; unknown keys are errors.

Secrets never live here (keys come from files, credentials or the environment in later
rooms). Every field carries a description so ``consentry config check`` can explain it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VisionConfig(_Strict):
    detector: Literal["blazeface_short_range", "blazeface_full_range"] = Field(
        "blazeface_short_range",
        description="Face detector from models/manifest.json: short range for a kiosk (faces within "
        "about 2 m), full range for wide scenes with small faces.")
    landmarks: Literal["face_mesh"] = Field("face_mesh", description="Landmark model name in the manifest.")
    embedder: Literal["dlib_resnet_v1_int8", "dlib_resnet_v1_float16", "dlib_resnet_v1_float32"] = Field(
        "dlib_resnet_v1_int8", description="Face embedder; templates of one embedder are never compared "
        "with another's.")
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads per model; measure with "
                         "`consentry bench` before raising (a second thread did not help on 2 x86 cores).")
    runtime: Literal["auto", "ai-edge-litert", "tflite-runtime"] = Field(
        "auto", description="TFLite runtime; auto tries ai-edge-litert then tflite-runtime.")
    min_detection_score: float = Field(0.5, gt=0, lt=1, description="Detector confidence to keep a face.")
    max_faces: int = Field(20, ge=1, le=100, description="At most this many faces per frame.")
    models_dir: Path | None = Field(None, description="Folder holding manifest.json; default: the "
                                    "checkout's models/ or /usr/share/consentry/models.")


class MatchConfig(_Strict):
    threshold: float = Field(0.6, gt=0, lt=2, description="L2 distance at or below which two faces are "
                             "the same person (dlib's published 0.6 until `consentry calibrate` sets one "
                             "for a stated false-match rate).")


class Settings(_Strict):
    schema_version: int = Field(SCHEMA_VERSION, description="Config schema version.")
    vision: VisionConfig = VisionConfig()
    match: MatchConfig = MatchConfig()


def load_settings(path: Path | None) -> Settings:
    """Defaults when ``path`` is None; otherwise the validated file."""
    if path is None:
        return Settings()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config file {path}: {problems}") from exc
    if settings.schema_version != SCHEMA_VERSION:
        raise ConfigError(f"config file {path} has schema_version {settings.schema_version}; "
                          f"this Consentry reads {SCHEMA_VERSION}")
    return settings
