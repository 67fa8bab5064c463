"""The checks. Each returns a :class:`Check`; none prints, none raises."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ..config import Settings
from ..errors import ConsentryError
from .host import Host, RealHost, cpu_celsius

Status = Literal["pass", "warn", "fail"]
NO_ROOM = 100 * 2**20      # below this the vault's WAL and the audit log can no longer grow
LOW_ROOM = 1 * 2**30
HOT_C, TOO_HOT_C = 70.0, 80.0  # the Pi firmware starts soft throttling at 80 °C
THROTTLE_NOW = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}
THROTTLE_SINCE_BOOT = {16 + bit: what for bit, what in THROTTLE_NOW.items()}


@dataclass(frozen=True)
class Check:
    """name: what was checked. status: pass | warn | fail. detail: what was found (never a
    secret, never a face). hint: what to do about a warn or fail (empty on pass)."""

    name: str
    status: Status
    detail: str
    hint: str = ""


def report(checks: list[Check]) -> dict:
    return {"checks": [asdict(c) for c in checks], "failures": sum(c.status == "fail" for c in checks)}


def site_of(vault) -> str:
    """Which site this device belongs to, and as what (docs/fleet.md)."""
    from ..fleet import identity as ids

    me = ids.load(vault.secret(ids.SECRET), vault.transform)
    if me is None:
        return "in no site"
    if isinstance(me, ids.SiteIdentity):
        return f"enrolment kiosk of {me.site}"
    return f"door {me.door} of {me.site}" + ("" if me.data_key else ", waiting for approval")


class Doctor:
    """Runs every check. ``camera_opener`` (a FrameSource factory) and ``pin_factory`` (gpiozero)
    default to the configured camera and pins; ``relay_test`` toggles the relay pin and reads it
    back, which is only safe with the relay disconnected. ``thorough=False`` (the staff page,
    on every load) skips re-reading model files unchanged since this process verified them and
    decrypting every template: it checks the subject rows' MACs only."""

    def __init__(self, settings: Settings, home: Path | None = None, host: Host | None = None,
                 camera_opener: Callable | None = None, pin_factory=None, relay_test: bool = False,
                 thorough: bool = True) -> None:
        self.settings = settings
        self.home = home
        self.host = host or RealHost()
        self.camera_opener = camera_opener
        self.pin_factory = pin_factory
        self.relay_test = relay_test
        self.thorough = thorough

    def run(self, skip: frozenset[str] = frozenset()) -> list[Check]:
        checks = [("camera", self.camera), ("models", self.models), ("runtime", self.runtime),
                  ("key", self.key), ("vault", self.vault), ("broker", self.broker), ("clock", self.clock),
                  ("disk", self.disk), ("temperature", self.temperature), ("throttling", self.throttling),
                  ("gpio", self.gpio), ("panel", self.panel)]
        out = []
        for name, check in checks:
            if name in skip:
                continue
            try:
                out.append(check())
            except Exception as exc:  # noqa: BLE001 - a check that breaks is itself a finding
                out.append(Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                                 "report this with `consentry doctor --json`"))
        return out

    # -- camera -------------------------------------------------------------------------
    def camera(self) -> Check:
        cfg = self.settings.camera
        try:
            opener = self.camera_opener or self._configured_camera()
            source = opener()
        except ConsentryError as exc:
            return Check("camera", "fail", str(exc), "connect the Pi camera (ribbon contacts toward the HDMI "
                         "ports; camera_auto_detect=1 in /boot/firmware/config.txt) or a USB camera; stop "
                         "consentry.service first if it is running; `consentry run --source demo` needs none")
        frame = _first_frame(source, timeout=5.0)
        if frame is None:
            return Check("camera", "fail", f"{source.name} opened but gave no frame in 5 s",
                         "check the cable and that no other program holds the camera")
        h, w = frame.shape[:2]
        frame.fill(0)
        wanted = (cfg.lores_width, cfg.lores_height)
        if source.name.startswith("picamera2") and (w, h) != wanted:
            return Check("camera", "warn", f"{source.name} gives {w}x{h}, configured {wanted[0]}x{wanted[1]}",
                         "set camera.lores_width/lores_height to a mode the sensor supports")
        return Check("camera", "pass", f"{source.name}: frames of {w}x{h}")

    def _configured_camera(self) -> Callable:
        from ..app import choose_opener

        return choose_opener(None, self.settings, lambda line: None, demo=False)

    # -- models and runtime -------------------------------------------------------------
    def models(self) -> Check:
        from ..runtime import Manifest, check_model

        try:
            manifest = Manifest.load(self.settings.vision.models_dir)
            for entry in manifest.entries:
                check_model(entry, rehash=self.thorough)
        except ConsentryError as exc:
            return Check("models", "fail", str(exc), "reinstall the models (sudo deploy/install.sh) or rebuild "
                         "them (`make models`); never edit a model file in place")
        return Check("models", "pass", f"{len(manifest.entries)} files match models/manifest.json")

    def runtime(self) -> Check:
        from ..runtime import _import_backend

        try:
            _, info = _import_backend(self.settings.vision.runtime)
        except ConsentryError as exc:
            return Check("runtime", "fail", str(exc), "pip install ai-edge-litert (or tflite-runtime with numpy<2)")
        threads = self.settings.vision.threads
        cores = os.cpu_count() or 1
        detail = f"{info.name} {info.version}, {threads} interpreter thread(s), XNNPACK, {cores} cores"
        if threads > cores:
            return Check("runtime", "warn", detail, "vision.threads is more than the cores; measure with "
                         "`consentry bench --threads N`")
        return Check("runtime", "pass", detail)

    # -- secrets and the store ----------------------------------------------------------
    def key(self) -> Check:
        from ..vault.factory import key_file_path
        from ..vault.keys import provider_from_config

        cfg = self.settings.vault
        try:
            provider = provider_from_config(cfg.key_provider, key_file_path(cfg, self.home), cfg.credential)
            provider.master_key(bytes(16))
        except ConsentryError as exc:
            return Check("key", "fail", str(exc), "create the master key once: `consentry keys init`")
        return Check("key", "pass", f"{cfg.key_provider} provider gives a key")

    def vault(self) -> Check:
        from ..vault.factory import open_vault

        try:
            with open_vault(self.settings.vault, self.home) as vault:
                integrity = vault.integrity_check()
                audit = vault.verify_audit()
                listed = vault.subjects()
                damaged = vault.damaged() if self.thorough else [s.id for s in listed if not s.intact]
                subjects = len(listed)
                site = site_of(vault)
        except ConsentryError as exc:
            return Check("vault", "fail", str(exc), "`consentry keys init` creates the store; a damaged one is "
                         "named above — restore it from backup, never edit it")
        if integrity != "ok" or not audit.ok:
            return Check("vault", "fail", f"integrity {integrity}; audit chain {'ok' if audit.ok else 'broken'}",
                         "`consentry audit verify` names the damage; restore from backup")
        if damaged:
            return Check("vault", "fail", f"integrity error: {len(damaged)} subject row(s) or template(s) fail "
                         f"authentication: {', '.join(damaged[:10])}", "revoke the damaged subjects (`consentry "
                         "revoke ID`) and re-enrol them, or restore the store from backup")
        if site.endswith("waiting for approval"):
            return Check("vault", "warn", f"{subjects} subject(s); {site}", "approve this door on the kiosk's staff "
                         "page with the code `consentry fleet join` shows")
        return Check("vault", "pass", f"integrity ok, audit chain ok, {subjects} subject(s); {site}")

    # -- network and time ---------------------------------------------------------------
    def broker(self) -> Check:
        cfg = self.settings.mqtt
        if not cfg.enabled:
            return Check("broker", "warn", "MQTT is off (mqtt.enabled = false): no events leave the device",
                         "set mqtt.enabled = true to report access events")
        try:
            how = self.host.reach(cfg.host, cfg.port, 3.0, cfg.tls_ca)
        except OSError as exc:
            return Check("broker", "fail", f"{cfg.host}:{cfg.port} not reachable: {exc}",
                         "start the broker (`sudo systemctl start mosquitto`) or fix mqtt.host/port; events are "
                         "queued meanwhile")
        if cfg.tls_ca is None and cfg.host not in ("127.0.0.1", "localhost", "::1"):
            return Check("broker", "warn", f"{cfg.host}:{cfg.port} reachable over plain TCP",
                         "a broker off this device should use TLS (mqtt.tls_ca)")
        return Check("broker", "pass", f"{cfg.host}:{cfg.port} reachable ({how})")

    def clock(self) -> Check:
        out = self.host.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        synced = out.strip() == "yes" if out is not None else None
        if synced is None and self.host.read_text("/run/systemd/timesync/synchronized") is not None:
            synced = True
        if synced:
            return Check("clock", "pass", "synchronised (NTP)")
        if synced is None:
            return Check("clock", "warn", "cannot tell whether the clock is synchronised (no timedatectl)",
                         "enable systemd-timesyncd; consent expiry and command freshness need the right time")
        return Check("clock", "fail", "not synchronised", "check the network and `timedatectl timesync-status`; "
                     "a Pi has no battery clock, so it needs NTP after every boot")

    # -- the machine --------------------------------------------------------------------
    def disk(self) -> Check:
        from ..vault.factory import home_path

        home = home_path(self.settings.vault, self.home)
        free = self.host.disk_free(home)
        detail = f"{free / 2**30:.1f} GiB free at {home}"
        if free < NO_ROOM:
            return Check("disk", "fail", detail, "free space on the data partition: the vault cannot record")
        if free < LOW_ROOM:
            return Check("disk", "warn", detail, "less than 1 GiB free on the data partition")
        return Check("disk", "pass", detail)

    def temperature(self) -> Check:
        celsius = cpu_celsius(self.host)
        if celsius is None:
            return Check("temperature", "pass", "no CPU temperature sensor on this machine (not a Raspberry Pi)")
        detail = f"CPU {celsius:.1f} °C"
        if celsius >= TOO_HOT_C:
            return Check("temperature", "fail", detail, "the Pi throttles at 80 °C: fit a heatsink or fan, "
                         "keep the case out of the sun")
        if celsius >= HOT_C:
            return Check("temperature", "warn", detail, "running hot: check ventilation")
        return Check("temperature", "pass", detail)

    def throttling(self) -> Check:
        value = throttle_flags(self.host)
        if value is None:
            return Check("throttling", "pass", "no throttling report on this machine (not a Raspberry Pi)")
        now = [what for bit, what in THROTTLE_NOW.items() if value >> bit & 1]
        since = [what for bit, what in THROTTLE_SINCE_BOOT.items() if value >> bit & 1]
        if now:
            return Check("throttling", "fail", f"0x{value:x}: now {', '.join(now)}",
                         "use the official power supply (5.1 V, 3 A for a Pi 4, 5 A for a Pi 5) and cool the CPU")
        if since:
            return Check("throttling", "warn", f"0x{value:x}: since boot {', '.join(since)}",
                         "it recovered, but the supply or cooling is marginal")
        return Check("throttling", "pass", "0x0: never throttled since boot")

    def gpio(self) -> Check:
        from .gpio import gpio_check

        if self.settings.panel.kind != "relay":
            return Check("gpio", "pass", f"no relay pins: the {self.settings.panel.kind} panel owns the lock, "
                         "the contact and the exit button (see the panel check)")
        return gpio_check(self.settings.door, self.pin_factory, self.relay_test)


    def panel(self) -> Check:
        from ..panel.doctor import panel_check

        return panel_check(self.settings, self.home)


def throttle_flags(host: Host) -> int | None:
    """vcgencmd's ``throttled=0x...``, else the firmware's sysfs file; None where neither exists."""
    out = host.run(["vcgencmd", "get_throttled"])
    text = out.split("=", 1)[-1] if out else host.read_text("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if text is None:
        return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def _first_frame(source, timeout: float):
    """The first frame of ``source`` within ``timeout`` s (None otherwise); the source is closed."""
    got: list = []

    def pull() -> None:
        try:
            got.append(next(iter(source.frames()), None))
        except Exception:  # noqa: BLE001 - a camera that raises gave no frame
            got.append(None)

    worker = threading.Thread(target=pull, daemon=True)
    worker.start()
    worker.join(timeout)
    with contextlib.suppress(Exception):
        source.close()
    return got[0] if got else None
