"""A fake camera for tests: plays frames like a live source, records what happened, and
stalls or disconnects on command."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import CameraError


class FakeCamera:
    """Live (never-ending unless ``loop=False``) source over ``frames``.

    ``disconnect()`` makes the camera vanish: the current read raises CameraError and opening
    fails until ``reconnect()``. ``stall()`` blocks reads until ``resume()``. ``opens``,
    ``reads`` and ``events`` record what the appliance did.
    """

    finite = False

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 30.0, loop: bool = True) -> None:
        self._frames = list(frames)
        self.period = 1.0 / fps
        self.loop = loop
        self.connected = True
        self._running = threading.Event()
        self._running.set()
        self.opens = 0
        self.reads = 0
        self.events: list[tuple[float, str]] = []
        self.name = "fake"

    # -- fault injection ------------------------------------------------------------------
    def disconnect(self) -> None:
        self.connected = False
        self.events.append((time.monotonic(), "disconnect"))

    def reconnect(self) -> None:
        self.connected = True
        self.events.append((time.monotonic(), "reconnect"))

    def stall(self) -> None:
        self._running.clear()
        self.events.append((time.monotonic(), "stall"))

    def resume(self) -> None:
        self._running.set()
        self.events.append((time.monotonic(), "resume"))

    # -- FrameSource via open() -----------------------------------------------------------
    def open(self) -> FakeCamera:
        """What the supervisor calls to (re)open the camera."""
        if not self.connected:
            raise CameraError("fake camera is unplugged")
        self.opens += 1
        self.events.append((time.monotonic(), "open"))
        return self

    def frames(self) -> Iterator[np.ndarray]:
        while True:
            for frame in self._frames:
                self._running.wait()
                if not self.connected:
                    raise CameraError("fake camera was unplugged")
                time.sleep(self.period)
                self.reads += 1
                yield frame.copy()
            if not self.loop:
                return

    def close(self) -> None:
        self.events.append((time.monotonic(), "close"))
