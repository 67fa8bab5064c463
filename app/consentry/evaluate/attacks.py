"""Presentation attacks made from a still: what a camera sees when someone holds up a photo.

Species (ISO/IEC 30107 "presentation attack instrument" kinds):

- ``print_flat``: the photo on paper with a white border, held in a hand in front of a
  background: it drifts, tilts and comes closer over the clip.
- ``print_bent``: the same print curved about its vertical axis.
- ``screen``: the photo on a phone: black bezel, a brighter and bluer picture, a glare band.
- ``replay``: frames of a bona fide clip shown on that phone screen.

Every frame is blurred, noised and JPEG-compressed like a cheap webcam. Deterministic for
a given seed. Nothing here is a model of any real attack set; it is a floor, not a ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np

SPECIES = ("print_flat", "print_bent", "screen", "replay")


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(60, 200, 3)
    ramp = np.linspace(-40, 40, w)[None, :, None] * rng.uniform(-1, 1)
    img = np.clip(base[None, None, :] + ramp + rng.normal(0, 6, (h, w, 3)), 0, 255)
    return cv2.GaussianBlur(img.astype(np.uint8), (0, 0), 3)


def _instrument(photo: np.ndarray, species: str) -> np.ndarray:
    """The photo as the instrument shows it: paper with a white border, or a phone."""
    h, w = photo.shape[:2]
    if species.startswith("print"):
        faded = (photo.astype(np.float32) * 0.82 + np.array([30, 28, 20], np.float32)).clip(0, 255)
        m = max(h, w) // 12
        return cv2.copyMakeBorder(faded.astype(np.uint8), m, m, m, m, cv2.BORDER_CONSTANT, value=(235, 235, 228))
    lit = photo.astype(np.float32) * 1.1 + np.array([0, 6, 22], np.float32)
    glare = np.linspace(0, 1, w)[None, :] + np.linspace(0, 1, h)[:, None]
    lit += 70.0 * np.exp(-((glare - 0.8) ** 2) / 0.02)[..., None]
    m = max(h, w) // 14
    return cv2.copyMakeBorder(lit.clip(0, 255).astype(np.uint8), m, m * 2, m, m * 2, cv2.BORDER_CONSTANT,
                              value=(12, 12, 14))


def _bend(img: np.ndarray, amount: float) -> np.ndarray:
    h, w = img.shape[:2]
    xs = np.linspace(-1, 1, w, dtype=np.float32)
    map_x = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    squeeze = (1 - amount * xs**2)[None, :]
    map_y = (np.arange(h, dtype=np.float32)[:, None] - h / 2) / squeeze + h / 2
    return cv2.remap(img, map_x, map_y.astype(np.float32), cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def _webcam(frame: np.ndarray, rng: np.random.Generator, quality: int = 70) -> np.ndarray:
    frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.6, 1.4))
    frame = np.clip(frame.astype(np.float32) + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else frame


def attack_frames(photo: np.ndarray, species: str, *, frames: int = 30, size: tuple[int, int] = (640, 480),
                  seed: int = 0, replay: list[np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """RGB frames of ``photo`` (RGB) presented as ``species``; ``replay`` frames for ``replay``."""
    if species not in SPECIES:
        raise ValueError(f"unknown species {species!r}; one of {SPECIES}")
    rng = np.random.default_rng(seed)
    w, h = size
    bg = _background(h, w, rng)
    phase = rng.uniform(0, 2 * math.pi)
    for i in range(frames):
        src = replay[i % len(replay)] if species == "replay" and replay else photo
        inst = _instrument(src, "screen" if species == "replay" else species)
        if species == "print_bent":
            inst = _bend(inst, 0.18)
        t = i / max(frames - 1, 1)
        ih, iw = inst.shape[:2]
        scale = (0.75 + 0.3 * t) * h / ih  # held close to the kiosk camera, brought closer
        angle = 6 * math.sin(phase + 2 * math.pi * t)  # a hand's sway
        cx = w / 2 + 25 * math.sin(phase + 3 * t)
        cy = h / 2 + 15 * math.cos(phase + 2 * t)
        m = cv2.getRotationMatrix2D((iw / 2, ih / 2), angle, scale)
        m[:, 2] += (cx - iw / 2, cy - ih / 2)
        mask = cv2.warpAffine(np.full((ih, iw), 255, np.uint8), m, (w, h))
        warped = cv2.warpAffine(inst, m, (w, h))
        frame = np.where(mask[..., None] > 127, warped, bg)
        yield _webcam(frame, rng)
