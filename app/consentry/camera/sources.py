"""Frame sources: a demo that needs no camera or data, an image file, a folder, OpenCV.

Every source yields (H, W, 3) uint8 RGB frames and is closed explicitly. The spec string
is ``demo``, ``file:PATH``, ``dir:PATH`` or ``opencv:N|URL``; anything else is a ConfigError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import CameraError, ConfigError, ImageError
from ..vision.image_io import read_image

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".wmv", ".webm", ".m4v"}


class FrameSource(Protocol):
    """``frames()`` yields (H, W, 3) uint8 RGB frames; it ends when a finite source (file,
    folder) is exhausted and raises CameraError when a live source fails."""

    name: str
    finite: bool

    def frames(self) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...


class DemoSource:
    """skimage's public-domain astronaut, panned slowly so the face moves; loops forever
    at about ``fps`` frames a second, like a camera would. Where scikit-image is not installed
    (a device: install.sh does not install it) the frames are a generated test pattern with no
    face, and the name says so."""

    name = "demo"
    finite = False

    def __init__(self, loop: bool = True, fps: float = 15.0) -> None:
        try:
            from skimage import data  # imported here: only the demo needs scikit-image

            self._image = data.astronaut()
        except ImportError:
            self.name = "demo (test pattern: no face; scikit-image is not installed)"
            log.warning("scikit-image is not installed: the demo source shows a test pattern with no face")
            ramp = np.linspace(0, 255, 572, dtype=np.float32)
            self._image = np.ascontiguousarray(np.stack([np.tile(ramp, (512, 1))] * 3, axis=-1).astype(np.uint8))
        self.loop = loop
        self.period = 1.0 / fps

    def frames(self) -> Iterator[np.ndarray]:
        h, w = self._image.shape[:2]
        shifts = list(range(0, 60, 4)) + list(range(60, 0, -4))
        while True:
            for dx in shifts:
                due = time.monotonic() + self.period
                yield np.ascontiguousarray(self._image[:, dx: w - 60 + dx])
                time.sleep(max(0.0, due - time.monotonic()))
            if not self.loop:
                return

    def close(self) -> None:
        pass


class FolderSource:
    """Every image file in a file path or folder (sorted); unreadable files are skipped."""

    finite = True

    def __init__(self, path: Path) -> None:
        if path.is_dir():
            self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            self.files = [path]
        else:
            raise CameraError(f"no such image file or folder: {path}")
        self.name = f"dir:{path}" if path.is_dir() else f"file:{path}"

    def frames(self) -> Iterator[np.ndarray]:
        for path in self.files:
            try:
                yield read_image(path)
            except ImageError as exc:
                log.warning("skipping frame: %s", exc)

    def close(self) -> None:
        pass


def quiet_opencv(cv2) -> None:
    """OpenCV's own probing warnings are noise; our CameraError says what failed. Debian's
    python3-opencv has no ``cv2.utils.logging`` (found booting the image): use what exists."""
    logging_ = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_ is not None:
        logging_.setLogLevel(logging_.LOG_LEVEL_ERROR)
    elif hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(2)  # OpenCV's LOG_LEVEL_ERROR


class OpenCVSource:
    """A V4L2 device index, a video file or a stream URL through OpenCV. A file ends; a
    device or stream that stops delivering raises CameraError (the supervisor reopens it)."""

    def __init__(self, target: str, finite: bool = False) -> None:
        self.finite = finite
        import cv2

        self._cv2 = cv2
        quiet_opencv(cv2)
        self._cap = cv2.VideoCapture(int(target) if target.isdigit() else target)
        if not self._cap.isOpened():
            raise CameraError(f"OpenCV could not open {target!r} (no camera, or unreadable file/stream)")
        self.name = f"opencv:{target}"

    @property
    def fps(self) -> float:
        """The stream's nominal frame rate (15 where it reports none or nonsense)."""
        fps = float(self._cap.get(self._cv2.CAP_PROP_FPS) or 0.0)
        return fps if 1.0 <= fps <= 240.0 else 15.0

    @property
    def frame_count(self) -> int:
        """Frames in a file (0 for a camera or stream)."""
        return max(int(self._cap.get(self._cv2.CAP_PROP_FRAME_COUNT) or 0), 0)

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self._cap.read()
            if not ok:
                if self.finite:
                    return
                raise CameraError(f"{self.name} stopped delivering frames")
            yield self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._cap.release()


def open_source(spec: str) -> FrameSource:
    kind, _, arg = spec.partition(":")
    if kind == "demo":
        return DemoSource()
    if kind == "file" and Path(arg).suffix.lower() in VIDEO_SUFFIXES:
        if not Path(arg).is_file():
            raise CameraError(f"no such video file: {arg}")
        return OpenCVSource(arg, finite=True)
    if kind in ("file", "dir") and arg:
        return FolderSource(Path(arg))
    if kind == "picamera2":
        from .picamera2_source import Picamera2Source

        return Picamera2Source()
    if kind == "opencv" and arg:
        return OpenCVSource(arg)
    raise ConfigError(f"unknown frame source {spec!r}; use picamera2, demo, file:PATH, dir:PATH or opencv:N|URL")
