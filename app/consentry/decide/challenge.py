"""The active challenge: a random action or two, asked on the kiosk screen, checked on the mesh.

Actions: turn the head to the person's left or right (yaw from the mesh's cheek points, which
carry depth), and blink (the eye regions' contrast, std/mean of grey values inside the mesh's
eye contours, drops when the lids close). On the shared Yale open/closed pairs the closed/open
ratio is below 0.8 for 12 of 15 people (0.53-0.77; two wear glasses); the face mesh's own eye
points do not follow closed lids. A blink counts only while the head faces the camera, because
a turned head also lowers that contrast. A photo cannot blink; a photo tilted in the hand can
mimic a turn, so the default challenge is a blink and a random turn, in random order.

Measured quantities exist only for a track that matched an enrolled subject, live only in
:class:`Challenge` and are dropped with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

PROMPTS = {"turn_left": "Turn your head to your left", "turn_right": "Turn your head to your right",
           "blink": "Blink"}
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
CHEEKS = (234, 454)  # image-left and image-right face edge


@dataclass(frozen=True)
class ChallengeOptions:
    """actions: what may be asked; count: actions per challenge (with 2, one is always a blink);
    step_s: seconds allowed per action; turn_deg: yaw change that counts as a turn;
    closed_ratio / open_ratio: eye contrast against the open baseline for closed / open again."""

    actions: tuple[str, ...] = ("turn_left", "turn_right", "blink")
    count: int = 2
    step_s: float = 5.0
    turn_deg: float = 20.0
    frontal_deg: float = 12.0
    closed_ratio: float = 0.8
    open_ratio: float = 0.9


def yaw_degrees(mesh: np.ndarray) -> float:
    """Head yaw from the mesh; positive when the person turns to their own left."""
    v = mesh[CHEEKS[1]] - mesh[CHEEKS[0]]
    return float(np.degrees(np.arctan2(v[2], v[0])))


def eye_contrast(image: np.ndarray, mesh: np.ndarray) -> float:
    """Mean over both eyes of std/mean of grey values inside the eye contour."""
    x1, y1 = np.floor(mesh[RIGHT_EYE + LEFT_EYE, :2].min(axis=0)).astype(int) - 2
    x2, y2 = np.ceil(mesh[RIGHT_EYE + LEFT_EYE, :2].max(axis=0)).astype(int) + 2
    h, w = image.shape[:2]
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 4 or y2 - y1 < 2:
        return 0.0
    grey = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_RGB2GRAY).astype(np.float32)
    mask = np.zeros(grey.shape, np.uint8)
    values = []
    try:
        for eye in (RIGHT_EYE, LEFT_EYE):
            mask.fill(0)
            cv2.fillPoly(mask, [np.round(mesh[eye, :2] - (x1, y1)).astype(np.int32)], 1)
            inside = grey[mask > 0]
            if inside.size:
                values.append(float(inside.std() / max(float(inside.mean()), 1.0)))
        return float(np.mean(values)) if values else 0.0
    finally:
        grey.fill(0)


def choose_actions(options: ChallengeOptions, rng: random.Random) -> list[str]:
    actions = list(options.actions)
    if options.count >= 2 and "blink" in actions and len(actions) > 1:
        turns = [a for a in actions if a != "blink"]
        chosen = ["blink", *rng.sample(turns, min(options.count - 1, len(turns)))]
    else:
        chosen = rng.sample(actions, min(options.count, len(actions)))
    rng.shuffle(chosen)
    return chosen


@dataclass
class Challenge:
    """One track's challenge: ``observe`` each frame until ``state`` is passed or failed."""

    subject: str
    actions: list[str]
    options: ChallengeOptions
    started: float
    step: int = 0
    state: str = "pending"
    _yaw0: float | None = None
    _open: float = 0.0
    _closed: bool = False
    _step_started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._step_started = self.started

    @property
    def prompt(self) -> str | None:
        return PROMPTS[self.actions[self.step]] if self.state == "pending" else None

    def observe(self, image: np.ndarray, mesh: np.ndarray, now: float) -> str:
        if self.state != "pending":
            return self.state
        if now - self._step_started > self.options.step_s:
            self.state = "failed"
            return self.state
        if self._done(self.actions[self.step], image, mesh):
            self.step += 1
            self._yaw0, self._open, self._closed, self._step_started = None, 0.0, False, now
            if self.step == len(self.actions):
                self.state = "passed"
        return self.state

    def _done(self, action: str, image: np.ndarray, mesh: np.ndarray) -> bool:
        yaw = yaw_degrees(mesh)
        if self._yaw0 is None:
            self._yaw0 = yaw
        if action == "turn_left":
            return yaw - self._yaw0 >= self.options.turn_deg
        if action == "turn_right":
            return self._yaw0 - yaw >= self.options.turn_deg
        if abs(yaw) > self.options.frontal_deg:
            return False  # a turned head lowers the eye contrast too: blinks count facing the camera
        contrast = eye_contrast(image, mesh)
        if not self._closed:
            self._open = max(self._open, contrast)
            self._closed = self._open > 0 and contrast < self.options.closed_ratio * self._open
            return False
        return contrast >= self.options.open_ratio * self._open

    def wipe(self) -> None:
        self._yaw0, self._open, self._closed = None, 0.0, False


def new_challenge(subject: str, options: ChallengeOptions, now: float,
                  rng: Callable[[], random.Random] = random.SystemRandom) -> Challenge:
    return Challenge(subject, choose_actions(options, rng()), options, now)
