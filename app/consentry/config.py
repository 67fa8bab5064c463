"""Configuration: one TOML file, validated by pydantic; unknown keys are errors.

Secrets never live here (keys come from files, credentials or the environment in later
rooms). Every field carries a description so ``consentry config check`` can explain it.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VisionConfig(_Strict):
    detector: Literal["blazeface_short_range", "blazeface_full_range"] = Field(
        "blazeface_short_range",
        description="Face detector from models/manifest.json: short range for a kiosk (faces within "
        "about 2 m), full range for wide scenes with small faces.")
    landmarks: Literal["face_mesh"] = Field("face_mesh", description="Landmark model name in the manifest.")
    embedder: Literal["dlib_resnet_v1_int8", "dlib_resnet_v1_float16", "dlib_resnet_v1_float32"] = Field(
        "dlib_resnet_v1_int8", description="Face embedder; templates of one embedder are never compared "
        "with another's.")
    max_image_pixels: int = Field(40_000_000, ge=1_000_000, le=400_000_000, description="Still images whose "
                                  "header claims more pixels are refused before decoding (a decompression bomb "
                                  "must not exhaust a Pi's memory).")
    flip: bool = Field(True, description="Average each face's descriptor with its mirror image's (one more "
                       "embedder run; TAR at FAR 1e-3 0.809 -> 0.833 on CelebA). Templates made with and "
                       "without it are never compared.")
    still_fallback: bool = Field(True, description="For still images (eval, enrol and identify from files, "
                                 "compare), search again with the full-range detector when the main one finds no "
                                 "face; live camera frames never do.")
    refine_landmarks: bool = Field(True, description="Refine the chip's five points with dlib's own 5-point "
                                   "predictor (models/dlib_shape_predictor_5.npz, ~3 ms per embedded face): "
                                   "chips then match dlib's to a descriptor L2 of 0.045 instead of 0.093.")
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads per model; measure with "
                         "`consentry bench` before raising (a second thread did not help on 2 x86 cores).")
    runtime: Literal["auto", "ai-edge-litert", "tflite-runtime"] = Field(
        "auto", description="TFLite runtime; auto tries ai-edge-litert then tflite-runtime.")
    min_detection_score: float = Field(0.5, gt=0, lt=1, description="Detector confidence to keep a face.")
    max_faces: int = Field(20, ge=1, le=100, description="At most this many faces per frame.")
    models_dir: Path | None = Field(None, description="Folder holding manifest.json; default: the "
                                    "checkout's models/ or /usr/share/consentry/models.")


class QualityConfig(_Strict):
    min_face_px: float = Field(40.0, ge=20, description="Smallest face box width in pixels that is embedded. "
                               "Measured on CelebA faces scaled to 36-72 px (docs/thresholds.md): genuine distances "
                               "grow slowly with smaller faces and stranger distances do not shrink; 40 px is a face "
                               "at about 2.5 m in the 640x480 detection stream, and 43-54 px faces of 320x240 video "
                               "are embedded.")
    min_inside: float = Field(0.95, gt=0, le=1, description="Fraction of the face box that must be inside "
                              "the frame.")
    min_sharpness: float = Field(30.0, ge=0, description="Variance of the Laplacian of the 96x96 grey face "
                                 "patch; a Gaussian blur of sigma 2 on a 95 px face measures about 24.")
    max_yaw_deg: float = Field(35.0, gt=0, le=90, description="Largest head turn, degrees.")
    max_pitch_deg: float = Field(30.0, gt=0, le=90, description="Largest head tilt up or down, degrees.")
    dark: float = Field(40.0, ge=0, le=255, description="Lowest mean grey level of the face patch.")
    bright: float = Field(220.0, ge=0, le=255, description="Highest mean grey level of the face patch.")


class TrackingConfig(_Strict):
    min_iou: float = Field(0.3, gt=0, lt=1, description="Box overlap that continues a track.")
    max_missed: int = Field(5, ge=0, description="Frames a track survives without being seen.")
    recheck_frames: int = Field(15, ge=1, description="Frames between re-embeddings of a decided track.")
    evidence_k: int = Field(3, ge=1, description="Good frames a visit needs before its mean descriptor can "
                            "decide; 1 for a single photo.")
    evidence_n: int = Field(8, ge=1, description="The most recent good frames whose mean descriptor a visit "
                            "is scored on (the buffer that holds them is zeroed at the decision).")
    visit_seconds: float = Field(3.0, gt=0, le=60, description="A visit without a match is `unknown` this long "
                                 "after its first good frame (its descriptors are zeroed then); it re-opens when "
                                 "the face grows by visit_regrow or a slow re-check frame matches.")
    visit_stall_frames: int = Field(300, ge=1, le=300, description="A visit settles early when its face has "
                                    "not grown by 5 % over this many good frames (the person stopped approaching). "
                                    "Default 300: only the budget ends a visit; a person standing still often shows "
                                    "their best frames a second or two in (measured on the shared stage clip).")
    visit_regrow: float = Field(1.25, gt=1, le=4, description="A settled unknown track whose face width reaches "
                                "this multiple of its width at settling starts a new visit.")
    pipeline: Literal["serial", "detect-ahead"] = Field("serial", description="`detect-ahead`: detect the next "
                                                         "frame on a second thread while this one is embedded "
                                                         "(decisions one frame later; measured trade-off in "
                                                         "docs/performance-notes.md).")
    max_embeds_per_frame: int = Field(3, ge=1, le=50, description="Faces embedded per frame at most (largest "
                                      "and most central first), so a crowd cannot saturate the Pi.")

    @model_validator(mode="after")
    def _k_le_n(self) -> TrackingConfig:
        if self.evidence_k > self.evidence_n:
            raise ValueError(f"evidence_k ({self.evidence_k}) must not exceed evidence_n ({self.evidence_n})")
        return self


class MatchConfig(_Strict):
    threshold: float = Field(0.3978, gt=0, lt=2, description="L2 distance of one image's descriptor to a "
                             "subject (the mean of its templates) at or below which it is that subject: stills "
                             "(identify, checkout verification) and the door's slow re-checks. Default: `consentry "
                             "calibrate --templates 5` on the shared CelebA set for FMR 1e-3 per attempt against 10 "
                             "subjects enrolled with 5 templates each (1e-4 per subject); see docs/thresholds.md.")
    visit_threshold: float | None = Field(0.2356, gt=0, lt=2, description="Distance of a visit's window to a "
                                          "subject at or below which the door grants, on visit_scoring's scale "
                                          "(None: `threshold`, mean scoring only). Default: `consentry calibrate "
                                          "--visits --rule unit` on generated approach visits (correlated frames, "
                                          "every window and re-open of a 15 fps visit) of the shared still sets "
                                          "and the real clips, for at most 1e-3 false grants per stranger visit "
                                          "against 100 enrolled subjects (0 of 5,416 stranger-visit searches; "
                                          "docs/thresholds.md). With visit_scoring mean: 0.3348.")
    visit_scoring: Literal["mean", "unit"] = Field("unit", description="How the door scores a visit's "
                                                   "window: `mean` (L2 of the mean descriptor to the subject's "
                                                   "centroid) or `unit` (unit descriptors averaged, chord distance "
                                                   "to the unit-normalised centroid). visit_threshold belongs to it.")
    scoring: Literal["centroid", "nearest"] = Field("centroid", description="How a subject's templates are "
                                                    "scored: distance to their mean (centroid) or to the nearest "
                                                    "one. Measured in docs/thresholds.md; the threshold belongs to "
                                                    "the rule it was calibrated with.")
    margin: float = Field(0.0, ge=0, lt=1, description="In 1:N search the best subject must be closer than "
                          "the second-best subject by at least this L2 distance, else `unknown`.")

    @model_validator(mode="after")
    def _unit_has_its_threshold(self) -> MatchConfig:
        if self.visit_scoring == "unit" and self.visit_threshold is None:
            raise ValueError("visit_scoring unit needs visit_threshold (the per-image threshold is on another scale)")
        return self
    target_fmr: float | None = Field(1e-3, gt=0, lt=1, description="False-match rate per attempt the "
                                     "threshold was calibrated for (written by `consentry calibrate`).")
    calibrated_gallery_size: int | None = Field(10, ge=1, description="Gallery size the per-attempt rate "
                                                "assumed (per comparison: target_fmr / this).")
    calibrated_templates: int | None = Field(5, ge=1, description="Templates per subject the calibration "
                                             "assumed (a comparison is a probe against one subject's set).")
    calibrated_on: str | None = Field("celeba", description="Data set the threshold was calibrated on.")
    calibrated_at: str | None = Field("2026-12-01", description="Date of the calibration (ISO 8601).")
    impostor_comparisons: int | None = Field(142443, ge=0, description="Impostor pairs behind the calibration; "
                                             "3 / this is the smallest FMR it can support.")
    adapt: bool = Field(True, description="Door templates (decide/adapt.py): after a granted visit whose "
                        "liveness passed and whose mean descriptor is at least adapt_margin inside visit_threshold "
                        "and within visit_threshold of the consent-time centroid, the door keeps that descriptor "
                        "as a template of the subject (encrypted, destroyed with the subject, never replicated). "
                        "False: nothing is learned and door templates already kept are destroyed at start.")
    adapt_margin: float = Field(0.03, ge=0, lt=1, description="How far inside visit_threshold (on "
                                "visit_scoring's scale) a granted visit must be to be learned. 0.03 at the unit "
                                "scale and 0.2356: it learns 46 % of the webcam person's first matching visits, "
                                "while CelebA stranger stills within reach of 5-template unit centroids fall from "
                                "2 to 1 in 142,443 (docs/thresholds.md, door templates).")
    adapt_max: int = Field(3, ge=1, le=10, description="Door templates kept per subject (the oldest replaced; "
                           "consent-time templates are never displaced).")
    adapt_consents: list[str] = Field(["consentry-door@2"], description="Consent texts (id@version) that tell "
                                      "the person a door learns door templates; subjects who agreed to another "
                                      "text (deploy/consent/door.txt before version 2 did not say it) are never "
                                      "learned from. Add a site's own texts here once they say it.")


class VaultConfig(_Strict):
    home: Path | None = Field(None, description="Data directory holding the template store; overridden by "
                              "--home, else $CONSENTRY_HOME, else ~/.local/share/consentry. The service "
                              "uses /var/lib/consentry.")
    key_provider: Literal["file", "passphrase", "systemd-credential"] = Field(
        "file", description="Where the master key comes from: a key file made by `consentry keys init` "
        "(owner-only permissions), a passphrase from $CONSENTRY_PASSPHRASE or $CONSENTRY_PASSPHRASE_FILE "
        "(scrypt), or a systemd credential in $CREDENTIALS_DIRECTORY.")
    key_file: Path | None = Field(None, description="Key file path (the path only, never the key); default "
                                  "HOME/master.key.")
    credential: str = Field("consentry-master-key", description="systemd credential name holding the key.")
    retention_days: int = Field(365, ge=1, le=1095, description="Default retention of a consent, days "
                                "(at most three years).")
    inactivity_days: int = Field(365, ge=1, le=1095, description="A subject not seen for this many days "
                                 "expires (at most three years).")
    purge_interval_hours: int = Field(24, ge=1, le=168, description="How often the appliance purges "
                                      "expired subjects.")


class CameraConfig(_Strict):
    source: str | None = Field(None, description="picamera2 | opencv:N|URL | file:PATH | dir:PATH | demo; "
                               "default: picamera2 or the first OpenCV camera, else the demo source.")
    width: int = Field(1280, ge=160, le=4056, description="picamera2 main stream width (enrolment crops).")
    height: int = Field(720, ge=120, le=3040, description="picamera2 main stream height.")
    lores_width: int = Field(640, ge=128, le=1920, description="picamera2 lores stream width (detection).")
    lores_height: int = Field(480, ge=96, le=1080, description="picamera2 lores stream height.")
    stall_seconds: float = Field(3.0, gt=0, le=60, description="No frame for this long: reopen the camera.")
    reopen_max_seconds: float = Field(5.0, gt=0, le=300, description="Longest wait between reopen attempts "
                                      "(the wait doubles from 0.25 s).")


class DoorConfig(_Strict):
    relay_pin: str = Field("GPIO17", description="Relay output pin (gpiozero name). Firmware drives it to the "
                           "locked level at power-on (firmware/config.txt).")
    relay_active_high: bool = Field(True, description="True if the relay unlocks when the pin is high.")
    unlock_seconds: float = Field(3.0, gt=0, le=30, description="How long a grant keeps the door unlocked.")
    cooldown_seconds: float = Field(10.0, ge=0, le=600, description="No second grant for the same subject "
                                    "within this time.")
    exit_button_pin: str | None = Field("GPIO27", description="Exit (egress) button pin, or none.")
    door_contact_pin: str | None = Field("GPIO22", description="Door contact pin (closed = door shut), or none.")
    held_open_seconds: float = Field(30.0, gt=0, le=3600, description="Report `held_open` after this long.")
    pin_factory: Literal["auto", "mock"] = Field("auto", description="gpiozero pin factory; `mock` simulates "
                                                  "the pins (used automatically with the demo source).")


class PanelConfig(_Strict):
    kind: Literal["relay", "osdp", "wiegand"] = Field(
        "relay", description="What a grant drives: `relay`, this device's own lock relay ([door]); `osdp`, a card "
        "read sent to an access-control panel as an OSDP reader (RS-485, Secure Channel); `wiegand`, the same card "
        "frame as D0/D1 pulses. With a panel, the panel owns the lock, the contact and the exit button.")
    port: str | None = Field(None, description="OSDP: serial device of the RS-485 line (a Pi UART with an RS-485 "
                             "HAT such as /dev/ttyAMA0, a USB adapter /dev/ttyUSB0, or a pty).")
    baud: Literal[9600, 19200, 38400, 57600, 115200, 230400] = Field(9600, description="OSDP line speed; "
                                                                     "the panel's reader port setting.")
    address: int = Field(0, ge=0, le=126, description="OSDP address of this reader on the panel's bus (0-126).")
    card_format: Literal["h10301", "h10304", "raw"] = Field(
        "h10301", description="Credential frame: `h10301` 26-bit (facility 0-255, card 0-65535), `h10304` 37-bit "
        "(facility 0-65535, card 0-524287), `raw` (the card number in raw_bits bits, no parity).")
    facility: int = Field(0, ge=0, le=65535, description="Facility (site) code sent with every card unless a "
                          "subject's card names its own (`enroll --facility`).")
    raw_bits: int = Field(32, ge=8, le=64, description="`raw` format: bits of the card number on the line.")
    allow_plain: bool = Field(False, description="OSDP without Secure Channel (card numbers in clear on the "
                              "wire; anyone on the bus can replay them). Off by default; when on, a warning is "
                              "printed at start and shown on the health page.")
    install_seconds: float = Field(300.0, gt=0, le=3600, description="`consentry panel key --install-mode`: how "
                                   "long the reader accepts one KEYSET from the panel.")
    send_within_seconds: float = Field(2.0, gt=0, le=30, description="A grant's card read waits at most this "
                                       "long for the link to be up, and is withdrawn if the panel has not collected "
                                       "it this long after: a grant is never delivered late.")
    connect_wait_seconds: float = Field(5.0, ge=0, le=60, description="How long `consentry doctor` listens "
                                        "for the panel to bring the OSDP link up.")
    d0_pin: str = Field("GPIO5", description="Wiegand DATA0 output pin (gpiozero name; through an open-collector "
                        "or level-shifting stage to the panel's 5 V input).")
    d1_pin: str = Field("GPIO6", description="Wiegand DATA1 output pin.")
    pulse_us: int = Field(50, ge=20, le=200, description="Wiegand pulse width, microseconds (panels expect 50-100).")
    interval_us: int = Field(2000, ge=200, le=20000, description="Wiegand time from one pulse to the next, "
                             "microseconds (panels expect 1000-2000).")
    pulse_level: Literal["high", "low"] = Field("high", description="Wiegand: pin level during a pulse; `high` "
                                                 "for the usual open-collector transistor stage (which pulls the "
                                                 "panel's line low), `low` for a non-inverting level shifter.")
    pulse_backend: Literal["auto", "lgpio", "mock"] = Field("auto", description="Wiegand pulse output: `lgpio` "
                                                             "(Pi 4 and Pi 5), `mock` records the pulses; `auto` "
                                                             "tries lgpio then the mock with a warning.")

    @model_validator(mode="after")
    def _consistent(self) -> PanelConfig:
        if self.kind == "osdp" and not self.port:
            raise ValueError("panel.kind = \"osdp\" needs panel.port (the serial device of the RS-485 line)")
        if self.card_format == "h10301" and self.facility > 255:
            raise ValueError(f"panel.facility {self.facility} does not fit h10301 (0-255)")
        if self.pulse_us * 2 > self.interval_us:
            raise ValueError("panel.interval_us must be at least twice panel.pulse_us")
        return self


class LivenessConfig(_Strict):
    mode: Literal["passive", "challenge", "off"] = Field(
        "passive", description="`passive`: a matched face must pass the anti-spoofing networks and the rigid-plane "
        "check before the door opens; `challenge`: and then do what the kiosk screen asks (blink, turn); `off`: no "
        "check (a photo of an enrolled person opens the door; a warning is printed and shown on the health page).")
    threshold: float = Field(0.9, gt=0, lt=1, description="Mean P(real) over the scored frames needed to pass. "
                             "Default: `consentry eval-liveness --clips --bpcer-target 0.01` on the shared bona fide "
                             "clips (BPCER 0.5 % per visit at 0.90; docs/liveness.md has APCER and BPCER).")
    unclear: float = Field(0.5, gt=0, lt=1, description="Below this mean P(real) a face fails outright; between "
                           "this and `threshold` the passive verdict is not clear.")
    challenge_unclear: bool = Field(True, description="When the passive verdict is not clear, ask for a challenge "
                                    "on the kiosk screen instead of refusing (needs a screen at the door).")
    challenge_actions: list[Literal["turn_left", "turn_right", "blink"]] = Field(
        ["turn_left", "turn_right", "blink"], min_length=1, description="Actions a challenge may ask for.")
    challenge_count: int = Field(2, ge=1, le=3, description="Actions per challenge (with 2 or more, one is always "
                                 "a blink: a photo tilted in the hand can mimic a turn, not a blink).")
    challenge_step_s: float = Field(5.0, gt=0.5, le=30, description="Seconds allowed for each action.")
    frames: int = Field(4, ge=1, le=30, description="Frames of a matched track scored before the verdict.")
    frame_edge: int = Field(2, ge=0, le=30, description="Scored frames in which the face sits inside a closed "
                            "four-sided outline (a print's edge, a screen's bezel) that fail it; 0 turns the cue off.")
    planar_motion: float = Field(0.04, gt=0, le=1, description="Deformation beyond a similarity (fraction of the "
                                 "eye distance) that makes the rigid-plane check decide.")
    planar_residual: float = Field(0.01, gt=0, le=1, description="Homography residual (fraction of the eye "
                                   "distance) at or below which such a moving face is a flat picture.")
    max_failures: int = Field(3, ge=1, le=100, description="Failures for one subject within failure_window_s "
                              "that raise a presentation_attack event and a lockout.")
    failure_window_s: float = Field(300.0, gt=0, le=86400, description="Window for counting failures.")
    lockout_s: float = Field(120.0, ge=0, le=86400, description="How long that subject is refused after an alarm.")


class CheckoutConfig(_Strict):
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="A verification request fails (verified "
                                   "false) when no matching face is seen within this time.")
    frames_needed: int = Field(2, ge=1, le=30, description="Matching frames needed to answer verified true.")


class MqttConfig(_Strict):
    enabled: bool = Field(True, description="Publish events and accept requests over MQTT.")
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS by convention).")
    device_id: str = Field("consentry-1", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Topic prefix "
                           "consentry/<device_id>/.")
    tls_ca: Path | None = Field(None, description="CA certificate file; enables TLS.")
    tls_cert: Path | None = Field(None, description="Client certificate file (mutual TLS).")
    tls_key: Path | None = Field(None, description="Client key file (mutual TLS).")
    credentials_file: Path | None = Field(None, description="File with `username:password` (mode 600); or a "
                                          "systemd credential named consentry-mqtt.")
    command_secret_file: Path | None = Field(None, description="File holding the shared secret that signs "
                                             "cmd/revoke requests (HMAC-SHA256); commands are refused without it.")
    queue_size: int = Field(1000, ge=1, le=100000, description="Events kept while the broker is away; the "
                            "oldest are dropped (and counted) beyond this.")
    discovery_prefix: str | None = Field("homeassistant", description="Home Assistant discovery prefix, or "
                                         "none to skip discovery.")


class FleetConfig(_Strict):
    enabled: bool = Field(True, description="Take part in the site this device belongs to (`consentry fleet "
                          "init` on the enrolment kiosk, `consentry fleet join` on a door); no effect on a device "
                          "in no site.")
    max_staleness_seconds: float = Field(120.0, ge=5, le=3600, description="A door that has not confirmed the "
                                         "site's current state (a signed head issued within this long) stops "
                                         "granting until it syncs; also the longest a revocation can take to "
                                         "reach a door cut off from the broker.")
    max_skew_seconds: float = Field(30.0, ge=0, le=600, description="Records and heads issued further than "
                                    "this in the future (by this device's clock) are refused.")
    heartbeat_seconds: float = Field(10.0, ge=0.2, le=600, description="How often the kiosk re-issues the "
                                     "site head (and a door reports its state).")


class HttpConfig(_Strict):
    bind: str = Field("127.0.0.1", description="Web page bind address.")
    port: int = Field(8080, ge=0, le=65535, description="Web page port (0: choose a free one).")
    enabled: bool = Field(False, description="Serve the kiosk and admin pages (`--http-port` turns it on).")
    consent_dir: Path | None = Field(None, description="Folder with door.txt and checkout.txt consent texts; "
                                     "default: the checkout's deploy/consent, else /etc/consentry/consent.")
    capture_templates: int = Field(5, ge=1, le=20, description="Templates taken during kiosk enrolment.")


class Settings(_Strict):
    schema_version: int = Field(SCHEMA_VERSION, description="Config schema version.")
    vision: VisionConfig = VisionConfig()
    quality: QualityConfig = QualityConfig()
    tracking: TrackingConfig = TrackingConfig()
    match: MatchConfig = MatchConfig()
    vault: VaultConfig = VaultConfig()
    profile: Literal["door", "checkout"] = Field("door", description="What the appliance does with decisions.")
    camera: CameraConfig = CameraConfig()
    door: DoorConfig = DoorConfig()
    panel: PanelConfig = PanelConfig()
    liveness: LivenessConfig = LivenessConfig()
    checkout: CheckoutConfig = CheckoutConfig()
    mqtt: MqttConfig = MqttConfig()
    fleet: FleetConfig = FleetConfig()
    http: HttpConfig = HttpConfig()


def load_settings(path: Path | None) -> Settings:
    """Defaults when ``path`` is None; otherwise the validated file."""
    if path is None:
        return Settings()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config file {path}: {problems}") from exc
    if settings.schema_version != SCHEMA_VERSION:
        raise ConfigError(f"config file {path} has schema_version {settings.schema_version}; "
                          f"this Consentry reads {SCHEMA_VERSION}")
    return settings


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_settings(settings: Settings) -> str:
    """TOML text for ``settings`` (top-level scalars first, then one table per section)."""
    data = settings.model_dump(exclude_none=True)
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def save_settings(settings: Settings, path: Path) -> None:
    """Write atomically: a power cut leaves either the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(dump_settings(settings))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def explain(settings: Settings) -> str:
    """Every setting with its value and what it means (for `consentry config check --explain`)."""
    lines = []

    def walk(model: BaseModel, prefix: str) -> None:
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                lines.append(f"\n[{prefix}{name}]")
                walk(value, f"{prefix}{name}.")
            else:
                lines.append(f"{name} = {value!r}\n    {field.description or ''}")

    walk(settings, "")
    return "\n".join(lines).strip()
