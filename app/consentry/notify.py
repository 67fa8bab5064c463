"""systemd's sd_notify protocol (READY, WATCHDOG, STOPPING, STATUS) without a dependency.

A no-op when not started by systemd (no $NOTIFY_SOCKET)."""

from __future__ import annotations

import contextlib
import os
import socket
import time


class Notifier:
    def __init__(self) -> None:
        self._address = os.environ.get("NOTIFY_SOCKET")
        if self._address and self._address.startswith("@"):
            self._address = "\0" + self._address[1:]
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self._interval = usec / 2e6 if usec else None  # ping at half the watchdog timeout
        self._last = 0.0

    def send(self, message: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            sock.sendto(message.encode(), self._address)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def alive(self) -> None:
        """Called from the frame loop: a loop that stops looping stops pinging."""
        if self._interval is not None and time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1")
