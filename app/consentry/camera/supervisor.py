"""Keeps frames coming: reopens a camera that fails or stalls, with backoff, forever.

A reader thread pulls frames from the source into a one-slot mailbox (a newer frame
replaces an unread one, so the loop always sees the latest). When the source raises or ends
(a live one), it is closed and reopened after 0.25 s, 0.5 s, ... up to
``reopen_max_seconds``. A source that blocks without failing for ``stall_seconds`` is
abandoned to its reader thread (which closes it if it ever wakes) and a new reader opens
the camera afresh: a blocked read cannot be interrupted portably, but it can be outlived.
A finite source (file, folder) ends the stream, or is replayed when ``replay`` is set.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import CameraError
from .sources import FrameSource

log = logging.getLogger(__name__)
_END = object()


class SupervisedSource:
    def __init__(self, opener: Callable[[], FrameSource], *, stall_seconds: float = 3.0,
                 reopen_max_seconds: float = 5.0, replay: bool = False) -> None:
        self._opener = opener
        self.stall_seconds = stall_seconds
        self.reopen_max_seconds = reopen_max_seconds
        self.replay = replay
        self._mailbox: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self.source: FrameSource | None = None
        self.name = "camera"
        self.reopens = 0
        self.status = "starting"

    def _open(self) -> FrameSource:
        delay = 0.25
        while not self._stop.is_set():
            try:
                source = self._opener()
                self.name = source.name
                self.status = "ok"
                return source
            except CameraError as exc:
                self.status = f"unavailable: {exc}"
                log.warning("camera unavailable (%s); retrying in %.2f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.reopen_max_seconds)
        raise CameraError("stopped")

    def _post(self, item: object, generation: int, finite: bool = False) -> bool:
        """Deliver unless this reader has been superseded; False tells it to stop. A live
        camera's unread frame is replaced by the newer one; a file waits (every frame counts)."""
        while not self._stop.is_set() and generation == self._generation:
            try:
                self._mailbox.put(item, timeout=0.1) if finite else self._mailbox.put_nowait(item)
                return True
            except queue.Full:
                if finite:
                    continue
                try:
                    dropped = self._mailbox.get_nowait()
                    if isinstance(dropped, np.ndarray):
                        dropped.fill(0)
                except queue.Empty:
                    pass
        return False

    def _read(self, generation: int) -> None:
        while not self._stop.is_set() and generation == self._generation:
            try:
                source = self._open()
            except CameraError:
                return
            self.source = source
            try:
                for frame in source.frames():
                    if not self._post(frame, generation, source.finite):
                        return
                if source.finite and not self.replay:
                    self._post(_END, generation, True)
                    return
                if not source.finite:
                    raise CameraError(f"{source.name} ended")
            except CameraError as exc:
                self.status = f"failed: {exc}"
                log.warning("camera failed (%s); reopening", exc)
                self.reopens += 1
            finally:
                source.close()

    def _start_reader(self) -> None:
        self._generation += 1
        self._thread = threading.Thread(target=self._read, args=(self._generation,), name="camera-reader",
                                        daemon=True)
        self._thread.start()

    def frames(self) -> Iterator[np.ndarray]:
        """Frames until a finite source ends or :meth:`close`; never raises for camera faults."""
        self._start_reader()
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                item = self._mailbox.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - last > self.stall_seconds:
                    log.warning("camera stalled for %.1f s; opening it afresh", self.stall_seconds)
                    self.status = "stalled"
                    self.reopens += 1
                    self._start_reader()
                    last = time.monotonic()
                continue
            if item is _END:
                return
            last = time.monotonic()
            yield item

    def close(self) -> None:
        self._stop.set()
        self._generation += 1
        if self._thread is not None:
            self._thread.join(timeout=2.0)
