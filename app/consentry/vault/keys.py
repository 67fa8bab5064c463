"""Where the device master key comes from: a key file, a passphrase, or a systemd credential.

One interface, chosen by config. The key never appears in config, logs or error messages;
errors name the file or variable involved and what to do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import ConfigError, KeyUnavailable
from ..secretfile import read_private
from .crypto import KEY_BYTES, new_key

log = logging.getLogger(__name__)

PASSPHRASE_ENV = "CONSENTRY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "CONSENTRY_PASSPHRASE_FILE"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~32 MiB, ~0.1 s: affordable once at start on a Pi


class KeyProvider(Protocol):
    name: str

    def master_key(self, salt: bytes) -> bytes:
        """The 32-byte master key (``salt`` is the vault's stored salt; only passphrases use it)."""
        ...


class KeyFile:
    """32 random bytes in a file only its owner can read, made by `consentry keys init`."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def master_key(self, salt: bytes) -> bytes:
        if not self.path.exists():
            raise KeyUnavailable(f"key file {self.path} does not exist; create it with `consentry keys init`")
        key = read_private(self.path, "key file", KeyUnavailable)
        if len(key) != KEY_BYTES:
            raise KeyUnavailable(f"key file {self.path} is not a Consentry key "
                                 f"({len(key)} bytes, expected {KEY_BYTES})")
        return key

    def create(self) -> None:
        if self.path.exists():
            raise ConfigError(f"key file {self.path} already exists; refusing to overwrite it")
        self.write(new_key(), self.path)

    @property
    def pending(self) -> Path:
        return self.path.with_name(self.path.name + ".new")

    @staticmethod
    def write(key: bytes, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)

    def stage(self, key: bytes) -> None:
        """Write a rotation's new key beside the old one (committed by :meth:`commit`)."""
        self.pending.unlink(missing_ok=True)
        self.write(key, self.pending)

    def commit(self) -> None:
        """Make the staged key current. A rotation that crashed between the database commit
        and this rename leaves the new key in ``.new``; the vault tries it on the next open."""
        os.replace(self.pending, self.path)


class Passphrase:
    """A passphrase from $CONSENTRY_PASSPHRASE or the file named by $CONSENTRY_PASSPHRASE_FILE,
    stretched with scrypt and the vault's stored salt."""

    name = "passphrase"

    def __init__(self, passphrase: str | None = None) -> None:
        self._passphrase = passphrase

    def _read(self) -> bytes:
        if self._passphrase is not None:
            return self._passphrase.encode()
        if os.environ.get(PASSPHRASE_FILE_ENV):
            path = Path(os.environ[PASSPHRASE_FILE_ENV])
            return read_private(path, "passphrase file", KeyUnavailable).rstrip(b"\n")
        if os.environ.get(PASSPHRASE_ENV):
            return os.environ[PASSPHRASE_ENV].encode()
        raise KeyUnavailable(f"no passphrase: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}")

    def master_key(self, salt: bytes) -> bytes:
        secret = self._read()
        if len(secret) < 12:
            raise KeyUnavailable("the passphrase is shorter than 12 characters")
        return Scrypt(salt=salt, length=KEY_BYTES, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret)


class SystemdCredential:
    """A key delivered by systemd (`LoadCredentialEncrypted=`) in $CREDENTIALS_DIRECTORY."""

    name = "systemd-credential"

    def __init__(self, credential: str) -> None:
        self.credential = credential

    def master_key(self, salt: bytes) -> bytes:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise KeyUnavailable("CREDENTIALS_DIRECTORY is not set: run under systemd with "
                                 f"LoadCredentialEncrypted={self.credential}:...")
        return KeyFile(Path(directory) / self.credential).master_key(salt)


def provider_from_config(kind: str, key_file: Path, credential: str) -> KeyProvider:
    if kind == "file":
        return KeyFile(key_file)
    if kind == "passphrase":
        return Passphrase()
    if kind == "systemd-credential":
        return SystemdCredential(credential)
    raise ConfigError(f"unknown key provider {kind!r} (file, passphrase, systemd-credential)")
