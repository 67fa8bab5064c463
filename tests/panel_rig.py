"""Plays the access-control panel: libosdp's own ControlPanel on the master side of a pty, the
appliance's reader opening the slave path as its serial port (as it opens /dev/ttyUSB0)."""

from __future__ import annotations

import contextlib
import os
import pty
import queue
import time
import tty

import osdp


class PtyMaster(osdp.Channel):
    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, buf)
        except (BlockingIOError, OSError):
            return 0

    def flush(self) -> None:
        pass


class Pty:
    """A pty pair in raw mode; ``path`` is what the reader opens."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class Panel:
    """A ControlPanel polling one reader at ``address``; card reads land in ``reads``."""

    def __init__(self, line: Pty, address: int, scbk: bytes | None, flags=()) -> None:
        self.reads: queue.Queue[dict] = queue.Queue()
        self.events: list[dict] = []
        self.address = address
        info = osdp.PDInfo(address, PtyMaster(line.master), scbk=scbk, flags=list(flags))
        self.cp = osdp.ControlPanel([info], log_level=osdp.LogLevel.Emergency, event_handler=self._event)
        self.cp.start()

    def _event(self, pd: int, event: dict) -> int:
        self.events.append(event)
        if event.get("event") == osdp.Event.CardRead:
            self.reads.put(event)
        return 0

    def wait_secure(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.cp.is_sc_active(self.address):
                return True
            time.sleep(0.1)
        return False

    def online(self) -> bool:
        return self.cp.is_online(self.address)

    def command(self, cmd: dict) -> None:
        self.cp.submit_command(self.address, cmd)

    def close(self) -> None:
        self.cp.stop()
