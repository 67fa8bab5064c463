"""Is the matched face a live person? Judged per track, only for tracks that already match.

A stranger's track never reaches this room: the door asks only about a track whose
evidence names an enrolled subject, so no liveness figure about a stranger exists.

Three cues, each able to decide on its own (they are never averaged into one score):

- passive: the mean P(real) of the anti-spoofing networks over ``frames`` frames of the
  track; below ``threshold`` the face fails (``passive_spoof``).
- picture edge: a print's paper edge or a screen's bezel is a closed outline around the whole
  face (``decide/frame_edge.py``); seen in ``frame_edge`` of the scored frames, the face fails
  (``picture_edge``).
- planar: a photo, however it is tilted, moves as one plane, so its mesh points map from one
  frame to another through one homography; a real head that turns does not (the nose moves
  against the cheeks). When the points have deformed well beyond a similarity (the face
  turned or tilted) and one homography still explains them to within ``planar_residual`` of
  the eye distance, the face fails (``planar_motion``). Without such motion it abstains.
- frozen source: when, in every pair of consecutive scored frames, less than ``frozen_change``
  of the face box's pixels changed at all, the frames are a still injected as a stream or a
  source that froze (``decide/frozen.py``): the face fails (``frozen_source``).

Per-track state (scores, a few mesh snapshots) is zeroed when the verdict is reached or the
track ends. Repeated failures for one subject raise a presentation-attack alarm and a lockout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from ..bus import messages
from .challenge import Challenge, ChallengeOptions, new_challenge
from .frame_edge import framed
from .frozen import changed_share, face_grey

log = logging.getLogger(__name__)

Mode = Literal["passive", "challenge", "off"]
LivenessState = Literal["pending", "passed", "failed"]
# A stable subset of the 468 mesh points: face oval, brows, eyes, nose ridge and tip, lips.
POINTS = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                   152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
                   70, 105, 107, 336, 334, 300, 33, 133, 362, 263, 1, 4, 5, 6, 168, 197, 195, 61, 291, 0, 17])
RIGHT_EYE, LEFT_EYE = 33, 263


@dataclass(frozen=True)
class LivenessOptions:
    """threshold: mean P(real) to pass; frames: scored frames per verdict; planar_*: the
    rigid-plane veto (deformation beyond a similarity and homography residual, both as
    fractions of the eye distance); failures within failure_window_s trigger lockout_s."""

    mode: Mode = "passive"
    threshold: float = 0.9
    unclear: float = 0.5
    challenge_unclear: bool = True
    frames: int = 4
    frame_edge: int = 2
    planar_motion: float = 0.04
    planar_residual: float = 0.01
    frozen_change: float = 0.01
    max_failures: int = 3
    failure_window_s: float = 300.0
    lockout_s: float = 120.0
    challenge: ChallengeOptions = ChallengeOptions()

    @classmethod
    def from_config(cls, cfg, **overrides) -> LivenessOptions:
        """From ``Settings.liveness`` (config.LivenessConfig)."""
        raw = cfg.model_dump()
        challenge = ChallengeOptions(actions=tuple(raw.pop("challenge_actions")), count=raw.pop("challenge_count"),
                                     step_s=raw.pop("challenge_step_s"))
        return cls(**{**raw, **overrides, "challenge": challenge})


@dataclass(frozen=True)
class LivenessVerdict:
    """state: pending until ``frames`` scores exist, a cue vetoes or a challenge ends; reason: a
    code on failure; prompt: what the kiosk should ask the person to do while a challenge runs."""

    state: LivenessState
    reason: str | None = None
    prompt: str | None = None


@dataclass
class _TrackCues:
    subject: str
    scores: list[float] = field(default_factory=list)
    first: np.ndarray | None = None  # (len(POINTS), 2) mesh points of the first scored frame
    planar: bool = False
    framed: int = 0
    challenge: Challenge | None = None
    before: np.ndarray | None = None  # grey face box of the previous scored frame
    before_box: tuple = ()
    pairs: int = 0
    changed: bool = False

    def wipe(self) -> None:
        self.scores.clear()
        if self.challenge is not None:
            self.challenge.wipe()
            self.challenge = None
        if self.first is not None:
            self.first.fill(0)
            self.first = None
        if self.before is not None:
            self.before.fill(0)
            self.before = None


def planar_fit(first: np.ndarray, now: np.ndarray) -> tuple[float, float]:
    """(deformation beyond a similarity, homography residual), both RMS over the points as a
    fraction of the eye distance in ``first``."""
    iod = float(np.linalg.norm(first[list(POINTS).index(RIGHT_EYE)] - first[list(POINTS).index(LEFT_EYE)]))
    if iod < 1.0:
        return 0.0, 0.0
    sim, _ = cv2.estimateAffinePartial2D(first, now, method=cv2.LMEDS)
    h, _ = cv2.findHomography(first, now, 0)
    if sim is None or h is None:
        return 0.0, 0.0
    by_sim = first @ sim[:, :2].T + sim[:, 2]
    ones = np.hstack([first, np.ones((len(first), 1))])
    proj = ones @ h.T
    by_h = proj[:, :2] / proj[:, 2:3]
    deform = float(np.sqrt(np.mean(np.sum((now - by_sim) ** 2, axis=1)))) / iod
    residual = float(np.sqrt(np.mean(np.sum((now - by_h) ** 2, axis=1)))) / iod
    return deform, residual


class LivenessJudge:
    """Liveness of matched tracks; ``scorer(frame, box) -> P(real)`` is the passive model."""

    def __init__(self, options: LivenessOptions, scorer: Callable[[np.ndarray, tuple], float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.scorer = scorer
        self.clock = clock
        self._tracks: dict[int, _TrackCues] = {}

    def observe(self, track_id: int, subject: str, frame: np.ndarray, box: tuple, mesh: np.ndarray | None
                ) -> LivenessVerdict:
        """One more frame of a track that matches ``subject``; call only for matched tracks."""
        cues = self._tracks.get(track_id)
        if cues is None or cues.subject != subject:
            if cues is not None:
                cues.wipe()
            cues = self._tracks[track_id] = _TrackCues(subject)
        if cues.challenge is not None:
            return self._challenge(track_id, cues.challenge, frame, mesh)
        if mesh is not None:
            points = np.asarray(mesh, dtype=np.float64)[POINTS, :2]
            if cues.first is None:
                cues.first = points.copy()
            else:
                deform, residual = planar_fit(cues.first, points)
                cues.planar = cues.planar or (deform >= self.options.planar_motion
                                              and residual <= self.options.planar_residual)
            points.fill(0)
        if cues.planar:
            return self._final(track_id, LivenessVerdict("failed", "planar_motion"))
        if self.options.frame_edge:
            cues.framed += framed(frame, box)
            if cues.framed >= self.options.frame_edge:
                return self._final(track_id, LivenessVerdict("failed", "picture_edge"))
        self._compare(cues, frame, box)
        cues.scores.append(float(self.scorer(frame, box)))
        if len(cues.scores) < self.options.frames:
            return LivenessVerdict("pending")
        if cues.pairs and not cues.changed:
            return self._final(track_id, LivenessVerdict("failed", "frozen_source"))
        return self._passive(track_id, cues, float(np.mean(cues.scores)))

    def _compare(self, cues: _TrackCues, frame: np.ndarray, box: tuple) -> None:
        """Did the face box change since the previous scored frame? Then keep this one's."""
        if cues.before is not None:
            cues.pairs += 1
            cues.changed = cues.changed or changed_share(cues.before, frame, cues.before_box) >= \
                self.options.frozen_change
            cues.before.fill(0)
        cues.before, cues.before_box = face_grey(frame, box), tuple(box[:4])

    def _passive(self, track_id: int, cues: _TrackCues, mean: float) -> LivenessVerdict:
        """The passive verdict: clear pass, clear fail, or (unclear, or challenge mode) a challenge."""
        opts = self.options
        if mean < opts.unclear or (mean < opts.threshold and not opts.challenge_unclear):
            return self._final(track_id, LivenessVerdict("failed", "passive_spoof"))
        if mean >= opts.threshold and opts.mode != "challenge":
            return self._final(track_id, LivenessVerdict("passed"))
        cues.scores.clear()
        cues.challenge = new_challenge(cues.subject, opts.challenge, self.clock())
        return LivenessVerdict("pending", prompt=cues.challenge.prompt)

    def _challenge(self, track_id: int, challenge: Challenge, frame: np.ndarray, mesh: np.ndarray | None
                   ) -> LivenessVerdict:
        state = challenge.observe(frame, mesh, self.clock()) if mesh is not None else challenge.state
        if state == "passed":
            return self._final(track_id, LivenessVerdict("passed"))
        if state == "failed":
            return self._final(track_id, LivenessVerdict("failed", "challenge_failed"))
        return LivenessVerdict("pending", prompt=challenge.prompt)

    def _final(self, track_id: int, verdict: LivenessVerdict) -> LivenessVerdict:
        self.forget(track_id)
        return verdict

    def forget(self, track_id: int) -> None:
        cues = self._tracks.pop(track_id, None)
        if cues is not None:
            cues.wipe()

    def keep_only(self, live: AbstractSet[int]) -> None:
        """Drop the state of tracks that ended."""
        for gone in self._tracks.keys() - live:
            self.forget(gone)

    @property
    def tracks(self) -> int:
        return len(self._tracks)


class Lockout:
    """Failures per subject in a sliding window; at ``max_failures`` the subject is locked out."""

    def __init__(self, options: LivenessOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._until: dict[str, float] = {}

    def locked(self, subject: str) -> bool:
        until = self._until.get(subject)
        if until is None:
            return False
        if self.clock() >= until:
            del self._until[subject]
            return False
        return True

    def fail(self, subject: str) -> int | None:
        """Record a failure; the number of failures if this one starts a lockout, else None."""
        now = self.clock()
        recent = [t for t in self._failures.get(subject, []) if now - t < self.options.failure_window_s]
        recent.append(now)
        if len(recent) >= self.options.max_failures:
            self._failures.pop(subject, None)
            self._until[subject] = now + self.options.lockout_s
            return len(recent)
        self._failures[subject] = recent
        return None


class LivenessGate:
    """The judge and the lockout as a policy uses them: a locked-out subject fails at once (not
    scored), and the failure that reaches ``max_failures`` publishes ``event/presentation_attack``."""

    def __init__(self, judge: LivenessJudge, publish: Callable[[str, dict], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.judge = judge
        self.publish = publish
        self.lockout = Lockout(judge.options, clock)

    def check(self, track_id: int, subject: str, frame: np.ndarray | None, box: tuple,
              mesh: np.ndarray | None) -> LivenessVerdict:
        if self.lockout.locked(subject):
            return LivenessVerdict("failed", "locked_out")
        if frame is None:
            return LivenessVerdict("pending")  # nothing to judge on: fail secure, wait for a frame
        verdict = self.judge.observe(track_id, subject, frame, box, mesh)
        if verdict.state == "failed":
            failures = self.lockout.fail(subject)
            if failures is not None:
                log.warning("presentation attack suspected for %s: %d failures; locked out", subject, failures)
                self.publish("event/presentation_attack", messages.presentation_attack(
                    subject, failures, self.judge.options.lockout_s))
        return verdict

    def keep_only(self, live: AbstractSet[int]) -> None:
        self.judge.keep_only(live)
