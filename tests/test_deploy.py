"""deploy/ and firmware/: the installer in dry-run against a temporary root, the unit, the
shipped config and the boot configuration."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from consentry.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def dry_run(root: Path, codename: str, *flags: str) -> str:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text(f"VERSION_CODENAME={codename}\n")
    done = subprocess.run(["bash", str(ROOT / "deploy" / "install.sh"), "--dry-run", "--root", str(root), *flags],
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_installer_for_a_chroot_or_image_enables_but_never_starts_nor_makes_secrets(tmp_path):
    out = dry_run(tmp_path, "trixie", "--no-start", "--no-kiosk")
    assert "systemctl enable mosquitto consentry" in out and "--now" not in out
    assert "systemd-creds" not in out and "consentry-kiosk" not in out and "chromium" not in out
    assert "--secrets-only" in out  # it says what to run on the device
    secrets = dry_run(tmp_path, "trixie", "--secrets-only")
    assert "systemd-creds encrypt --name=consentry-master-key" in secrets and "apt-get" not in secrets


@pytest.mark.parametrize("codename", ["trixie", "bookworm"])
def test_installer_dry_run_lays_out_the_system_and_is_idempotent(tmp_path, codename):
    out = dry_run(tmp_path, codename)
    assert "python3-picamera2" in out and "--system-site-packages" in out
    assert "systemctl --global enable consentry-kiosk" in out
    assert "pip install --no-deps" in out and "-c /opt/consentry/constraints.txt" in out
    assert "numpy==" in (tmp_path / "opt" / "consentry" / "constraints.txt").read_text()
    for path in ("etc/systemd/system/consentry.service", "etc/consentry/consentry.toml",
                 "etc/consentry/consent/door.txt", "etc/mosquitto/conf.d/consentry.conf",
                 "etc/mosquitto/consentry.acl", "usr/share/consentry/models/manifest.json",
                 "etc/systemd/user/consentry-kiosk.service"):
        assert (tmp_path / path).is_file(), path
    assert (tmp_path / "var/lib/consentry").stat().st_mode & 0o777 == 0o700
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())
    for model in manifest["models"]:  # every file the manifest names, the shape predictor's .npz too
        assert (tmp_path / "usr/share/consentry/models" / model["file"]).is_file(), model["file"]
    config = tmp_path / "etc/consentry/consentry.toml"
    config.write_text(config.read_text() + "\n# edited by the operator\n")
    dry_run(tmp_path, codename)
    assert "edited by the operator" in config.read_text(), "a second run must keep the operator's config"


def test_shipped_config_is_valid_and_keeps_secrets_out():
    settings = load_settings(ROOT / "deploy" / "consentry.toml")
    assert settings.vault.key_provider == "systemd-credential"
    text = (ROOT / "deploy" / "consentry.toml").read_text().lower()
    assert "password" not in text and "secret =" not in text


def test_unit_is_hardened_and_notifies():
    unit = (ROOT / "deploy" / "consentry.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "ReadWritePaths=/var/lib/consentry", "DevicePolicy=closed", "LoadCredentialEncrypted=consentry-mqtt"):
        assert line in unit, line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "consentry.service"
    unit.write_text((ROOT / "deploy" / "consentry.service").read_text().replace(
        "/opt/consentry/.venv/bin/consentry", shutil.which("true")))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert "consentry.service" not in done.stderr or done.returncode == 0, done.stderr


def test_firmware_holds_the_relay_locked_from_power_on():
    config = (ROOT / "firmware" / "config.txt").read_text()
    assert "gpio=17=op,dl" in config and "dtparam=watchdog=on" in config
    assert "GPIO17" in (ROOT / "firmware" / "README.md").read_text()


def test_every_default_setting_survives_a_save_and_load(tmp_path):
    """`calibrate --write` saves the whole config: every field type (lists too) must round-trip."""
    from consentry.config import Settings, load_settings, save_settings

    path = tmp_path / "consentry.toml"
    save_settings(Settings(), path)
    assert load_settings(path) == Settings()


def test_shipped_config_decides_as_the_calibrated_defaults():
    """The installed config must not pin an older threshold than the one calibrated for its rule."""
    from consentry.config import Settings

    shipped, defaults = load_settings(ROOT / "deploy" / "consentry.toml"), Settings()
    for field in ("scoring", "threshold", "visit_threshold", "visit_scoring"):
        assert getattr(shipped.match, field) == getattr(defaults.match, field), field
    assert (shipped.tracking.evidence_k, shipped.tracking.evidence_n) == (defaults.tracking.evidence_k,
                                                                          defaults.tracking.evidence_n)
