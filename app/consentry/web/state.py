"""What the web page and the appliance loop share, behind one lock.

The loop writes decisions, health figures and capture progress; the web thread starts and
reads sessions. Nothing here ever holds an image or a vector — the capture's templates
live in web/capture.py's KioskEnrolment until they are encrypted into the vault.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loop's own module; the web page only holds the reference
    from ..forget import Withdrawal

ADVICE = {
    "no_face": "Look at the camera",
    "several_faces": "One person at a time, please",
    "too_small": "Come a little closer",
    "out_of_frame": "Move into the middle of the picture",
    "blurry": "Hold still",
    "pose": "Look straight at the camera",
    "too_dark": "More light, please",
    "too_bright": "Step out of the direct light",
    "restarted": "Only the person enrolling, please — starting again",
}


# An enrolment in these states holds (or is storing) templates: no other may start.
BUSY = ("capturing", "captured", "storing")


@dataclass
class Capture:
    """An enrolment in progress. ``state``: capturing → captured (templates held, waiting for
    the owner's page to collect the code) → storing → done; or failed | cancelled, with
    nothing stored. ``restarts``: how often another face made the capture start again."""

    name: str
    consent: object
    owner: str = ""  # the starting session's key: only it sees the progress and the code
    needed: int = 5
    state: str = "capturing"
    hint: str = "Look at the camera"
    collected: int = 0
    restarts: int = 0
    subject: str | None = None
    code: str | None = None
    error: str | None = None
    card: object = None  # the panel credential to register with the subject (panel/), or None
    deadline: float = field(default_factory=lambda: time.monotonic() + 60.0)


class KioskState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decision: dict | None = None
        self.capture: Capture | None = None
        self.forget: Withdrawal | None = None  # a withdrawal by face (consentry/forget.py)
        self.health: dict = {}
        self.prompt: str | None = None  # what a liveness challenge asks the person at the door to do
        self.advice: str | None = None  # why the face in view cannot be used yet ("Come a little closer")

    def record_decision(self, decision: str) -> None:
        with self.lock:
            self.decision = {"decision": decision, "at": time.time()}

    def panel_feedback(self, kind: str, value: str) -> None:
        """What an access-control panel signals back (panel/): a green or red reader LED is the
        verdict the kiosk shows (the panel decides now); its text is shown as advice."""
        if kind == "led" and value in ("green", "red"):
            self.record_decision("granted" if value == "green" else "denied")
        elif kind == "text":
            with self.lock:
                self.advice = value or None

    def kiosk_view(self) -> dict:
        with self.lock:
            recent = self.decision if self.decision and time.time() - self.decision["at"] < 4.0 else None
            mode = "enrolling" if self.capture and self.capture.state in BUSY else "idle"
            return {"decision": recent["decision"] if recent else None, "mode": mode, "prompt": self.prompt,
                    "advice": self.advice}

    def advise(self, results) -> None:
        """Advice for the largest undecided face in view that a quality gate refused (its first
        reason), or none. Only the advice text is kept: no box, no figure."""
        waiting = [r for r in results if r.state != "match" and r.reasons]
        largest = max(waiting, key=lambda r: r.box[2] - r.box[0], default=None)
        advice = ADVICE.get(largest.reasons[0]) if largest is not None else None
        with self.lock:
            self.advice = advice

    def set_prompt(self, prompt: str | None) -> None:
        with self.lock:
            self.prompt = prompt
