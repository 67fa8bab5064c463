"""Who a device is in its site, kept as one sealed vault secret (``fleet``).

The enrolment kiosk holds the site identity: an Ed25519 signing key, the site data key
(AES-256, seals every subject payload) and the template transform (its own vault's). A door
holds its X25519 key pair, the site's public signing key, and — once staff approved it — the
data key. Joining: the door publishes its public key; staff compare a six-digit code shown on
the door and on the kiosk (a hash of both public keys, so a key swapped in transit shows a
different code); the kiosk then seals the data key and transform to the door's key with HPKE
(RFC 9180, `cryptography`'s implementation: X25519, HKDF-SHA256, AES-256-GCM).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..errors import ConfigError
from ..vault import crypto
from .records import RecordRefused, b64, public_bytes, unb64

SECRET = "fleet"


def _raw_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _hpke():
    try:
        from cryptography.hazmat.primitives import hpke
    except ImportError:
        raise ConfigError("joining a site needs cryptography >= 47 (HPKE); upgrade it with pip") from None
    return hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def join_code(site_public: bytes, door_public: bytes) -> str:
    """Six digits staff compare on the door and on the kiosk, e.g. ``482 913``."""
    value = int.from_bytes(hashlib.sha256(b"consentry-join\0" + site_public + door_public).digest()[:8], "big")
    digits = f"{value % 1_000_000:06d}"
    return f"{digits[:3]} {digits[3:]}"


def same_code(typed: str, expected: str) -> bool:
    return "".join(ch for ch in typed if ch.isdigit()) == expected.replace(" ", "")


def door_id(door_public: bytes) -> str:
    return "d-" + hashlib.sha256(door_public).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class SiteIdentity:
    """The kiosk's: ``transform`` is (128, 128) float32, the kiosk vault's own."""

    site: str
    label: str
    signing_key: Ed25519PrivateKey
    data_key: bytes
    transform: np.ndarray
    epoch: int = 1  # grows with every data-key rotation (a door removed)

    @classmethod
    def create(cls, label: str, transform: np.ndarray) -> SiteIdentity:
        return cls("site-" + secrets.token_hex(6), label, Ed25519PrivateKey.generate(), crypto.new_key(),
                   np.asarray(transform, np.float32))

    @property
    def public(self) -> bytes:
        return public_bytes(self.signing_key.public_key())

    def secret(self) -> bytes:
        return json.dumps({"role": "site", "site": self.site, "label": self.label,
                           "signing_key": b64(_raw_private(self.signing_key)), "data_key": b64(self.data_key),
                           "epoch": self.epoch}).encode()

    def rekeyed(self, transform: np.ndarray) -> SiteIdentity:
        """A fresh data key and the given (renewed) transform, one epoch on: what a site
        becomes when a door is removed."""
        return SiteIdentity(self.site, self.label, self.signing_key, crypto.new_key(),
                            np.asarray(transform, np.float32), self.epoch + 1)

    def seal_grant(self, door: str, door_public: bytes) -> bytes:
        """The data key and transform, readable only with the door's private key."""
        body = json.dumps({"site": self.site, "door": door, "data_key": b64(self.data_key), "epoch": self.epoch,
                           "transform": b64(np.asarray(self.transform, "<f4").tobytes())}).encode()
        return _hpke().encrypt(body, X25519PublicKey.from_public_bytes(door_public), info=_grant_info(self.site, door))


def _grant_info(site: str, door: str) -> bytes:
    return f"consentry:fleet-grant:v1:{site}:{door}".encode()


@dataclass(frozen=True, eq=False)
class DoorIdentity:
    """A door's: ``data_key`` is None until staff approved it."""

    site: str
    site_public: bytes
    private_key: X25519PrivateKey
    data_key: bytes | None = None
    epoch: int = 0

    @classmethod
    def create(cls, site: str, site_public: bytes) -> DoorIdentity:
        return cls(site, site_public, X25519PrivateKey.generate())

    @property
    def public(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def door(self) -> str:
        return door_id(self.public)

    @property
    def code(self) -> str:
        return join_code(self.site_public, self.public)

    @property
    def verify_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.site_public)

    def open_grant(self, sealed: bytes) -> tuple[DoorIdentity, np.ndarray]:
        """This identity with the data key, and the site transform (128, 128) float32."""
        try:
            body = json.loads(_hpke().decrypt(sealed, self.private_key, info=_grant_info(self.site, self.door)))
            transform = np.frombuffer(unb64(body["transform"], "transform"), "<f4").reshape(crypto.DIM, crypto.DIM)
            data_key = unb64(body["data_key"], "data key")
            epoch = int(body.get("epoch", 1))
        except RecordRefused:
            raise
        except Exception:  # noqa: BLE001 - any failure to open is the same refusal
            raise RecordRefused("the grant does not open with this door's key") from None
        if len(data_key) != crypto.KEY_BYTES or body.get("site") != self.site or body.get("door") != self.door:
            raise RecordRefused("the grant is not for this door of this site")
        return (DoorIdentity(self.site, self.site_public, self.private_key, data_key, epoch),
                transform.astype(np.float32))

    def secret(self) -> bytes:
        return json.dumps({"role": "door", "site": self.site, "site_public": b64(self.site_public),
                           "private_key": b64(_raw_private(self.private_key)),
                           "data_key": None if self.data_key is None else b64(self.data_key),
                           "epoch": self.epoch}).encode()


def load(raw: bytes | None, transform: np.ndarray) -> SiteIdentity | DoorIdentity | None:
    """The identity sealed in the vault (``transform``: the vault's, for a site)."""
    if raw is None:
        return None
    body = json.loads(raw)
    if body["role"] == "site":
        key = Ed25519PrivateKey.from_private_bytes(unb64(body["signing_key"], "signing key"))
        return SiteIdentity(body["site"], body["label"], key, unb64(body["data_key"], "data key"), transform,
                            int(body.get("epoch", 1)))
    data_key = None if body.get("data_key") is None else unb64(body["data_key"], "data key")
    return DoorIdentity(body["site"], unb64(body["site_public"], "site key"),
                        X25519PrivateKey.from_private_bytes(unb64(body["private_key"], "door key")), data_key,
                        int(body.get("epoch", 0)))
