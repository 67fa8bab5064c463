"""The kiosk's enrolment: guided capture on the appliance loop, then the hand-over.

A person is stored only when their revocation code goes to the page of the session that
started the enrolment. The loop captures templates (enrolment.GuidedCapture: one person,
one track) and holds them; the owner's ``/enroll/done`` request calls :meth:`hand_over`,
which encrypts them into the vault, issues the code and returns it on that same request.
If the owner's session is gone (logged out, evicted, idle) or its page never collects the
code within HANDOVER_S, the templates are zeroed and nothing is stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..enrolment import GuidedCapture
from ..errors import ConsentryError
from .i18n import N_
from .state import ADVICE, CAPTURING, Capture, KioskState

log = logging.getLogger(__name__)

HANDOVER_S = 30.0  # from the last template to the owner's page collecting the code (it polls every 0.3 s)
STORING_S = 120.0  # a hand-over still "storing" after this is stuck: the kiosk takes enrolments again
RESTART_HINT_S = 2.0  # how long the page says the capture started again


class KioskEnrolment:
    """``pipeline``: the recognizer's FacePipeline; ``camera``: the SupervisedSource (its
    picamera2 source offers a full-resolution ``main_frame``); ``threshold``: the match rule's
    L2 threshold, which every template must keep to the others; ``owner_alive(key)``: whether
    the starting session still exists (None: no web page, nobody to lose); ``on_stored``: a
    live gallery reload after a subject is stored."""

    def __init__(self, kiosk: KioskState, vault, pipeline, camera, *, threshold: float,
                 on_stored: Callable[[], None] = lambda: None, out: Callable[[str], None] = print,
                 owner_alive: Callable[[str], bool] | None = None) -> None:
        self.kiosk = kiosk
        self.vault = vault
        self.pipeline = pipeline
        self.camera = camera
        self.threshold = threshold
        self.on_stored = on_stored
        self.out = out
        self.owner_alive = owner_alive
        self._guided: GuidedCapture | None = None
        self._for: Capture | None = None  # the capture the held templates belong to
        self._handover_until = 0.0
        self._storing_until = 0.0
        self._restarted_at = -1e9
        self._handing = threading.Lock()  # one hand-over at a time (a double-clicked page)

    # -- the loop -------------------------------------------------------------------------
    def capturing(self) -> bool:
        c = self.kiosk.capture
        return c is not None and c.state == "capturing"

    def tick(self) -> None:
        """Every frame: end a capture whose owner is gone, whose time is up, or whose code was
        not collected in time, and zero templates no capture can use any more."""
        c = self.kiosk.capture
        gone = (c is not None and c.state in ("capturing", "captured") and self.owner_alive is not None
                and not self.owner_alive(c.owner))
        now = time.monotonic()
        with self.kiosk.lock:
            if c is not None and c is self.kiosk.capture:
                if gone:
                    c.state, c.error = "cancelled", N_("The enrolment's session ended; nothing was stored.")
                elif c.state == "capturing" and now >= c.deadline:
                    c.state, c.error = "failed", N_("No good face was seen in time; nothing was stored.")
                elif c.state == "captured" and now >= self._handover_until:
                    c.state, c.error = "failed", N_("The revocation code was not collected in time; nothing was "
                                                   "stored.")
                elif c.state == "storing" and now >= self._storing_until:
                    c.state, c.error = "failed", N_("The enrolment could not be stored in time.")
                    log.error("a kiosk hand-over has been storing for %.0f s: the kiosk takes enrolments again",
                              STORING_S)
            stale = self._guided is not None and (self._for is not self.kiosk.capture
                                                  or self._for.state not in ("capturing", "captured"))
            guided = self._release() if stale else None
        if guided is not None:
            guided.wipe()
            log.info("enrolment ended without a hand-over: its templates were zeroed")

    def step(self, frame) -> None:
        """One frame of guided capture, from the camera's full-resolution stream when it has
        one, else the frame."""
        c = self.kiosk.capture
        if c is None or c.state != "capturing":
            return
        if self._for is not c:
            with self.kiosk.lock:
                old = self._release()
                self._guided = GuidedCapture(self.pipeline, needed=c.needed, threshold=self.threshold)
                self._for = c
            if old is not None:
                old.wipe()
        guided = self._guided
        main = getattr(self.camera.source, "main_frame", None)
        still = main() if callable(main) else None
        try:
            reason = guided.step(still if still is not None else frame)
        finally:
            if still is not None:
                still.fill(0)
        now = time.monotonic()
        if reason == "restarted":
            self._restarted_at = now
            log.info("enrolment capture restarted: another face, or the face left its track")
        with self.kiosk.lock:
            if now - self._restarted_at < RESTART_HINT_S:
                c.hint = ADVICE["restarted"]
            else:
                c.hint = ADVICE.get(reason, CAPTURING) if reason else CAPTURING
            c.collected, c.restarts, c.box = len(guided.vectors), guided.restarts, guided.box
            if guided.done and c.state == "capturing":
                c.state, c.hint = "captured", N_("Captured — your code is next")
                self._handover_until = now + HANDOVER_S

    def _unstore(self, subject: str) -> None:
        """Revoke a subject stored without its code reaching the page."""
        try:
            self.vault.revoke(subject, reason="no revocation code could be issued")
        except Exception:  # noqa: BLE001 - said loudly: staff must remove it (`consentry revoke`)
            log.exception("enrolled %s but could not issue its code nor revoke it: revoke it by hand", subject)

    def close(self) -> None:
        """At shutdown: zero the templates still held (capturing, or captured and waiting for
        their code) and end their capture, nothing stored."""
        with self.kiosk.lock:
            c = self.kiosk.capture
            if c is not None and c.state in ("capturing", "captured"):
                c.state, c.error = "cancelled", N_("The kiosk stopped; nothing was stored.")
            guided = self._release()
        if guided is not None:
            guided.wipe()
            log.info("kiosk stopping: the held enrolment templates were zeroed")

    def _release(self) -> GuidedCapture | None:
        """Detach the held templates (call under the kiosk lock; the caller wipes them)."""
        guided, self._guided, self._for = self._guided, None, None
        return guided

    # -- the owner's page -----------------------------------------------------------------
    def hand_over(self, capture: Capture) -> None:
        """On the owner's request for its code: store the held templates, issue the code and
        put it on ``capture`` (state ``done``), or ``failed`` with nothing stored — whatever
        goes wrong (a vault error, SQLite locked or full, a bug): a subject stored before the
        failure is revoked at once, and the capture never stays ``storing``."""
        with self._handing:
            with self.kiosk.lock:
                if capture.state != "captured" or self._for is not capture or self._guided is None:
                    return
                capture.state = "storing"
                self._storing_until = time.monotonic() + STORING_S
                guided = self._release()
            subject = None
            try:
                if self.vault is None or not guided.done:
                    raise ConsentryError(N_("the enrolment could not be completed; nothing was stored"))
                subject = self.vault.enroll(capture.name, capture.consent, guided.vectors, self.pipeline.embedder.name,
                                            card=capture.card)
                code = self.vault.issue_revocation_code(subject)
                with self.kiosk.lock:
                    capture.subject, capture.code, capture.state = subject, code, "done"
            except Exception as exc:  # noqa: BLE001 - never a stored subject without its code, whatever failed
                if subject is not None:
                    self._unstore(subject)
                if isinstance(exc, ConsentryError):
                    log.warning("kiosk enrolment not stored: %s", exc)
                else:
                    log.exception("kiosk enrolment not stored")
                with self.kiosk.lock:
                    capture.error = (str(exc) if isinstance(exc, ConsentryError) else
                                     N_("The enrolment could not be stored; nothing was kept. Please try again."))
            finally:
                guided.wipe()
                with self.kiosk.lock:
                    if capture.state == "storing":
                        capture.state = "failed"
                        capture.error = capture.error or N_("The enrolment could not be stored; nothing was kept.")
            if capture.state != "done":
                return
        self.out(f"enrolled {capture.subject} at the kiosk")
        try:
            self.on_stored()
        except ConsentryError as exc:  # stored and its code shown: the gallery catches up at the next reload
            log.warning("gallery reload after enrolment failed: %s", exc)
