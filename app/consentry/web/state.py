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

from . import guidance
from .i18n import N_

# English msgids: the web thread translates them into the asking browser's language.
ADVICE = {
    "no_face": N_("Look at the camera"),
    "several_faces": N_("One person at a time, please"),
    "too_small": N_("Come a little closer"),
    "out_of_frame": N_("Move into the middle of the picture"),
    "blurry": N_("Hold still"),
    "pose": N_("Look straight at the camera"),
    "too_dark": N_("More light, please"),
    "too_bright": N_("Step out of the direct light"),
    "restarted": N_("Only the person enrolling, please — starting again"),
}
CAPTURING = N_("Hold still — capturing")


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
    box: tuple | None = None  # where the consenting person's face is (web/guidance.py), or None
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
        self.guidance = guidance.Guidance()

    def record_decision(self, decision: str, subject: str | None = None) -> None:
        """``subject``: who was granted, kept only so the web thread can greet someone who asked
        for it (web/server.py); never part of the kiosk view."""
        with self.lock:
            self.decision = {"decision": decision, "at": time.time(), "subject": subject}

    def granted_subject(self) -> str | None:
        with self.lock:
            d = self.decision
            recent = d is not None and time.time() - d["at"] < 4.0 and d["decision"] in ("granted", "verified")
            return d.get("subject") if recent else None

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
                    "advice": self.advice, **self.guidance.as_json()}

    def advise(self, results, shape=None) -> None:
        """Guidance for the faces in view (web/guidance.py): advice for the largest undecided face
        a quality gate refused, and a box only for a recognised, consenting person."""
        seen = guidance.kiosk(results, shape)
        with self.lock:
            self.guidance = seen
            self.advice = ADVICE.get(seen.reason) if seen.reason else None

    def set_prompt(self, prompt: str | None) -> None:
        with self.lock:
            self.prompt = prompt
