"""End to end through `consentry run`: a person enrolled from one shared-data clip is let in
when another clip of them is replayed; a clip of strangers opens nothing and identifies no
one. Real models, real vault, real mosquitto, gpiozero's MockFactory as the default factory."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import cv2
import numpy as np
import pytest
from consentry.app import Appliance
from consentry.camera.fake import FakeCamera
from consentry.cli import main
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from tests.broker import Recorder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mock_gpio():
    previous = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def frames_of(video: Path, every: int, limit: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out, index = [], 0
    while len(out) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % every == 0:
            out.append(bgr)
        index += 1
    cap.release()
    return out


def enrol_person_a(tmp_path: Path, faces_dir: Path, capsys, *extra: str) -> tuple[Path, str]:
    """Person A enrolled (``enroll`` with ``extra`` arguments) from 6 frames of the first webcam
    clip, the frames written to tmp only and removed; (home, subject)."""
    home = tmp_path / "home"
    shots = []
    for i, bgr in enumerate(frames_of(faces_dir / "video" / "webcam_person_a_1.wmv", 45, 6)):
        shot = tmp_path / f"enrol-{i}.png"
        cv2.imwrite(str(shot), bgr)
        shots.append(str(shot))
    assert main(["--home", str(home), "keys", "init"]) == 0
    code = main(["--home", str(home), "enroll", "--name", "Person A", "--consent",
                 str(ROOT / "deploy" / "consent" / "door.txt"), "--yes", "--json", *extra, *shots])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    for shot in shots:
        Path(shot).unlink()
    assert code == 0 and result["templates"] >= 3
    return home, result["subject"]


@pytest.fixture
def enrolled_home(tmp_path, faces_dir, capsys):
    return enrol_person_a(tmp_path, faces_dir, capsys)


def run_clip(home: Path, clip: Path, broker_port: int, tmp_path: Path, frames: int | None = None) -> None:
    config = tmp_path / "consentry.toml"
    config.write_text("[door]\nunlock_seconds = 0.5\ncooldown_seconds = 120.0\n")
    argv = ["--config", str(config), "--home", str(home), "run", "--source", f"file:{clip}", "--exit-at-end",
            "--profile", "door", "--mqtt-port", str(broker_port)]
    assert main(argv + (["--frames", str(frames)] if frames else [])) == 0


def relay_history(factory: MockFactory) -> list[bool]:
    return [bool(s.state) for s in factory.pin("GPIO17").states]


def test_enrolled_person_is_let_in_and_strangers_are_not(enrolled_home, faces_dir, broker, tmp_path, mock_gpio):
    home, subject = enrolled_home
    recorder = Recorder(broker.port)
    run_clip(home, faces_dir / "video" / "webcam_person_a_2.wmv", broker.port, tmp_path)
    assert recorder.wait_for(lambda r: r.json("event/access"))
    granted = [e for e in recorder.json("event/access") if e["decision"] == "granted"]
    assert [e["subject"] for e in granted] == [subject]
    assert relay_history(mock_gpio).count(True) == 1, "the relay should pulse exactly once"
    assert relay_history(mock_gpio)[-1] is False

    before = len(recorder.messages)
    run_clip(home, faces_dir / "video" / "multi_face.avi", broker.port, tmp_path, frames=300)
    assert recorder.wait_for(lambda r: any(p == b"offline" for _, p, _ in r.messages[before:]))
    stranger_events = [json.loads(p) for t, p, _ in recorder.messages[before:] if t.endswith("event/access")]
    recorder.close()
    assert stranger_events, "strangers should be reported as unknown"
    assert all(e["decision"] == "unknown" and e["subject"] is None and e["distance"] is None
               for e in stranger_events)
    assert relay_history(mock_gpio).count(True) == 1, "strangers must not open the door"


@pytest.mark.slow
def test_memory_stays_flat_across_a_long_replay(enrolled_home, faces_dir, tmp_path, capsys):
    from consentry.bus.fake import RecordingBus
    from consentry.config import Settings

    home, _ = enrolled_home
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in
              frames_of(faces_dir / "video" / "multi_face.avi", 3, 120)]
    samples: list[float] = []

    class Sampling(Appliance):
        def _frame(self, frame):
            super()._frame(frame)
            if self.frames % 500 == 0:
                samples.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)

    s = Settings()
    app = Sampling(s, home=home, out=lambda line: None, camera_opener=FakeCamera(frames, fps=1000).open,
                   pin_factory=MockFactory(), bus=RecordingBus())
    app.run(max_frames=4000)
    with capsys.disabled():
        print(f"\npeak RSS every 500 frames (MB): {[round(x, 1) for x in samples]}")
    assert samples[-1] - samples[1] < 20.0
