"""Frame sources: the picamera2 adapter against a fake with picamera2's API, video files,
and the supervisor's reopen/replay rules."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from consentry.camera import open_source
from consentry.camera.fake import FakeCamera
from consentry.camera.picamera2_source import Picamera2Source
from consentry.camera.supervisor import SupervisedSource
from consentry.errors import CameraError, ConfigError


class FakePicamera2:
    """The slice of picamera2.Picamera2 the adapter uses, recording every call."""

    def __init__(self, fail_start: bool = False, fail_capture_after: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_start = fail_start
        self.fail_capture_after = fail_capture_after
        self.captures = 0
        self.config: dict = {}

    def create_video_configuration(self, main=None, lores=None, **kwargs) -> dict:
        self.calls.append("create_video_configuration")
        return {"main": main, "lores": lores}

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise RuntimeError("Camera __init__ sequence did not complete")

    def capture_array(self, name: str = "main") -> np.ndarray:
        self.calls.append(f"capture_array:{name}")
        self.captures += 1
        if self.fail_capture_after is not None and self.captures > self.fail_capture_after:
            raise RuntimeError("camera unplugged")
        w, h = self.config[name]["size"]
        if name == "lores":  # YUV420 planar: h*3/2 rows of w bytes, mid-grey
            return np.full((h * 3 // 2, w), 128, np.uint8)
        return np.zeros((h, w, 3), np.uint8)

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


def test_picamera2_adapter_streams_lores_rgb_and_main_frames():
    fake = FakePicamera2()
    source = Picamera2Source((1280, 720), (320, 240), camera_factory=lambda: fake)
    assert fake.config["lores"] == {"size": (320, 240), "format": "YUV420"}
    assert fake.config["main"]["format"] == "RGB888"
    frame = next(source.frames())
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and abs(int(frame.mean()) - 128) < 3
    assert source.main_frame().shape == (720, 1280, 3)
    source.close()
    assert fake.calls[-2:] == ["stop", "close"]


def test_picamera2_faults_become_camera_errors():
    with pytest.raises(CameraError, match="could not start"):
        Picamera2Source(camera_factory=lambda: FakePicamera2(fail_start=True))
    source = Picamera2Source(camera_factory=lambda: FakePicamera2(fail_capture_after=2))
    frames = source.frames()
    next(frames), next(frames)
    with pytest.raises(CameraError, match="capture failed"):
        next(frames)


def test_video_files_are_finite_sources(tmp_path, astronaut):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 128))
    for _ in range(5):
        writer.write(cv2.resize(astronaut, (128, 128)))
    writer.release()
    source = open_source(f"file:{video}")
    assert source.finite and len(list(source.frames())) == 5
    with pytest.raises(CameraError):
        open_source(f"file:{tmp_path / 'missing.mp4'}")
    with pytest.raises(ConfigError, match="unknown frame source"):
        open_source("webcam")


def test_supervisor_ends_or_replays_a_finite_source(astronaut):
    one_pass = FakeCamera([astronaut] * 3, fps=1000, loop=False)
    one_pass.finite = True
    assert len(list(SupervisedSource(one_pass.open).frames())) == 3
    replayed = FakeCamera([astronaut] * 3, fps=1000, loop=False)
    replayed.finite = True
    supervised = SupervisedSource(replayed.open, replay=True)
    for count, _ in enumerate(supervised.frames(), 1):
        if count == 7:
            break
    supervised.close()
    assert replayed.opens >= 3


def test_supervisor_retries_a_camera_that_is_not_there_yet(astronaut):
    camera = FakeCamera([astronaut], fps=200)
    camera.disconnect()
    supervised = SupervisedSource(camera.open, reopen_max_seconds=0.5)
    threading.Timer(0.6, camera.reconnect).start()
    frame = next(supervised.frames())
    supervised.close()
    assert frame.shape == astronaut.shape and "unavailable" not in supervised.status


def test_an_opencv_without_its_logging_module_still_opens_sources(monkeypatch, tmp_path):
    """Debian trixie's python3-opencv has no cv2.utils.logging; the appliance crashed on it."""
    import types

    import cv2
    from consentry.camera.sources import OpenCVSource

    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace())
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    source = OpenCVSource(str(path), finite=True)
    assert source.name.startswith("opencv:")
    source.close()


def test_the_demo_without_scikit_image_is_a_test_pattern(monkeypatch):
    """A device has no scikit-image (found booting the image: the demo source crashed there)."""
    import builtins

    from consentry.camera.sources import DemoSource

    real_import = builtins.__import__

    def no_skimage(name, *args, **kwargs):
        if name.startswith("skimage"):
            raise ImportError("No module named 'skimage'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_skimage)
    source = DemoSource(loop=False, fps=1000.0)
    frames = list(source.frames())
    assert "test pattern" in source.name and frames and frames[0].shape == (512, 512, 3)
    assert frames[0].dtype == np.uint8
