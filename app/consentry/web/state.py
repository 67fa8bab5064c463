"""What the web page and the appliance loop share, behind one lock.

The loop writes decisions, health figures and capture progress; the web thread starts and
reads sessions. Nothing here ever holds an image or a vector — the capture's templates
live in the loop's GuidedCapture until they are encrypted into the vault.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

ADVICE = {
    "no_face": "Look at the camera",
    "several_faces": "One person at a time, please",
    "too_small": "Come a little closer",
    "out_of_frame": "Move into the middle of the picture",
    "blurry": "Hold still",
    "pose": "Look straight at the camera",
    "too_dark": "More light, please",
    "too_bright": "Step out of the direct light",
}


@dataclass
class Capture:
    """An enrolment in progress. ``state``: capturing → done | failed | cancelled."""

    name: str
    consent: object
    needed: int = 5
    state: str = "capturing"
    hint: str = "Look at the camera"
    collected: int = 0
    subject: str | None = None
    code: str | None = None
    error: str | None = None
    deadline: float = field(default_factory=lambda: time.monotonic() + 60.0)


@dataclass
class Forget:
    """Withdrawal by face: ``candidate`` is the subject the camera recognised (k of n)."""

    state: str = "looking"
    candidate: str | None = None
    deadline: float = field(default_factory=lambda: time.monotonic() + 30.0)


class KioskState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decision: dict | None = None
        self.capture: Capture | None = None
        self.forget: Forget | None = None
        self.health: dict = {}

    def record_decision(self, decision: str) -> None:
        with self.lock:
            self.decision = {"decision": decision, "at": time.time()}

    def kiosk_view(self) -> dict:
        with self.lock:
            recent = self.decision if self.decision and time.time() - self.decision["at"] < 4.0 else None
            mode = "enrolling" if self.capture and self.capture.state == "capturing" else "idle"
            return {"decision": recent["decision"] if recent else None, "mode": mode}
