"""Site records: what a kiosk publishes and a door checks, on the wire (docs/fleet.md).

Every record is a JSON object signed with the site's Ed25519 key (over its canonical form, the
signature left out). A subject's payload — consent fields, purposes, templates — is sealed with
AES-256-GCM under the site data key; the associated data binds it to the site, sequence number,
kind and subject, so a payload moved into another record fails to open. The broker, and anyone
subscribed to ``#``, sees only pseudonymous ids, sequence numbers, times and ciphertext.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConsentryError
from ..panel.formats import Card
from ..vault import crypto
from ..vault.consent import ConsentRecord

VERSION = 1
KINDS = ("enrol", "revoke", "head")
MAX_TEMPLATES = 20
# What a record can be, derived from its format, so anything larger is dropped unread: a sealed
# payload is a bounded JSON head, a newline and at most MAX_TEMPLATES float32 templates, plus
# AES-GCM's nonce and tag, in base64; the envelope (ids, seq, times, signature) is small.
MAX_PAYLOAD_HEAD = 2048
MAX_BODY_BYTES = crypto.NONCE_BYTES + 16 + MAX_PAYLOAD_HEAD + 1 + MAX_TEMPLATES * crypto.DIM * 4
ENVELOPE_BYTES = 1024
MAX_RECORD_BYTES = 4 * -(-MAX_BODY_BYTES // 3) + ENVELOPE_BYTES  # 17,448 bytes
MAX_SMALL_BYTES = 4096  # heads, announcements, join requests, door reports
# A grant: the site transform (128 x 128 float32, base64) and the data key in a small JSON
# object, HPKE-sealed (32-byte encapsulated key, 16-byte tag), then base64 in the envelope.
_GRANT_PLAIN = 4 * -(-(crypto.DIM * crypto.DIM * 4) // 3) + 512
MAX_GRANT_BYTES = 4 * -(-(_GRANT_PLAIN + 48) // 3) + ENVELOPE_BYTES
MAX_BRACKETS = 16  # every site message is one flat object; a deep document is refused unread


class RecordRefused(ConsentryError, ValueError):
    """A site record failed a check (signature, format, seal, order, freshness)."""


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise RecordRefused(f"{what} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise RecordRefused(f"{what} is not valid base64") from None


def canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(key: Ed25519PrivateKey, fields: dict) -> bytes:
    """``fields`` plus its signature, as the bytes that travel."""
    return canonical({**fields, "sig": b64(key.sign(canonical(fields)))})


def flat(raw: bytes, what: str = "record", limit: int = MAX_RECORD_BYTES) -> dict:
    """A site message's fields, bounded before parsing: at most ``limit`` bytes and a handful
    of brackets (a flat object's two, with room for a label), then one object of scalars. A
    document nested a thousand deep is refused here, never handed to the JSON parser or to
    the canonical form (whose RecursionError once failed a whole batch)."""
    if len(raw) > limit:
        raise RecordRefused(f"{what} is larger than {limit} bytes")
    if raw.count(b"{") + raw.count(b"[") > MAX_BRACKETS:
        raise RecordRefused(f"{what} is nested: a site message is one flat object")
    try:
        fields = json.loads(raw)
    except (ValueError, RecursionError):
        raise RecordRefused(f"{what} is not JSON") from None
    if not isinstance(fields, dict) or not all(
            v is None or isinstance(v, str | int | float | bool) for v in fields.values()):
        raise RecordRefused(f"{what} is not one flat JSON object")
    return fields


def verified(key: Ed25519PublicKey, raw: bytes, what: str = "record", limit: int = MAX_RECORD_BYTES) -> dict:
    """The fields of a signed message; RecordRefused unless it is bounded, parses as one flat
    object, and its signature holds."""
    fields = flat(raw, what, limit)
    if fields.get("v") != VERSION:
        raise RecordRefused(f"{what} is not a version {VERSION} site message")
    sig = unb64(fields.pop("sig", None), f"{what} signature")
    try:
        key.verify(sig, canonical(fields))
    except InvalidSignature:
        raise RecordRefused(f"{what} signature does not verify: forged or altered") from None
    return fields


@dataclass(frozen=True)
class Record:
    """A subject record: ``seq`` is site-wide and grows with every record the site issues;
    ``issued`` is the kiosk's Unix time (s); ``body`` the sealed payload (None for a revoke)."""

    site: str
    seq: int
    kind: str
    subject: str
    issued: float
    body: bytes | None

    @property
    def aad(self) -> str:
        return f"consentry:fleet:v{VERSION}:{self.site}:{self.seq}:{self.kind}:{self.subject}"

    def fields(self) -> dict:
        return {"v": VERSION, "site": self.site, "seq": self.seq, "kind": self.kind, "subject": self.subject,
                "issued": self.issued, "body": None if self.body is None else b64(self.body)}

    @classmethod
    def parse(cls, fields: dict, site: str) -> Record:
        kind, subject, seq, issued = (fields.get(k) for k in ("kind", "subject", "seq", "issued"))
        if fields.get("site") != site:
            raise RecordRefused("record belongs to another site")
        if kind not in ("enrol", "revoke") or not isinstance(subject, str) or not subject.startswith("s-"):
            raise RecordRefused("record has no valid kind or subject")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise RecordRefused("record has no valid sequence number")
        if not isinstance(issued, int | float) or isinstance(issued, bool):
            raise RecordRefused("record has no issue time")
        body = None if fields.get("body") is None else unb64(fields["body"], "record body")
        if (kind == "enrol") != (body is not None):
            raise RecordRefused("an enrol record needs a payload and a revoke must have none")
        return cls(site, seq, kind, subject[:40], float(issued), body)


@dataclass(frozen=True, eq=False)
class Payload:
    """A subject's replicated contents: consent (``witnessed_by`` left out), the embedder
    ``model`` and ``vectors`` (n, 128) float32 in the site's transform space; ``card``: the
    subject's access-control panel credential, if any (docs/panel.md), sealed with the rest."""

    consent: ConsentRecord
    model: str
    vectors: np.ndarray
    card: Card | None = None

    def seal(self, data_key: bytes, aad: str) -> bytes:
        c = self.consent
        head = {"consent_id": c.consent_id, "version": c.version, "sha256": c.sha256, "given_at": c.given_at,
                "method": c.method, "retention_days": c.retention_days, "age_statement": c.age_statement,
                "purposes": list(c.purposes), "identify_opt_in": c.identify_opt_in, "model": self.model,
                "n": int(self.vectors.shape[0])}
        if self.card is not None:
            head["card"] = [int(self.card.facility), int(self.card.number)]
        if c.language != "en":  # only then, so an English record (and its digest) is what it was before
            head["language"] = c.language
        if not 1 <= self.vectors.shape[0] <= MAX_TEMPLATES:
            raise RecordRefused(f"a site record holds 1..{MAX_TEMPLATES} templates, not {self.vectors.shape[0]}")
        head_raw = canonical(head)
        if len(head_raw) > MAX_PAYLOAD_HEAD:
            raise RecordRefused(f"a subject's consent fields exceed {MAX_PAYLOAD_HEAD} bytes")
        raw = bytearray(head_raw + b"\n" + np.asarray(self.vectors, "<f4").tobytes())
        try:
            return crypto.seal(data_key, bytes(raw), aad)
        finally:
            raw[:] = bytes(len(raw))

    @classmethod
    def open(cls, data_key: bytes, record: Record, site: str) -> Payload:
        raw = crypto.unseal(data_key, record.body or b"", record.aad, f"payload of {record.subject}")
        head_raw, sep, vectors_raw = raw.partition(b"\n")
        try:
            head = json.loads(head_raw)
            n = int(head["n"])
            consent = ConsentRecord(str(head["consent_id"]), str(head["version"]), str(head["sha256"]),
                                    str(head["given_at"]), str(head["method"]), f"site {site}",
                                    int(head["retention_days"]), str(head["age_statement"]),
                                    tuple(str(p) for p in head["purposes"]), bool(head["identify_opt_in"]),
                                    str(head.get("language", "en")))
            if not (len(consent.language) == 2 and consent.language.isalpha() and consent.language.islower()):
                raise ValueError("language is not a two-letter code")
            model = str(head["model"])
            card = None
            if head.get("card") is not None:
                facility, number = (int(v) for v in head["card"])
                if not (0 <= facility < 1 << 32 and 0 <= number < 1 << 64):
                    raise ValueError("card out of range")
                card = Card(facility, number)
        except (ValueError, KeyError, TypeError):
            raise RecordRefused(f"payload of {record.subject} is malformed") from None
        if not sep or not 1 <= n <= MAX_TEMPLATES or len(vectors_raw) != n * crypto.DIM * 4:
            raise RecordRefused(f"payload of {record.subject} has no valid templates")
        vectors = np.frombuffer(vectors_raw, "<f4").reshape(n, crypto.DIM).astype(np.float32)
        if not np.all(np.isfinite(vectors)):
            raise RecordRefused(f"payload of {record.subject} has non-finite templates")
        consent.validate()
        return cls(consent, model, vectors, card)


@dataclass(frozen=True)
class Head:
    """The site's current state: the highest ``seq`` issued, the state hash over every
    subject's latest record (tombstones included), how many subjects are live, and when it
    was issued (the kiosk's Unix time, s). Re-issued every heartbeat."""

    site: str
    seq: int
    state: str
    count: int
    issued: float

    def fields(self) -> dict:
        return {"v": VERSION, "site": self.site, "kind": "head", "seq": self.seq, "state": self.state,
                "count": self.count, "issued": self.issued}

    @classmethod
    def parse(cls, fields: dict, site: str) -> Head:
        seq, state, count, issued = (fields.get(k) for k in ("seq", "state", "count", "issued"))
        if fields.get("site") != site or fields.get("kind") != "head":
            raise RecordRefused("not a head of this site")
        if not (isinstance(seq, int) and isinstance(count, int) and isinstance(state, str)
                and isinstance(issued, int | float)):
            raise RecordRefused("head is malformed")
        return cls(site, seq, state[:64], count, float(issued))


class StateHash:
    """An order-free hash of a set of (subject, seq, kind): the XOR of their SHA-256. Kiosk
    and door compute it the same way, one record at a time."""

    def __init__(self, versions: dict[str, tuple[int, str]] | None = None) -> None:
        self._value = 0
        for subject, (seq, kind) in (versions or {}).items():
            self.toggle(subject, seq, kind)

    @staticmethod
    def _member(subject: str, seq: int, kind: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{subject}:{seq}:{kind}".encode()).digest(), "big")

    def toggle(self, subject: str, seq: int, kind: str) -> None:
        self._value ^= self._member(subject, seq, kind)

    def replace(self, subject: str, old: tuple[int, str] | None, new: tuple[int, str]) -> None:
        if old is not None:
            self.toggle(subject, *old)
        self.toggle(subject, *new)

    def hex(self) -> str:
        return f"{self._value:064x}"


class Budget:
    """At most ``per_minute`` events a minute (audit rows, log lines): anyone who may publish
    on the broker can send garbage, and neither the audit log nor the system log may become
    the way to fill the disk. ``suppressed`` counts what was left out since the last one let through."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._times: collections.deque[float] = collections.deque()
        self.suppressed = 0

    def take(self) -> bool:
        now = self.clock()
        while self._times and now - self._times[0] > 60.0:
            self._times.popleft()
        if len(self._times) < self.per_minute:
            self._times.append(now)
            return True
        self.suppressed += 1
        return False

    def note(self) -> str:
        """`` (N more since)`` for the line let through, then resets the count."""
        text = f" ({self.suppressed} more not logged)" if self.suppressed else ""
        self.suppressed = 0
        return text


def public_bytes(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(raw_public: bytes) -> str:
    """A short, readable name for a public key (shown at init and join)."""
    digest = hashlib.sha256(raw_public).hexdigest()[:16]
    return ":".join(digest[i:i + 4] for i in range(0, 16, 4))
