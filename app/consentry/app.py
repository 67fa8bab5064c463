"""The appliance, wired top to bottom and stopped in reverse:
config → vault → models → camera → decisions → door / bus; stop: bus (``offline``) → door
(locked) → decisions → camera → models → vault.

Everything runs on the main thread except the camera reader and paho's network thread;
requests from the broker arrive through ``bus.inbox`` and are handled between frames.
"""

from __future__ import annotations

import collections
import logging
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from .bus import messages
from .bus.commands import CommandGate, request_id_of, subject_of
from .camera import FrameSource, open_source
from .camera.supervisor import SupervisedSource
from .config import Settings
from .decide.adapt import door_adapter
from .decide.checkout import CheckoutPolicy
from .decide.door import DoorPolicy
from .decide.recognizer import recognizer_from_settings
from .errors import (
    AuditChainBroken,
    CameraError,
    ConfigError,
    ConsentryError,
    KeyUnavailable,
    SubjectNotFound,
    VaultMissing,
)
from .match import Gallery, gallery_from_vault, policy_from_config
from .notify import Notifier
from .panel import live_check, open_output, panel_health

log = logging.getLogger(__name__)


def choose_opener(spec: str | None, settings: Settings, announce: Callable[[str], None],
                  demo: bool = True) -> Callable[[], FrameSource]:
    """The requested source; with none, picamera2, then the first OpenCV camera, else the demo
    (or, with ``demo`` False, a CameraError naming what each camera said)."""
    spec = spec or settings.camera.source
    if spec:
        open_source(spec).close()  # fail now, clearly, on a typo or a missing file
        return lambda: open_source(spec)
    errors = []
    for candidate in ("picamera2", "opencv:0"):
        try:
            open_source(candidate).close()
            return lambda c=candidate: open_source(c)
        except (CameraError, ConfigError) as exc:
            errors.append(f"{candidate}: {exc}")
    if not demo:
        raise CameraError("no camera: " + "; ".join(errors))
    announce("no camera found: running the demo source (skimage's public-domain astronaut where scikit-image "
             "is installed, else a test pattern)")
    return lambda: open_source("demo")


class Appliance:
    def __init__(self, settings: Settings, *, source: str | None = None, exit_at_end: bool = False,
                 home: Path | None = None, out: Callable[[str], None] = print,
                 camera_opener: Callable[[], FrameSource] | None = None, pin_factory=None, bus=None) -> None:
        self.settings = settings
        self.out = out
        self.exit_at_end = exit_at_end
        self._source_spec = source
        self._home = home
        self._camera_opener = camera_opener
        self._pin_factory = pin_factory
        self.bus = bus
        self.notifier = Notifier()
        self.vault = None
        self.stopping = False
        self.frames = 0
        self._unknown = 0
        self._latencies: collections.deque[float] = collections.deque(maxlen=100)
        self._frame_times: collections.deque[float] = collections.deque(maxlen=60)
        self._closers: list[Callable[[], None]] = []

    # -- start, in order ------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        self._open_vault()
        self._start_output()
        self.recognizer = recognizer_from_settings(s)
        self._closers.append(self.recognizer.tracker.close)
        model = self.recognizer.tracker.pipeline.embedder.name
        opener = self._camera_opener or choose_opener(self._source_spec, s, self.out)
        self.camera = SupervisedSource(opener, stall_seconds=s.camera.stall_seconds,
                                       reopen_max_seconds=s.camera.reopen_max_seconds, replay=not self.exit_at_end)
        self._closers.append(self.camera.close)
        self.gallery = self._gallery(model, s.profile)
        self.recognizer.gallery = self.gallery
        self._start_fleet(model)
        self._start_bus()
        self._start_profile(model)
        self._start_web()
        self.out(f"consentry: profile {s.profile}, source {self._source_spec or s.camera.source or 'auto'}, "
                 f"runtime {self.recognizer.tracker.pipeline.runtime}, {len(self.gallery.subjects)} subject(s)")
        self.notifier.ready(f"{s.profile}: {len(self.gallery.subjects)} subjects")

    def _open_vault(self) -> None:
        from .vault import open_vault

        try:
            self.vault = open_vault(self.settings.vault, self._home)
        except KeyUnavailable as exc:
            self.out(f"no master key ({exc}): running with no enrolled subjects — everyone is unknown")
            return
        except VaultMissing as exc:
            self.out(f"no template store ({exc}): running with no enrolled subjects — everyone is unknown")
            return
        self._closers.append(self.vault.close)

    def _gallery(self, model: str, purpose: str, opted_in_only: bool = False) -> Gallery:
        policy = policy_from_config(self.settings.match)
        if self.vault is None:
            return Gallery(model, policy)
        loaded = gallery_from_vault(self.vault, model, policy, purpose, opted_in_only)
        if loaded.damaged:
            self.out(f"warning: {len(loaded.damaged)} template(s) failed authentication and were skipped")
        if loaded.other_models:
            self.out(f"{len(loaded.other_models)} subject(s) need re-enrolment for {model}")
        self._closers.append(loaded.gallery.close)
        return loaded.gallery

    def _start_fleet(self, model: str) -> None:
        """The device's part in its site (fleet/), when it belongs to one."""
        self.fleet = None
        if self.vault is None or not self.settings.fleet.enabled or self.vault.secret("fleet") is None:
            return
        from .fleet.service import FleetService, gallery_rekeyer, gallery_updater

        self._fleet_galleries = [(self.gallery, self.settings.profile, False)]
        self.fleet = FleetService(self.vault, self.settings.mqtt, self.settings.fleet, model=model,
                                  on_change=gallery_updater(self._fleet_galleries),
                                  on_rekey=gallery_rekeyer(self._fleet_galleries)).start()
        self._closers.append(self.fleet.close)
        self.out(self.fleet.status())

    def _start_bus(self) -> None:
        cfg = self.settings.mqtt
        if self.bus is None:
            if cfg.enabled:
                from .bus.mqtt import MqttBus

                self.bus = MqttBus(cfg)
            else:
                from .bus.fake import RecordingBus

                self.bus = RecordingBus(cfg.device_id)
        self.bus.start()
        self._closers.append(self.bus.close)

    def _start_web(self) -> None:
        from .forget import FaceWithdrawal
        from .web.capture import KioskEnrolment
        from .web.state import KioskState

        self.kiosk = KioskState()
        self.enrolment = KioskEnrolment(self.kiosk, self.vault, self.recognizer.tracker.pipeline, self.camera,
                                        threshold=self.settings.match.threshold, on_stored=self._reload_gallery,
                                        out=self.out)
        self._closers.append(self.enrolment.close)
        self.withdrawal = FaceWithdrawal(self.kiosk, self.settings.liveness, self.policy.liveness, self._publish)
        if not self.settings.http.enabled:
            return
        from .web.server import WebApp, WebServer

        webapp = WebApp(self.settings, self.kiosk, self.vault, health=self.health, checks=self.checks,
                        fleet=self.fleet, enrolment=self.enrolment)
        self.enrolment.owner_alive = webapp.sessions.holds
        self.web = WebServer(webapp.wsgi, self.settings.http.bind, self.settings.http.port)
        self.web.start()
        self._closers.append(self.web.close)
        self.out(f"web page at {self.web.url}")

    def fps(self) -> float:
        """Frames per second over the last 60 frames."""
        stamps = list(self._frame_times)
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0

    def health(self) -> dict:
        """Figures for the staff page: nothing about anyone's face."""
        times = sorted(self._latencies) or [0.0]
        fps = self.fps()
        link = self.bus.link_status()
        return {"frames": self.frames, "frame rate": f"{fps:.1f} fps",
                "latency per frame (median / p90)": f"{times[len(times) // 2]:.1f} / "
                                                    f"{times[int(len(times) * 0.9)]:.1f} ms",
                "per-stage latency": ", ".join(f"{k} {v:.1f} ms" for k, v in self.recognizer.tracker.timings.items()),
                "camera": self.camera.status, "broker": link, "profile": self.settings.profile,
                "liveness": self._liveness_status(),
                "enrolled for this profile": len(self.gallery.subjects),
                **({"site": self.fleet.status()} if self.fleet is not None else {}), **panel_health(self)}

    def checks(self) -> list:
        """`consentry doctor`'s checks for the staff page, from inside the running appliance: the
        camera and the pins are this process's own (their live status stands in), the key is
        proven by the open vault."""
        from .doctor import Check, Doctor

        camera = self.camera.status
        live = [Check("camera", "pass" if camera == "ok" else "fail", f"{camera}, {self.fps():.1f} fps",
                      "" if camera == "ok" else "see `consentry doctor` with the service stopped")]
        doctor = Doctor(self.settings, self._home, thorough=False)  # hashed at start; re-read if changed
        return live + live_check(self) + doctor.run(skip=frozenset({"camera", "gpio", "key", "panel"}))

    def _liveness_status(self) -> str:
        cfg = self.settings.liveness
        if cfg.mode == "off":
            return "OFF: a photo of an enrolled person is accepted as that person"
        return f"{cfg.mode} (mean P(real) >= {cfg.threshold} over {cfg.frames} frames; rigid-plane check)"

    def _start_profile(self, model: str) -> None:
        s = self.settings
        if s.profile == "door":
            self._start_output(relay=True)
            self.policy = DoorPolicy(s.door, self.door, self._publish, on_grant=self._seen,
                                     on_unknown=self._count_unknown, liveness=self._liveness(),
                                     on_prompt=lambda track, prompt: self.withdrawal.door_prompt(prompt),
                                     gate=self.fleet.verdict if self.fleet is not None else None,
                                     adapt=door_adapter(self))
        else:
            identify = self._gallery(model, "checkout", opted_in_only=True)
            if self.fleet is not None:
                self._fleet_galleries.append((identify, "checkout", True))
            self.policy = CheckoutPolicy(s.checkout, self.gallery, self._publish, identify_gallery=identify,
                                         on_verified=self._seen, liveness=self._liveness(),
                                         gate=self.fleet.verdict if self.fleet is not None else None)

    def _start_output(self, relay: bool = False) -> None:  # a panel's first: it gives up on a silent reader
        if self.settings.profile == "door" and (self.settings.panel.kind == "relay") == relay:
            self.door = open_output(self.settings, self.vault, self._pin_factory, self._door_event, self.out,
                                    lambda *what: self.kiosk.panel_feedback(*what))
            self._closers.append(self.door.close)
            if relay:  # with a panel the lock's state is the panel's to report
                self.bus.publish_state("state/lock", "locked")

    def _liveness(self):
        """The liveness gate for either profile (None when ``liveness.mode`` is off, with a warning)."""
        from .decide.liveness import LivenessGate, LivenessJudge, LivenessOptions

        cfg = self.settings.liveness
        if cfg.mode == "off":
            self.out("WARNING: liveness is off: a photo or a screen showing an enrolled person "
                     + ("opens the door" if self.settings.profile == "door" else "passes a checkout verification"))
            return None
        from .vision.antispoof import AntiSpoof

        pipeline = self.recognizer.tracker.pipeline
        spoof = AntiSpoof(pipeline.manifest, threads=pipeline.options.threads, runtime=pipeline.options.runtime)
        self._closers.append(spoof.close)
        judge = LivenessJudge(LivenessOptions.from_config(cfg), lambda frame, box: spoof.score(frame, box).p_real)
        return LivenessGate(judge, self._publish)

    # -- the loop -------------------------------------------------------------------------
    def run(self, max_frames: int | None = None, *, handle_signals: bool = True) -> int:
        """Until the source ends (with exit_at_end), ``max_frames``, a signal or :meth:`request_stop`;
        ``handle_signals`` False lets it run on a thread other than the main one."""
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            self.start()
            timers = {"status": time.monotonic(), "hour": time.monotonic(), "purge": time.monotonic()}
            for frame in self.camera.frames():
                self._frame(frame)
                self._periodic(timers)
                if self.stopping or (max_frames is not None and self.frames >= max_frames):
                    break
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.frames

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.request_stop()

    def request_stop(self) -> None:
        self.stopping = True
        camera = getattr(self, "camera", None)
        if camera is not None:
            camera._stop.set()  # unblock a loop waiting for a camera that sends nothing

    def _frame(self, frame) -> None:
        start = time.perf_counter()
        self.frames += 1
        self.notifier.alive()
        self._drain_inbox()
        try:
            self.enrolment.tick()
            if self.enrolment.capturing():
                self.enrolment.step(frame)
            elif isinstance(self.policy, DoorPolicy):  # a withdrawal by face never pauses the door
                results = self.recognizer.step(frame)
                seen = self.recognizer.tracker.observed_frame  # detect-ahead: the previous frame's copy
                self.policy.handle(results, (time.perf_counter() - start) * 1000.0, seen if seen is not None else frame,
                                   alive=self.recognizer.tracker.tracks.keys())
                self.kiosk.advise(results, frame.shape)
                self.withdrawal.observe(results, self.recognizer.tracker, frame)
            elif self.withdrawal.waiting():
                self.withdrawal.observe(self.recognizer.step(frame), self.recognizer.tracker, frame)
            elif self.policy.active:
                tracker = self.recognizer.tracker
                try:
                    observations = tracker.process(frame)
                    seen = tracker.observed_frame
                    self.policy.handle(observations, seen if seen is not None else frame)
                finally:
                    tracker.wipe()
            else:
                self.policy.handle([])
        except ConsentryError as exc:  # a bad frame never ends the loop
            log.warning("frame %d skipped: %s", self.frames, exc)
        except (ValueError, cv2.error) as exc:  # nor does a frame of a shape the models choke on
            log.warning("frame %d of shape %s skipped: %s", self.frames, getattr(frame, "shape", None), exc)
        finally:
            frame.fill(0)
            self.recognizer.tracker.release()
            self._latencies.append((time.perf_counter() - start) * 1000.0)
            self._frame_times.append(time.monotonic())


    def _reload_gallery(self) -> None:
        templates = self.vault.load_templates(self.gallery.model, self.settings.profile)
        try:
            self.gallery.replace(templates.templates)
        finally:
            templates.wipe()

    def _periodic(self, timers: dict[str, float]) -> None:
        now = time.monotonic()
        if now - timers["status"] >= 10.0:
            fps = self.fps()
            self.bus.publish("status", messages.envelope(frames=self.frames, fps=round(fps, 1),
                                                         camera=self.camera.status[:80], profile=self.settings.profile,
                                                         dropped_events=self.bus.dropped,
                                                         queued_events=self.bus.queued,
                                                         subjects=len(self.gallery.subjects)))
            timers["status"] = now
            link = self.bus.link_status()
            self.out(f"{self.frames} frames ({fps:.1f} fps), camera {self.camera.status}, mqtt {link}")
        if now - timers["hour"] >= 3600.0:
            self._flush_unknown()
            timers["hour"] = now
        if self.vault is not None and now - timers["purge"] >= self.settings.vault.purge_interval_hours * 3600.0:
            for receipt in self.vault.purge():
                self.out(f"expired: {receipt.subject}")
            timers["purge"] = now

    # -- events ---------------------------------------------------------------------------
    def _publish(self, suffix: str, payload: dict) -> None:
        self.bus.publish(suffix, payload)
        if suffix == "event/access":
            self.bus.publish_state("state/last_decision", payload["decision"])
            self.kiosk.record_decision(payload["decision"], payload.get("subject"))
            who = payload["subject"] or "unknown face"
            self.out(f"{payload['decision']}: {who}" + (f" (distance {payload['distance']})"
                                                        if payload.get("distance") is not None else "")
                     + (f" (liveness {payload['liveness']}: {payload['reason']})" if payload.get("reason") else ""))
        elif suffix == "event/presentation_attack":
            self.out(f"presentation attack suspected: {payload['subject']} "
                     f"locked out for {payload['lockout_seconds']} s")
        elif suffix == "checkout/response":
            self.out(f"checkout {payload['request_id']}: verified={payload['verified']} ({payload['reason']})")

    def _door_event(self, kind: str, detail: dict) -> None:
        self.bus.publish("event/door", messages.door_event(kind, **detail))
        if kind in ("unlocked", "locked"):
            self.bus.publish_state("state/lock", kind)
        elif kind in ("door_opened", "door_forced", "door_closed"):
            self.bus.publish_state("state/door", "closed" if kind == "door_closed" else "open")

    def _seen(self, subject: str) -> None:
        if self.vault is not None:
            self.vault.touch(subject)
            self._record_access(subject, "granted" if self.settings.profile == "door" else "verified")

    def _count_unknown(self) -> None:
        self._unknown += 1

    def _flush_unknown(self) -> None:
        if self._unknown and self.vault is not None:
            self._record_access(None, "unknown", count=self._unknown)
        self._unknown = 0

    def _record_access(self, subject: str | None, decision: str, count: int = 1) -> None:
        """A broken audit chain refuses the row, loudly, without cutting short the frame's other
        decisions; doctor and the staff page show the break until the store is restored."""
        try:
            self.vault.record_access(subject, decision, count)
        except AuditChainBroken as exc:
            log.error("%s access not audited: %s", decision, exc)

    def _drain_inbox(self) -> None:
        """Requests from the broker, between frames. A hostile payload may fail in ways no
        one listed; it is logged and dropped, and the loop (and the door) carry on."""
        while True:
            try:
                suffix, payload = self.bus.inbox.get_nowait()
            except queue.Empty:
                return
            try:
                if suffix == "checkout/request" and isinstance(self.policy, CheckoutPolicy):
                    self.policy.request(payload)
                elif suffix == "cmd/revoke":
                    self._revoke_command(payload)
            except Exception:  # noqa: BLE001 - one message must never stop the appliance
                log.exception("dropped a message on %s that could not be handled", suffix)

    def _revoke_command(self, payload: dict) -> None:
        gate = CommandGate(self.settings.mqtt.command_secret_file, self.vault)
        command, error = gate.check(payload)
        result = {"request_id": request_id_of(payload), "subject": subject_of(payload), "ok": False}
        if command is not None:
            try:
                receipt = self.vault.revoke(command.subject, reason="remote command")
                result.update(ok=True, audit_hash=receipt.audit_hash)
            except SubjectNotFound:
                error = "no such subject"
        if error:
            result["error"] = error
        self.bus.publish("cmd/revoke/result", messages.check("cmd/revoke/result", messages.envelope(**result)))

    # -- stop, in reverse -----------------------------------------------------------------
    def stop(self) -> None:
        self.notifier.stopping()
        self._flush_unknown()
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - keep closing: the door must end locked whatever failed
                log.exception("error while stopping")
        self._closers.clear()


def run(settings: Settings, source_spec: str | None, *, max_frames: int | None = None, exit_at_end: bool = False,
        home: Path | None = None, out: Callable[[str], None] = print) -> int:
    """Run until the source ends (with ``exit_at_end``), ``max_frames``, or SIGINT/SIGTERM."""
    return Appliance(settings, source=source_spec, exit_at_end=exit_at_end, home=home, out=out).run(max_frames)
