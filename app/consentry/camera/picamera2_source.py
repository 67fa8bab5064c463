"""Raspberry Pi cameras through picamera2 — the only module that imports picamera2.

Raspberry Pi OS ships picamera2 through apt (python3-picamera2), not PyPI; the venv sees it
with --system-site-packages. Two streams: a small ``lores`` stream (YUV420, converted to
RGB) that detection runs on, and a ``main`` RGB stream for enrolment crops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from ..errors import CameraError

log = logging.getLogger(__name__)


def _default_camera() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraError("picamera2 is not installed (on Raspberry Pi OS: apt install python3-picamera2, "
                          "and create the venv with --system-site-packages)") from exc
    try:
        return Picamera2()
    except (RuntimeError, IndexError) as exc:
        raise CameraError(f"no Raspberry Pi camera found: {exc}") from exc


class Picamera2Source:
    name = "picamera2"
    finite = False

    def __init__(self, main_size: tuple[int, int] = (1280, 720), lores_size: tuple[int, int] = (640, 480),
                 camera_factory: Callable[[], Any] = _default_camera) -> None:
        self._cam = camera_factory()
        try:
            config = self._cam.create_video_configuration(
                main={"size": main_size, "format": "RGB888"}, lores={"size": lores_size, "format": "YUV420"})
            self._cam.configure(config)
            self._cam.start()
        except Exception as exc:  # noqa: BLE001 - libcamera raises many types; all mean "no camera"
            self.close()
            raise CameraError(f"picamera2 could not start the camera: {exc}") from exc
        self.lores_size = lores_size

    def frames(self) -> Iterator[np.ndarray]:
        w, h = self.lores_size
        while True:
            try:
                yuv = self._cam.capture_array("lores")
            except Exception as exc:  # noqa: BLE001
                raise CameraError(f"picamera2 capture failed: {exc}") from exc
            rgb = cv2.cvtColor(yuv[: h * 3 // 2, :w], cv2.COLOR_YUV420p2RGB)
            yuv.fill(0)
            yield rgb

    def main_frame(self) -> np.ndarray:
        """One full-resolution frame (picamera2's RGB888 is BGR in memory), as RGB."""
        try:
            bgr = self._cam.capture_array("main")
        except Exception as exc:  # noqa: BLE001
            raise CameraError(f"picamera2 capture failed: {exc}") from exc
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        cam, self._cam = getattr(self, "_cam", None), None
        if cam is not None:
            for step in ("stop", "close"):
                try:
                    getattr(cam, step)()
                except Exception:  # noqa: BLE001 - closing a broken camera must not raise
                    log.debug("picamera2 %s failed", step, exc_info=True)
