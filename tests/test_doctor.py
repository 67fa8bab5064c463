"""`consentry doctor`: each check against a faked machine (throttling, heat, a full disk, an
unreachable broker, an unsynchronised clock), a tampered model file, a missing camera, busy
pins, and the whole report through the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from consentry.camera.fake import FakeCamera
from consentry.cli import main
from consentry.config import Settings
from consentry.doctor import Doctor, report
from consentry.doctor.host import FakeHost
from consentry.errors import CameraError
from consentry.runtime import default_models_dir
from consentry.vault import KeyFile, Vault
from gpiozero.pins.mock import MockFactory

pytestmark = pytest.mark.pi  # also run on arm64 by `make pi-check`

HEALTHY = {
    "files": {"/sys/class/thermal/thermal_zone0/temp": "48312\n"},
    "commands": {"vcgencmd get_throttled": "throttled=0x0\n",
                 "timedatectl show -p NTPSynchronized --value": "yes\n"},
}


def settings(**sections) -> Settings:
    data = Settings().model_dump()
    data["door"]["pin_factory"] = "mock"
    for section, values in sections.items():
        data[section].update(values)
    return Settings.model_validate(data)


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    Vault(home, KeyFile(home / "master.key"), create=True).close()
    return home


def doctor(home, host=None, s=None, camera=None, factory=None, relay_test=True) -> Doctor:
    camera = camera or FakeCamera([np.full((480, 640, 3), 90, np.uint8)], fps=30).open
    return Doctor(s or settings(), home, host or FakeHost(**HEALTHY), camera_opener=camera,
                  pin_factory=factory or MockFactory(), relay_test=relay_test)


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_a_healthy_pi_passes_every_check_and_the_relay_follows(home):
    checks = doctor(home).run()
    assert [c.name for c in checks] == ["camera", "models", "runtime", "key", "vault", "broker", "clock", "disk",
                                        "temperature", "throttling", "gpio", "panel"]
    assert {c.name: c.status for c in checks if c.status != "pass"} == {}
    found = by_name(checks)
    assert "640x480" in found["camera"].detail and "48.3 °C" in found["temperature"].detail
    assert "followed unlock/lock 4 times and ended locked" in found["gpio"].detail
    assert report(checks)["failures"] == 0 and all(c.hint == "" for c in checks)


@pytest.mark.parametrize(("value", "status", "words"), [
    ("0x50005", "fail", "now under-voltage, throttled"),
    ("0x50000", "warn", "since boot under-voltage, throttled"),
    ("0x0", "pass", "never throttled"),
])
def test_throttling_from_vcgencmd(home, value, status, words):
    host = FakeHost(files=HEALTHY["files"], commands={"vcgencmd get_throttled": f"throttled={value}\n"})
    check = doctor(home, host).throttling()
    assert check.status == status and words in check.detail
    assert (check.hint != "") == (status != "pass")


def test_throttling_from_sysfs_where_vcgencmd_is_absent_and_nothing_on_a_pc(home):
    sysfs = FakeHost(files={"/sys/devices/platform/soc/soc:firmware/get_throttled": "4\n"})
    assert doctor(home, sysfs).throttling().status == "fail"
    bare = FakeHost()
    check = doctor(home, bare).throttling()
    assert check.status == "pass" and "not a Raspberry Pi" in check.detail
    assert "run vcgencmd get_throttled" in bare.asked


@pytest.mark.parametrize(("millidegrees", "status"), [("65000", "pass"), ("72000", "warn"), ("82500", "fail")])
def test_cpu_temperature(home, millidegrees, status):
    host = FakeHost(files={"/sys/class/thermal/thermal_zone0/temp": millidegrees})
    assert doctor(home, host).temperature().status == status


def test_a_tampered_model_file_fails_with_its_name(home, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(default_models_dir(), models)
    victim = models / "face_landmark.tflite"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    check = doctor(home, s=settings(vision={"models_dir": str(models)})).models()
    assert check.status == "fail" and "face_landmark" in check.detail and "make models" in check.hint


def test_no_camera_fails_with_a_hint(home):
    def nothing():
        raise CameraError("no camera: opencv:0: OpenCV could not open '0'")

    check = doctor(home, camera=nothing).camera()
    assert check.status == "fail" and "could not open" in check.detail and "camera" in check.hint


def test_a_camera_that_gives_no_frame_fails(home):
    class Silent:
        name = "opencv:0"

        def frames(self):
            return iter(())

        def close(self):
            pass

    assert doctor(home, camera=Silent).camera().status == "fail"


def test_broker_down_off_and_remote_without_tls(home):
    down = doctor(home, FakeHost(**HEALTHY, reachable=None)).broker()
    assert down.status == "fail" and "refused" in down.detail and "mosquitto" in down.hint
    off = doctor(home, s=settings(mqtt={"enabled": False})).broker()
    assert off.status == "warn"
    remote = doctor(home, s=settings(mqtt={"host": "broker.example"})).broker()
    assert remote.status == "warn" and "TLS" in remote.hint


@pytest.mark.parametrize(("answer", "status"), [("yes\n", "pass"), ("no\n", "fail"), (None, "warn")])
def test_clock(home, answer, status):
    commands = {} if answer is None else {"timedatectl show -p NTPSynchronized --value": answer}
    assert doctor(home, FakeHost(commands=commands)).clock().status == status


@pytest.mark.parametrize(("free", "status"), [(50 * 2**20, "fail"), (500 * 2**20, "warn"), (8 * 2**30, "pass")])
def test_disk_space(home, free, status):
    assert doctor(home, FakeHost(free=free)).disk().status == status


def test_missing_key_and_store_fail_with_the_fix(tmp_path):
    checks = by_name(doctor(tmp_path / "empty").run())
    assert checks["key"].status == "fail" and "keys init" in checks["key"].hint
    assert checks["vault"].status == "fail" and "keys init" in checks["vault"].detail


def test_busy_pins_fail_and_the_relay_is_only_toggled_when_asked(home):
    from gpiozero import OutputDevice

    factory = MockFactory()
    holder = OutputDevice(settings().door.relay_pin, pin_factory=factory)
    try:
        busy = doctor(home, factory=factory).gpio()
    finally:
        holder.close()
    assert busy.status == "fail" and "consentry.service" in busy.hint
    quiet_factory = MockFactory()
    quiet = doctor(home, factory=quiet_factory, relay_test=False).gpio()
    assert quiet.status == "pass" and "not toggled" in quiet.detail
    assert len(quiet_factory.pin(settings().door.relay_pin).states) == 1  # only its initial (locked) state


def test_cli_json_report_and_exit_code_is_the_number_of_failures(tmp_path, capsys):
    code = main(["--home", str(tmp_path / "nowhere"), "doctor", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == result["failures"] == sum(c["status"] == "fail" for c in result["checks"])
    assert all(set(c) == {"name", "status", "detail", "hint"} for c in result["checks"])
    assert {c["name"]: c["status"] for c in result["checks"]}["models"] == "pass"


def test_the_staff_pages_model_check_rehashes_only_a_file_that_changed(home, tmp_path, monkeypatch):
    import os

    from consentry import runtime

    models = tmp_path / "models"
    shutil.copytree(default_models_dir(), models)
    s = settings(vision={"models_dir": str(models)})
    reads = []
    original = runtime.verified_bytes
    monkeypatch.setattr(runtime, "verified_bytes", lambda entry: reads.append(entry.path.name) or original(entry))
    assert doctor(home, s=s).models().status == "pass"  # doctor (and start-up) hash every file
    hashed = len(reads)
    assert hashed >= 4
    page = Doctor(s, home, host=FakeHost(**HEALTHY), thorough=False)
    assert page.models().status == "pass" and len(reads) == hashed  # unchanged: nothing read again
    victim = models / "face_landmark.tflite"
    stat = victim.stat()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))  # same size, and the mtime put back
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    check = page.models()
    assert check.status == "fail" and "face_landmark" in check.detail and reads[hashed:] == ["face_landmark.tflite"]
    assert doctor(home, s=s).models().status == "fail"
