"""An append-only audit log: each entry carries the MAC of the previous one.

Entries hold pseudonymous ids, kinds and counts — never a name, a box, a crop, a score of a
stranger or any vector. The chain is keyed (HMAC-SHA256 with a key derived from the master
key), so an entry cannot be edited, removed or reordered without `audit verify` noticing,
even by someone who can write the database but does not hold the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass, field

from ..errors import AuditChainBroken

GENESIS = "0" * 64


def _canonical(seq: int, ts: str, kind: str, subject: str | None, detail: str) -> bytes:
    return json.dumps([seq, ts, kind, subject, detail], separators=(",", ":")).encode()


@dataclass(frozen=True)
class AuditReport:
    """ok: the whole chain verifies. entries: how many were checked. problems: what was wrong."""

    ok: bool
    entries: int
    head: str
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "head": self.head, "problems": self.problems}


class AuditLog:
    def __init__(self, conn: sqlite3.Connection, key: bytes) -> None:
        self._conn = conn
        self.key = key

    def _mac(self, prev: str, body: bytes) -> str:
        return hmac.new(self.key, prev.encode() + body, hashlib.sha256).hexdigest()

    def append(self, ts: str, kind: str, subject: str | None = None, **detail: object) -> str:
        """Add an entry inside the caller's transaction; returns its MAC (the receipt hash).
        Refuses (:class:`AuditChainBroken`) when the log does not end where its head says."""
        last, prev = self._head()
        seq = last + 1
        body = json.dumps(detail, sort_keys=True, separators=(",", ":"))
        mac = self._mac(prev, _canonical(seq, ts, kind, subject, body))
        self._conn.execute("INSERT INTO audit(seq, ts, kind, subject, detail, prev, mac) VALUES (?,?,?,?,?,?,?)",
                           (seq, ts, kind, subject, body, prev, mac))
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('audit_head', ?)", (f"{seq}:{mac}",))
        return mac

    def _recorded_head(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key='audit_head'").fetchone()
        if row is None:
            return None
        return row[0].decode("utf-8", "replace") if isinstance(row[0], bytes) else str(row[0])

    def _head(self) -> tuple[int, str]:
        """The seq and MAC the next entry extends. Only the last entry is checked (one row, one
        MAC), against the recorded head: appending after a cut tail, or after an edited head,
        would reuse sequence numbers and make `audit verify` pass again."""
        row = self._conn.execute("SELECT seq, ts, kind, subject, detail, prev, mac FROM audit "
                                 "ORDER BY seq DESC LIMIT 1").fetchone()
        recorded = self._recorded_head()
        if row is None and recorded is None:
            return 0, GENESIS
        if row is None:
            problem = "the log is empty but its recorded head is not"
        else:
            seq, ts, kind, subject, detail, prev, mac = row
            expected = self._mac(str(prev), _canonical(seq, ts, kind, subject, detail))
            if not hmac.compare_digest(str(mac).encode(), expected.encode()):
                problem = f"its last entry ({seq}) was altered"
            elif recorded is None:
                problem = "its recorded head is missing"
            elif not hmac.compare_digest(recorded.encode(), f"{seq}:{mac}".encode()):
                problem = "it does not end at its recorded head: entries were removed from the end, or the head changed"
            else:
                return int(seq), str(mac)
        raise AuditChainBroken(f"the audit log is broken ({problem}); nothing was recorded and nothing was changed. "
                               "Run `consentry audit verify` for the details and restore the store from a backup")

    def entries(self, limit: int | None = None) -> list[dict]:
        sql = "SELECT seq, ts, kind, subject, detail, mac FROM audit ORDER BY seq DESC"
        rows = self._conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [{"seq": s, "ts": t, "kind": k, "subject": subj, "detail": json.loads(d), "hash": m}
                for s, t, k, subj, d, m in rows]

    def verify(self) -> AuditReport:
        problems: list[str] = []
        prev, expected_seq, count = GENESIS, 1, 0
        for seq, ts, kind, subject, detail, stored_prev, mac in self._conn.execute(
                "SELECT seq, ts, kind, subject, detail, prev, mac FROM audit ORDER BY seq"):
            count += 1
            if seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (next is {seq})")
            if stored_prev != prev:
                problems.append(f"entry {seq} does not follow the entry before it (removed or reordered)")
            expected = self._mac(stored_prev, _canonical(seq, ts, kind, subject, detail))
            if not hmac.compare_digest(str(mac).encode(), expected.encode()):
                problems.append(f"entry {seq} ({kind}) was altered")
            prev, expected_seq = mac, seq + 1
        head = self._recorded_head()
        if head is not None and head != f"{expected_seq - 1}:{prev}":
            problems.append("the log does not end at its recorded head: entries were removed from the end, "
                            "or the head was changed")
        elif head is None and count:
            problems.append("the log's recorded head is missing")
        return AuditReport(not problems, count, prev, problems)
