"""Withdrawal by face ("forget me" at the camera): the person in view, and only them, in person.

Any web session may start one, so being recognised is not enough: a photo of an enrolled person
must not withdraw them, nor may someone on the network withdraw a person who happens to stand
at the door. A withdrawal therefore asks, of one track from start to end:

1. recognised (k of n, the door's own verdicts) as the only face in view;
2. the door's liveness, as configured (passive anti-spoofing, picture edge, rigid plane, frozen
   source: :class:`~consentry.decide.liveness.LivenessJudge` with the same scorer), and always
   then a challenge (blink, turn) that the kiosk screen asks for under "Forget me", so the
   person shows with their own face that they want it;
3. the same track, still the only face, when the session confirms.

Anything else — a second face, the track lost, a different subject on it, a failed cue or a
challenge not answered in time — ends it with nothing revoked and a reason in plain words.
Its failures count towards a lockout of its own (the door's, when it holds, refuses too). With
``liveness.mode = "off"`` no anti-spoofing model is loaded: the model-free cues and the
challenge still run.

:class:`Withdrawal` is what the web thread and the loop share, under the kiosk's lock;
:class:`FaceWithdrawal` runs in the loop and holds the liveness state of the one track.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .decide.liveness import LivenessGate, LivenessJudge, LivenessOptions

log = logging.getLogger(__name__)

FRESH_S = 2.0  # the track must have been alone in view this recently when the session confirms
LOOK_S = 30.0  # to be recognised, then again to finish the checks, then again to press confirm
WAITING = ("looking", "checking", "challenge", "found")

MESSAGES = {
    "passive_spoof": "The camera could not tell a live person from a photo or a screen.",
    "picture_edge": "The camera saw the edge of a photo or a screen around the face.",
    "planar_motion": "The face moved like a flat picture, not a head.",
    "frozen_source": "The camera's picture did not change at all, as with a still image.",
    "challenge_failed": "The movement asked for on the screen was not seen in time.",
    "locked_out": "Too many failed attempts for this person: use your revocation code, or ask staff.",
    "lost": "The camera lost sight of you before it finished.",
    "someone_else": "Someone else came into view: one person at a time, please.",
    "not_you": "The camera recognised a different person.",
    "timeout": "You were not recognised. Use your revocation code, or ask staff.",
    "slow": "The checks did not finish in time.",
    "unconfirmed": "The withdrawal was not confirmed in time.",
}


@dataclass
class Withdrawal:
    """One session's withdrawal by face. ``state``: looking → checking (liveness) → challenge →
    found (confirmable) | failed | timeout. ``track`` and ``candidate``: the one track and the
    subject it was recognised as; ``seen_at``: the last time (monotonic s) that track was the
    only face in view and matched ``candidate``; ``prompt``: the challenge's action while it
    asks; ``reason``: why it failed (a code of MESSAGES). ``purpose``: ``forget`` (confirming
    revokes) or ``show`` (confirming shows the person their own record, web/mydata.py): the
    same checks either way, and one never stands in for the other."""

    owner: str = ""
    state: str = "looking"
    candidate: str | None = None
    track: int | None = None
    seen_at: float = 0.0
    prompt: str | None = None
    reason: str | None = None
    purpose: str = "forget"
    deadline: float = field(default_factory=lambda: time.monotonic() + LOOK_S)

    def live(self) -> bool:
        return self.state in WAITING and time.monotonic() < self.deadline + 60.0

    def confirmable(self) -> bool:
        """Liveness and challenge passed, and the same track was alone in view just now."""
        return (self.state == "found" and self.candidate is not None
                and time.monotonic() - self.seen_at <= FRESH_S)

    def expire(self, now: float) -> None:
        if self.state in WAITING and now > self.deadline:
            why = {"looking": "timeout", "found": "unconfirmed"}.get(self.state, "slow")
            self.state, self.reason, self.prompt = "timeout" if why == "timeout" else "failed", why, None

    @property
    def message(self) -> str:
        return MESSAGES.get(self.reason or "", "") + (" Nothing was changed." if self.reason else "")

    def view(self) -> dict:
        """For the page: the state, the challenge's action, and why it ended."""
        self.expire(time.monotonic())
        return {"state": self.state, "prompt": self.prompt, "message": self.message}


def forget_options(cfg) -> LivenessOptions:
    """The door's liveness options (``Settings.liveness``), always ending in a challenge. With
    the mode off there is no passive score to threshold (see :func:`_no_model`)."""
    off = cfg.mode == "off"
    return LivenessOptions.from_config(cfg, mode="challenge", **({"threshold": 0.01, "unclear": 0.01} if off else {}))


def _no_model(frame: np.ndarray, box: tuple) -> float:
    return 1.0  # liveness.mode off: no anti-spoofing model; the other cues and the challenge decide


class FaceWithdrawal:
    """The loop's side: feed :meth:`observe` every decided frame while :meth:`waiting`.

    ``door_gate``: the door's (or checkout's) :class:`LivenessGate`, whose scorer and lockout
    are reused; None when liveness is off. ``publish`` sends a presentation-attack event."""

    def __init__(self, kiosk, cfg, door_gate: LivenessGate | None, publish: Callable[[str, dict], None]) -> None:
        self.kiosk = kiosk
        scorer = door_gate.judge.scorer if door_gate is not None else _no_model
        # Its own lockout: failures here must not lock a person out of the door, since anyone on the
        # network can start a withdrawal while they stand there; the door's lockout holds here too.
        self.gate = LivenessGate(LivenessJudge(forget_options(cfg), scorer), publish)
        self._door_lockout = door_gate.lockout if door_gate is not None else None
        self._current: Withdrawal | None = None
        self._door_prompt: str | None = None
        self._own_prompt: str | None = None

    def waiting(self) -> bool:
        """Whether the loop should decide frames for a withdrawal: one is under way, or one just
        ended (confirmed, replaced, given up) and the kiosk still shows its prompt."""
        f = self.kiosk.forget
        return (f is not None and f.state in WAITING) or self._own_prompt is not None

    def door_prompt(self, prompt: str | None) -> None:
        """The door's challenge prompt. It is shown over a withdrawal's (the door is never paused,
        nor hijacked by a withdrawal someone started), and no withdrawal starts while it asks."""
        self._door_prompt = prompt
        self._show()

    def _show(self) -> None:
        f = self.kiosk.forget  # a read of one reference: the web thread replaces it under the lock
        head = "Show my data" if f is not None and f.purpose == "show" else "Forget me"
        own = f"{head}: {self._own_prompt.lower()} to confirm" if self._own_prompt else None
        self.kiosk.set_prompt(self._door_prompt or own)

    def _ask(self, prompt: str | None) -> None:
        if prompt != self._own_prompt:
            self._own_prompt = prompt
            self._show()

    def observe(self, results, tracker, frame: np.ndarray) -> None:
        """One decided frame: ``results`` (TrackResults), the tracker (its live tracks and the
        frame the results belong to, with detect-ahead) and the frame read."""
        with self.kiosk.lock:
            f = self.kiosk.forget
            replaced, self._current = self._current is not f, f
            snapshot = None
            if f is not None and f.state in WAITING:
                f.expire(time.monotonic())
                snapshot = (f.state, f.track, f.candidate) if f.state in WAITING else None
        if replaced or snapshot is None:
            self._reset()  # outside the kiosk's lock: it may clear the kiosk's prompt
        if snapshot is None:
            return
        seen = tracker.observed_frame
        outcome = self._step(snapshot, results, set(tracker.tracks), seen if seen is not None else frame)
        with self.kiosk.lock:
            if self.kiosk.forget is not f:
                return  # replaced or confirmed meanwhile: the next frame resets
            self._apply(f, outcome)
            asking = f.prompt if f.state == "challenge" else None
        self._ask(asking)  # the kiosk's own lock: not under it
        if f.state not in WAITING:
            self._reset()

    def _step(self, snapshot, results, alive: set[int], frame: np.ndarray) -> dict:
        """What this frame changes, worked out outside the lock (the anti-spoofing model runs here)."""
        state, track, candidate = snapshot
        now = time.monotonic()
        if state == "looking":
            matched = [r for r in results if r.state == "match" and r.subject]
            if len(results) == 1 and len(matched) == 1 and self._door_prompt is None:
                r = matched[0]
                return {"state": "checking", "track": r.track_id, "candidate": r.subject, "deadline": now + LOOK_S,
                        **self._judge(r, frame)}
            return {}
        if track not in alive:
            return {"state": "failed", "reason": "lost"}
        mine = next((r for r in results if r.track_id == track), None)
        if any(r.track_id != track for r in results):
            # Another track beside this one is a second face; in its place, most often this face
            # again after the tracker lost it (a fast move): a new track either way, so it ends.
            return {"state": "failed", "reason": "someone_else" if mine is not None else "lost"}
        if mine is None or mine.state != "match":
            return {}  # missed this frame, or its visit reopened (a turned head): the challenge's clock runs on
        if mine.subject != candidate:
            return {"state": "failed", "reason": "not_you"}
        if state == "found":
            return {"seen_at": now}
        return self._judge(mine, frame)

    def _judge(self, r, frame: np.ndarray) -> dict:
        if self._door_lockout is not None and self._door_lockout.locked(r.subject):
            return {"state": "failed", "reason": "locked_out"}
        verdict = self.gate.check(r.track_id, r.subject, frame, r.box, r.mesh)
        if verdict.state == "failed":
            return {"state": "failed", "reason": verdict.reason}
        if verdict.state == "passed":
            return {"state": "found", "seen_at": time.monotonic(), "prompt": None,
                    "deadline": time.monotonic() + LOOK_S}
        return {"state": "challenge", "prompt": verdict.prompt} if verdict.prompt else {}

    def _apply(self, f: Withdrawal, outcome: dict) -> None:
        if outcome.get("state") == "failed":
            outcome["prompt"] = None
            log.info("withdrawal by face ended: %s", outcome["reason"])
        for key, value in outcome.items():
            setattr(f, key, value)

    def _reset(self) -> None:
        """Forget the liveness state of every track (there is at most the one) and stop asking."""
        self.gate.judge.keep_only(set())
        self._ask(None)
