"""MACs over what the encryption does not cover: the key metadata and each subject's consent row.

Blobs (names, data keys, templates) are sealed with AES-GCM and bound to their rows. The plain
columns beside them — purposes, the consent record, dates, the revocation tag, and which
templates a subject has — decide who may be matched for what, so an edit to any of them must
be noticed too. Both MACs use keys derived from the master key; a store that predates them
(schema < 3) is signed once, on its first open after the upgrade.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3

from . import crypto

# schema_version is left out: migrations change it, and a forged one only makes a migration
# fail loudly.
SIGNED_META = ("salt", "deployment", "key_check", "audit_key", "transform")
SIGNED_SUBJECT = ("id", "purposes", "identify_opt_in", "created", "last_seen", "consent_id", "consent_version",
                  "consent_sha256", "consent_given_at", "consent_method", "witnessed_by", "retention_days",
                  "age_statement", "revocation_tag")
# Columns signed only once they are set, so rows signed before they existed keep their MAC;
# setting or clearing one changes the MAC all the same. card_tag: vault/cards.py; the consent
# text's language and the greeting opt-in: schema 7 (vault/consent.py).
SIGNED_SUBJECT_OPTIONAL = ("card_tag", "consent_language", "greeting")
MACS_SINCE = 3


def meta_value(conn: sqlite3.Connection, key: str) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    value = row[0]
    return value if isinstance(value, bytes) else b"" if value is None else str(value).encode()


def meta_mac(conn: sqlite3.Connection, master: bytes) -> bytes:
    body = b"".join(hashlib.sha256(k.encode() + b"\0" + (meta_value(conn, k) or b"")).digest() for k in SIGNED_META)
    return hmac.new(crypto.derive(master, "meta-mac"), body, hashlib.sha256).digest()


class SubjectSigner:
    """Signs and checks subject rows with a key derived from the master key."""

    def __init__(self, conn: sqlite3.Connection, master: bytes) -> None:
        self._conn = conn
        self._key = crypto.derive(master, "subject-mac")

    def _mac(self, subject: str) -> bytes | None:
        columns = SIGNED_SUBJECT + SIGNED_SUBJECT_OPTIONAL
        row = self._conn.execute(f"SELECT {', '.join(columns)} FROM subjects WHERE id=?",  # noqa: S608
                                 (subject,)).fetchone()
        if row is None:
            return None
        templates = [r[0] for r in self._conn.execute(
            "SELECT id || ':' || model FROM templates WHERE subject_id=? ORDER BY id", (subject,))]
        fixed, optional = row[:len(SIGNED_SUBJECT)], row[len(SIGNED_SUBJECT):]
        extra = [f"{name}={value}" for name, value in zip(SIGNED_SUBJECT_OPTIONAL, optional, strict=True)
                 if value is not None]
        # door templates too (none: the body is what it was before they existed, so older MACs hold)
        templates += ["door:" + r[0] for r in self._conn.execute(
            "SELECT id || ':' || model FROM door_templates WHERE subject_id=? ORDER BY id", (subject,))]
        body = json.dumps([None if v is None else str(v) for v in fixed] + templates + extra).encode()
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def sign(self, subject: str) -> None:
        """Inside the caller's transaction, after every change to the row or its templates."""
        self._conn.execute("UPDATE subjects SET row_mac=? WHERE id=?", (self._mac(subject), subject))

    def intact(self, subject: str, stored: bytes | None) -> bool:
        expected = self._mac(subject)
        return stored is not None and expected is not None and hmac.compare_digest(bytes(stored), expected)

    def _member(self, subject: str) -> int:
        return int.from_bytes(hmac.new(self._key, b"roster\0" + subject.encode(), hashlib.sha256).digest(), "big")

    def toggled(self, roster: bytes | None, subject: str) -> bytes:
        """The roster (a keyed XOR-set hash of every subject id) with ``subject`` added or
        removed: rows deleted or inserted without the key no longer add up to it."""
        value = int.from_bytes(roster or bytes(32), "big") ^ self._member(subject)
        return value.to_bytes(32, "big")

    def roster(self) -> bytes:
        value = 0
        for (subject,) in self._conn.execute("SELECT id FROM subjects"):
            value ^= self._member(str(subject))
        return value.to_bytes(32, "big")

    def sign_all(self) -> None:
        for (subject,) in self._conn.execute("SELECT id FROM subjects").fetchall():
            self.sign(subject)
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('roster', ?)", (self.roster(),))
        for kind, hashed in self._conn.execute("SELECT kind, hash FROM credentials").fetchall():
            self._conn.execute("UPDATE credentials SET mac=? WHERE kind=?", (self.credential_mac(kind, hashed), kind))

    def credential_mac(self, kind: str, hashed: str) -> bytes:
        """A staff password / PIN hash is bound to its kind: someone who can write the database
        but has no master key cannot plant a hash of their own."""
        return hmac.new(self._key, json.dumps(["credential", kind, hashed]).encode(), hashlib.sha256).digest()
