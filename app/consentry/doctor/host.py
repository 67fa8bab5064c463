"""What the doctor asks the machine, behind one small interface so tests can inject any
answer (a throttled Pi, a full disk, an unreachable broker) and see what was asked."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Protocol


class Host(Protocol):
    def read_text(self, path: str) -> str | None:
        """A sysfs or /run file's text, or None when it does not exist or cannot be read."""

    def run(self, argv: list[str], timeout: float = 5.0) -> str | None:
        """A command's stdout when it exists and exits 0, else None."""

    def disk_free(self, path: Path) -> int:
        """Free bytes on the file system holding ``path``."""

    def reach(self, host: str, port: int, timeout: float, tls_ca: Path | None) -> str:
        """Open a TCP connection (and a TLS handshake with ``tls_ca``); what was reached.
        Raises OSError (ssl.SSLError included) when it cannot."""


THERMAL = "/sys/class/thermal/thermal_zone0/temp"


def cpu_celsius(host: Host) -> float | None:
    """The SoC temperature in °C (0.1 °C), or None where there is no sensor."""
    text = host.read_text(THERMAL)
    try:
        return round(int(text) / 1000.0, 1) if text else None
    except ValueError:
        return None


class RealHost:
    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def run(self, argv: list[str], timeout: float = 5.0) -> str | None:
        if shutil.which(argv[0]) is None:
            return None
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    def disk_free(self, path: Path) -> int:
        probe = Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return shutil.disk_usage(probe).free

    def reach(self, host: str, port: int, timeout: float, tls_ca: Path | None) -> str:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if tls_ca is None:
                return "TCP"
            context = ssl.create_default_context(cafile=str(tls_ca))
            with context.wrap_socket(sock, server_hostname=host) as tls:
                return f"TLS {tls.version()}"


class FakeHost:
    """Answers from dictionaries; records every question in ``asked``."""

    def __init__(self, files: dict[str, str] | None = None, commands: dict[str, str] | None = None,
                 free: int = 10 * 2**30, reachable: str | None = "TCP") -> None:
        self.files = files or {}
        self.commands = commands or {}
        self.free = free
        self.reachable = reachable
        self.asked: list[str] = []

    def read_text(self, path: str) -> str | None:
        self.asked.append(f"read {path}")
        return self.files.get(path)

    def run(self, argv: list[str], timeout: float = 5.0) -> str | None:
        self.asked.append("run " + " ".join(argv))
        return self.commands.get(" ".join(argv))

    def disk_free(self, path: Path) -> int:
        self.asked.append(f"disk {path}")
        return self.free

    def reach(self, host: str, port: int, timeout: float, tls_ca: Path | None) -> str:
        self.asked.append(f"reach {host}:{port}")
        if self.reachable is None:
            raise ConnectionRefusedError(111, "Connection refused")
        return self.reachable
