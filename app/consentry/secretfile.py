"""Reading a secret from a file: it must exist and be readable by its owner only.

One rule for the master key file, passphrase files, the MQTT credentials and the command
secret. Errors name the file and the fix; they never contain the secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError, ConsentryError


def read_private(path: Path, what: str, error: type[ConsentryError] = ConfigError) -> bytes:
    """The bytes of ``path``; ``error`` when it is missing or group/other may access it."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path} is not a regular file")
    if mode & (stat.S_IRWXO if _systemd_credential(path) else stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"{what} {path} is readable or writable by others (mode {stat.filemode(mode)}); "
                    f"run `chmod 600 {path}`")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def _systemd_credential(path: Path) -> bool:
    """A credential systemd handed over in $CREDENTIALS_DIRECTORY. systemd makes these read-only
    for the service's user (mode 0440 on trixie's systemd 257, found booting the image), in a
    directory only the service can enter, on memory that is never swapped: there the group bit
    is systemd's own, and only access by others is refused."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    return bool(directory) and path.resolve().parent == Path(directory).resolve()
