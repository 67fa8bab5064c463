"""Debian's mosquitto on a free loopback port, for the fleet simulation and the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from ..errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"broker did not listen on {port}")


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class LocalMosquitto:
    """``start()``/``stop()`` may be called repeatedly (the port stays the same); listens on
    127.0.0.1 only. ``extra_conf`` replaces the default ``allow_anonymous true``."""

    def __init__(self, workdir: Path, extra_conf: str = "", port: int | None = None) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise ConfigError("mosquitto is not installed (Debian: apt install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.conf = Path(workdir) / f"mosquitto-{self.port}.conf"
        # As root, mosquitto drops to the `mosquitto` user, which cannot read private temporary
        # folders; stay the current user instead.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n" + (extra_conf or "allow_anonymous true\n")
                             + "persistence false\n" + user)
        self.proc: subprocess.Popen | None = None
        self.log = Path(workdir) / f"mosquitto-{self.port}.log"

    def start(self) -> LocalMosquitto:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
            self.proc = None
