"""What the device holds about one person, for that person ("What do you hold about me?").

The record is read for one subject only — found by their revocation code (or by the face
flow of the web page) — and never includes anyone else: their consent record, how many
templates are held (never the templates), and their own entries in the audit log. The
receipt is that record as canonical JSON with an HMAC-SHA256 under a key derived from the
device's audit key, so this device (``consentry audit verify-receipt FILE``) can later say
whether a receipt someone shows is one it issued, unchanged. Showing it is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

from ..errors import ConsentryError, SubjectNotFound
from . import crypto
from .consent import ConsentRecord

RECEIPT_KIND = "consentry-data-receipt"
OWN_ENTRIES = 20


class ReceiptInvalid(ConsentryError):
    """A receipt that is malformed, altered, or was not issued by this device."""


@dataclass(frozen=True)
class SubjectRecord:
    """One subject's own data as shown to them. Dates ISO 8601 UTC; ``templates``: a count;
    ``door_templates``: how many the door learned after live grants (vault/door_templates.py);
    ``entries``: their audit entries, newest first, as {seq, ts, kind, detail}."""

    subject: str
    consent: ConsentRecord
    created: str
    last_seen: str | None
    expires: str
    templates: int
    entries: tuple[dict, ...]
    door_templates: int = 0

    def as_json(self) -> dict:
        c = self.consent
        return {"subject": self.subject, "created": self.created, "last_seen": self.last_seen,
                "expires": self.expires, "templates": self.templates, "door_templates": self.door_templates,
                "consent": {"id": c.consent_id, "version": c.version, "language": c.language, "sha256": c.sha256,
                            "given_at": c.given_at, "method": c.method, "witnessed_by": c.witnessed_by,
                            "purposes": list(c.purposes), "retention_days": c.retention_days,
                            "age_statement": c.age_statement, "identify_opt_in": c.identify_opt_in,
                            "greeting": c.greeting},
                "audit": [dict(e) for e in self.entries]}


def subject_by_code(vault, code: str) -> str:
    """The subject whose revocation code this is (SubjectNotFound otherwise)."""
    with vault._lock:
        row = vault._conn.execute("SELECT id FROM subjects WHERE revocation_tag=?", (vault._code_tag(code),)).fetchone()
    if row is None:
        raise SubjectNotFound("no subject has that revocation code")
    return str(row[0])


def subject_record(vault, subject: str) -> SubjectRecord:
    """The record of ``subject`` alone; a row that fails its MAC is refused, not shown."""
    with vault._lock:
        row = vault._conn.execute(
            "SELECT consent_id, consent_version, consent_sha256, consent_given_at, consent_method, witnessed_by, "
            "retention_days, age_statement, purposes, identify_opt_in, consent_language, greeting, created, last_seen, "
            "row_mac "
            "FROM subjects WHERE id=?", (subject,)).fetchone()
        if row is None:
            raise SubjectNotFound(f"no subject {subject}")
        if not vault._signer.intact(subject, row[-1]):
            raise ConsentryError(f"the record of {subject} fails its integrity check; ask staff")
        templates = vault._conn.execute("SELECT count(*) FROM templates WHERE subject_id=?", (subject,)).fetchone()[0]
        door = vault._conn.execute("SELECT count(*) FROM door_templates WHERE subject_id=?", (subject,)).fetchone()[0]
        own = vault._conn.execute("SELECT seq, ts, kind, detail FROM audit WHERE subject=? ORDER BY seq DESC LIMIT ?",
                                  (subject, OWN_ENTRIES)).fetchall()
    (cid, version, sha, given, method, witness, days, age, purposes, opt_in, lang, greet, created, seen, _mac) = row
    consent = ConsentRecord(cid, version, sha, given, method, witness, int(days), age, tuple(purposes.split(",")),
                            bool(opt_in), lang or "en", bool(greet))
    entries = tuple({"seq": s, "ts": t, "kind": k, "detail": json.loads(d)} for s, t, k, d in own)
    expires = vault._expiry(given, seen or created, int(days)).isoformat()
    return SubjectRecord(subject, consent, created, seen, expires, int(templates), entries, int(door))


def greeting_name(vault, subject: str) -> str | None:
    """The first name to greet ``subject`` with on the kiosk screen, only if they asked for it
    at enrolment (and their row is intact); None otherwise."""
    from .aad import aad_name

    with vault._lock:
        row = vault._conn.execute("SELECT greeting, name_ct, wrapped_key, row_mac FROM subjects WHERE id=?",
                                  (subject,)).fetchone()
        if row is None or not row[0] or not vault._signer.intact(subject, row[-1]):
            return None
        name = crypto.unseal(vault._data_key(subject, row[2]), bytes(row[1]), aad_name(subject),
                             f"name of subject {subject}").decode()
    first = name.split()
    return first[0][:40] if first else None


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _receipt_key(vault) -> bytes:
    return crypto.derive(vault.audit.key, "data-receipt")


def receipt(vault, record: SubjectRecord) -> dict:
    """The signed receipt of ``record``; issuing it is recorded in the audit log."""
    issued = vault._now()
    with vault._txn():
        vault.audit.append(issued, "data_shown", record.subject)
    body = {"kind": RECEIPT_KIND, "issued": issued, **record.as_json()}
    mac = hmac.new(_receipt_key(vault), _canonical(body), hashlib.sha256).hexdigest()
    return {**body, "signature": {"alg": "HMAC-SHA256", "key": "derived from this device's audit key",
                                  "value": mac}}


def verify_receipt(vault, raw: bytes) -> dict:
    """The receipt's body when it is one this device issued, unchanged; ReceiptInvalid otherwise."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        signature = doc.pop("signature")["value"]
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise ReceiptInvalid(f"not a Consentry data receipt ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("kind") != RECEIPT_KIND or not isinstance(signature, str):
        raise ReceiptInvalid("not a Consentry data receipt")
    expected = hmac.new(_receipt_key(vault), _canonical(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ReceiptInvalid("the receipt was altered, or was not issued by this device")
    return doc
