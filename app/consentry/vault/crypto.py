"""AES-256-GCM sealing with associated data, key wrapping, and the template transform.

Every blob is ``nonce (12 bytes) || ciphertext+tag``; the associated data names the row the
blob belongs to, so a blob copied into another row fails to open.
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import TemplateIntegrityError

KEY_BYTES = 32
NONCE_BYTES = 12
DIM = 128


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad.encode())


def unseal(key: bytes, blob: bytes, aad: str, what: str) -> bytes:
    """Open a sealed blob; ``what`` names it in the error (never the key or the content)."""
    if len(blob) < NONCE_BYTES + 16:
        raise TemplateIntegrityError(f"{what} is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad.encode())
    except InvalidTag:
        raise TemplateIntegrityError(f"{what} failed authentication (tampered, corrupted, "
                                     "copied from another row, or a different key)") from None


def derive(master: bytes, purpose: str) -> bytes:
    """A purpose-specific key from the master key (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose.encode()).derive(master)


def random_orthogonal(dim: int = DIM) -> np.ndarray:
    """A uniformly random orthogonal matrix (QR of a Gaussian matrix from the OS's RNG)."""
    rng = np.random.default_rng(int.from_bytes(os.urandom(32), "big"))
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").reshape(DIM).tobytes()


def bytes_vector(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(DIM)
