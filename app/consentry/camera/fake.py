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


class ScriptedCamera(FakeCamera):
    """A person on cue: plays ``clip[idle]`` to and fro; ``act(name)`` plays the slice
    ``scripts[name]`` of the clip once, then back the same way, then idle again (after the act
    still playing: cutting into it would jump the face across the picture, which no one does);
    ``show(frames)`` plays any frames at once instead (a second face walking in, an empty view)."""

    def __init__(self, clip: Sequence[np.ndarray], scripts: dict[str, tuple[int, int]], fps: float = 15.0,
                 idle: str = "idle") -> None:
        super().__init__(clip, fps=fps)
        self.clip = list(clip)
        self.scripts = scripts
        self.idle = idle
        self.queue: list[np.ndarray] = []
        self.lock = threading.Lock()

    def act(self, name: str) -> None:
        a, b = self.scripts[name]
        with self.lock:
            self.queue += self.clip[a:b] + self.clip[a:b][::-1]

    def show(self, frames: Sequence[np.ndarray]) -> None:
        with self.lock:
            self.queue = list(frames)

    def frames(self) -> Iterator[np.ndarray]:
        idle = self.clip[slice(*self.scripts[self.idle])]
        idle = idle + idle[::-1]
        i = 0
        while True:
            time.sleep(self.period)
            with self.lock:
                frame = self.queue.pop(0) if self.queue else idle[i % len(idle)]
            i += 1
            self.reads += 1
            yield frame.copy()
