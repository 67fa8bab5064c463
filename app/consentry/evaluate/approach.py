"""Bona fide approach clips made from a still: what a door camera sees of a person walking up.

The make-attacks machinery (:mod:`.attacks`) without the attack instrument: the photo's own
scene is warped so that its face grows from ``start_width`` to ``end_width`` pixels over the
clip (a scale ramp), drifts and rolls a little (a walking head), goes in and out of focus,
smears with motion, and every frame gets sensor noise, a drifting exposure and webcam-grade
JPEG compression. Deterministic for a given seed.

Real consecutive frames make the same errors: a descriptor's error in one frame is mostly
still there in the next, so the mean of 8 frames is worth about one look, not eight. The
clip therefore draws pose, blur and exposure from slow random processes (correlation time
``smooth_s``) and keeps only a small per-frame jitter; :mod:`.approach_check` measures the
result against the shared real clips (frame-to-frame residual correlation, and how much the
best window mean beats the best frame) before any threshold is calibrated on it.

Nothing here models any particular camera; it is a visit model whose figures are checked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .attacks import _background


@dataclass(frozen=True)
class ApproachOptions:
    """seconds / fps: clip length and frame rate (frame i is at i / fps s). size: (w, h) px.
    start_width / end_width: face box width (px) at the first frame and at the end of the walk
    (linear); ramp_s: seconds the walk lasts (None: the whole clip), the person stands after.
    shift_px / roll_deg / yaw / scale_wobble: amplitude of the slow pose processes (px at the
    frame, degrees, the relative foreshortening of one side of the face when the head turns,
    relative scale); smooth_s: their correlation time (s). jitter_px /
    jitter_deg: independent per-frame pose jitter. focus_sigma: (min, max) Gaussian blur px,
    slowly varying; motion_px: motion-blur length per px/frame of face motion, plus a floor.
    noise: sensor noise sigma (grey levels). exposure: relative gain drift amplitude.
    jpeg: (min, max) JPEG quality, slowly varying."""

    seconds: float = 3.0
    fps: float = 15.0
    size: tuple[int, int] = (640, 480)
    start_width: float = 70.0
    end_width: float = 130.0
    ramp_s: float | None = None
    shift_px: float = 35.0
    roll_deg: float = 12.0
    yaw: float = 0.5
    scale_wobble: float = 0.04
    smooth_s: float = 1.5
    jitter_px: float = 0.1
    jitter_deg: float = 0.1
    focus_sigma: tuple[float, float] = (0.3, 1.6)
    motion_px: float = 0.6
    noise: float = 1.5
    exposure: float = 0.25
    jpeg: tuple[int, int] = (70, 90)

    @property
    def frames(self) -> int:
        return max(1, int(round(self.seconds * self.fps)))


class _Slow:
    """A smooth random process of time (unit variance, correlation time ``tau`` s): a sum of
    random-phase sinusoids, so its value at any time is defined and 30 fps samples contain the
    15 fps ones."""

    def __init__(self, rng: np.random.Generator, tau: float, terms: int = 6) -> None:
        self.freq = rng.uniform(0.15, 1.0, terms) / max(tau, 1e-3)
        self.phase = rng.uniform(0, 2 * math.pi, terms)
        self.amp = rng.normal(0, 1, terms) * math.sqrt(2.0 / terms)

    def __call__(self, t: float) -> float:
        return float(np.sum(self.amp * np.sin(self.freq * 2 * math.pi * t + self.phase)))


def _motion_kernel(length: float, angle: float) -> np.ndarray | None:
    n = int(round(length))
    if n < 2:
        return None
    k = np.zeros((n, n), np.float32)
    c = (n - 1) / 2
    for s in np.linspace(-c, c, 2 * n):
        x, y = int(round(c + s * math.cos(angle))), int(round(c + s * math.sin(angle)))
        k[y, x] = 1.0
    return k / k.sum()


def _turn(cx: float, cy: float, fw: float, amount: float) -> np.ndarray:
    """A homography that foreshortens one side of the face (a head turning by a few degrees):
    the edge at ``+fw`` from the centre shrinks vertically by ``amount``, the other grows."""
    src = np.float32([[cx - fw, cy - fw], [cx + fw, cy - fw], [cx + fw, cy + fw], [cx - fw, cy + fw]])
    a, b = 1 + amount / 2, 1 - amount / 2
    shift = amount * fw * 0.3
    dst = np.float32([[cx - fw + shift, cy - fw * a], [cx + fw + shift, cy - fw * b],
                      [cx + fw + shift, cy + fw * b], [cx - fw + shift, cy + fw * a]])
    return cv2.getPerspectiveTransform(src, dst)


def _frame_rng(seed: int, t: float) -> np.random.Generator:
    """Per-frame randomness keyed by the frame's time, not its index (fps-independent)."""
    return np.random.default_rng([seed, int(round(t * 1000))])


def approach_frames(photo: np.ndarray, face_box: tuple[float, float, float, float], options: ApproachOptions,
                    seed: int = 0) -> Iterator[tuple[np.ndarray, tuple[float, float]]]:
    """(RGB frame, intended face centre px) for each frame of an approach of the face at
    ``face_box`` (x1, y1, x2, y2 in ``photo``, RGB) towards the camera."""
    rng = np.random.default_rng(seed)
    w, h = options.size
    x1, y1, x2, y2 = face_box
    fw, fcx, fcy = max(x2 - x1, 1.0), (x1 + x2) / 2, (y1 + y2) / 2
    tau = options.smooth_s
    sx, sy, roll, turn, wob, focus, expo, q = (_Slow(rng, tau) for _ in range(8))
    home = (w / 2 + rng.uniform(-0.08, 0.08) * w, h * rng.uniform(0.4, 0.5))
    gain0, heading = rng.uniform(0.85, 1.15), rng.uniform(0, 2 * math.pi)
    prev: tuple[float, float] | None = None
    bg = _background(h, w, rng).astype(np.float32)
    # The scene outside the photo is a plain wall (a mirrored border would add faces).
    edge = cv2.GaussianBlur(np.pad(np.ones((photo.shape[0] - 8, photo.shape[1] - 8), np.float32), 4), (0, 0), 2)
    n = options.frames
    for i in range(n):
        t = i / options.fps
        fr = _frame_rng(seed, t)
        ramp = min(1.0, t / options.ramp_s) if options.ramp_s else i / max(n - 1, 1)
        width = options.start_width + (options.end_width - options.start_width) * ramp
        scale = width / fw * (1 + options.scale_wobble * wob(t))
        angle = options.roll_deg * roll(t) + fr.normal(0, options.jitter_deg)
        px, py = home[0] + options.shift_px * sx(t), home[1] + options.shift_px * 0.6 * sy(t)
        cx, cy = px + fr.normal(0, options.jitter_px), py + fr.normal(0, options.jitter_px)
        m = cv2.getRotationMatrix2D((fcx, fcy), angle, scale)
        m[:, 2] += (cx - fcx, cy - fcy)
        hm = np.vstack([m, [0, 0, 1]]) @ _turn(fcx, fcy, fw, options.yaw * turn(t))
        warped = cv2.warpPerspective(photo, hm, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(edge, hm, (w, h))[..., None]
        frame = (warped * mask + bg * (1 - mask)).astype(np.uint8)
        lo, hi = options.focus_sigma
        sigma = lo + (hi - lo) * (0.5 + 0.5 * math.tanh(focus(t)))
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
        # Motion blur follows the smooth motion (the head's), not the per-frame jitter.
        speed = 0.0 if prev is None else math.hypot(px - prev[0], py - prev[1])
        kernel = _motion_kernel(options.motion_px * (1 + speed), heading + 0.3 * roll(t))
        if kernel is not None:
            frame = cv2.filter2D(frame, -1, kernel)
        prev = (px, py)
        gain = gain0 * (1 + options.exposure * math.tanh(expo(t)))
        img = frame.astype(np.float32) * gain
        img += fr.normal(0, options.noise, img.shape) * np.sqrt(np.clip(img, 16, 255) / 128)
        frame = np.clip(img, 0, 255).astype(np.uint8)
        qlo, qhi = options.jpeg
        quality = int(round(qlo + (qhi - qlo) * (0.5 + 0.5 * math.tanh(q(t)))))
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        yield (cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy() if ok else frame), (cx, cy)


def walk(base: ApproachOptions, seed: int, seconds: float = 5.0) -> ApproachOptions:
    """One visitor's walk: where the face starts (65-85 px: in a 640x480 frame the short-range
    detector finds no smaller face), how close it comes (120-180 px) and how long the walk
    takes (1.5-4.5 s; then the person stands), drawn from ``seed``; the rest from ``base``."""
    from dataclasses import replace

    rng = np.random.default_rng([seed, 7])
    return replace(base, seconds=seconds, start_width=float(rng.uniform(65, 85)),
                   end_width=float(rng.uniform(120, 180)), ramp_s=float(rng.uniform(1.5, 4.5)))
