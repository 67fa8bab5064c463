"""Door templates: what a door learned of an enrolled subject, kept apart from consent-time ones.

After a granted, live visit well inside the threshold (decide/adapt.py decides), the visit's
descriptor may be stored as a door template of that subject. They live in their own table
(``door_templates``) so that nothing that reads the consent-time templates sees them: the
consent-time centroid stays the anchor every door template is checked against, a site's
export and record digests never carry them (they stay on the door that learned them), and a
replaced site record or a revocation deletes the subject row they hang on (and so them).

Each is sealed with the subject's data key under its own associated data (a door template
copied into ``templates`` does not open), and their ids are part of the subject's row MAC
(vault/rows.py), so an old, replaced door template put back by someone who can write the
database but has no key fails the row check.

A mixin of :class:`~consentry.vault.store.Vault`, like vault/replica.py.
"""

from __future__ import annotations

import logging
import math
import secrets

import numpy as np

from ..errors import SubjectNotFound, TemplateIntegrityError, VaultError
from . import crypto
from .aad import aad_door_template, aad_template

log = logging.getLogger(__name__)


class DoorTemplates:
    def _subject_key(self, subject: str) -> bytes:
        """The data key of an intact subject (inside the caller's lock)."""
        row = self._conn.execute("SELECT wrapped_key, row_mac FROM subjects WHERE id=?", (subject,)).fetchone()
        if row is None:
            raise SubjectNotFound(f"no subject {subject}")
        if not self._signer.intact(subject, row[1]):
            raise VaultError(f"subject {subject}: its consent record fails its MAC")
        return self._data_key(subject, row[0])

    def _open_rows(self, subject: str, data_key: bytes, model: str, door: bool) -> list[np.ndarray]:
        table, aad = ("door_templates", aad_door_template) if door else ("templates", aad_template)
        out = []
        for tid, ct in self._conn.execute(f"SELECT id, ct FROM {table} WHERE subject_id=? AND model=? "  # noqa: S608
                                          "ORDER BY created, rowid", (subject, model)).fetchall():
            try:
                raw = crypto.unseal(data_key, bytes(ct), aad(subject, tid, model), f"template {tid} of {subject}")
            except TemplateIntegrityError as exc:
                log.error("%s; skipping it", exc)
                continue
            out.append(crypto.bytes_vector(raw))
        return out

    def consent_text(self, subject: str) -> str:
        """``id@version`` of the consent text an intact subject agreed to."""
        with self._lock:
            self._subject_key(subject)  # exists and its signed row is intact
            cid, version = self._conn.execute("SELECT consent_id, consent_version FROM subjects WHERE id=?",
                                              (subject,)).fetchone()
        return f"{cid}@{version}"

    def subject_templates(self, subject: str, model: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(consent-time, door) templates of one subject, transformed, oldest first. The caller
        zeroes them."""
        with self._lock:
            key = self._subject_key(subject)
            return self._open_rows(subject, key, model, False), self._open_rows(subject, key, model, True)

    def consent_distance(self, subject: str, model: str, vector: np.ndarray, *, unit: bool = False) -> float | None:
        """L2 distance of an (untransformed) descriptor to the centroid of the subject's
        consent-time templates; None when it has none of ``model``. ``unit``: the chord distance
        on the unit sphere (the descriptor and each template normalised, the centroid too), the
        scale of the door's ``visit_scoring = "unit"``. Every copy is zeroed."""
        consent, door = self.subject_templates(subject, model)
        moved = self.transform @ np.asarray(vector, np.float32).reshape(crypto.DIM)
        try:
            if not consent:
                return None
            if unit:
                for v in consent + [moved]:
                    v *= 1.0 / max(float(np.linalg.norm(v)), 1e-12)
            centroid = np.mean(np.stack(consent), axis=0)
            if unit:
                centroid *= 1.0 / max(float(np.linalg.norm(centroid)), 1e-12)
            distance = math.sqrt(float(np.sum((centroid - moved) ** 2)))
            centroid.fill(0)
            return distance
        finally:
            moved.fill(0)
            for v in consent + door:
                v.fill(0)

    def add_door_template(self, subject: str, vector: np.ndarray, model: str, keep: int) -> int:
        """Store an (untransformed) descriptor as a door template of ``subject``; the oldest go
        so at most ``keep`` remain. Consent-time templates are never touched. Returns how many
        door templates the subject now has."""
        with self._txn():
            key = self._subject_key(subject)
            template = "d-" + secrets.token_hex(8)
            moved = self.transform @ np.asarray(vector, np.float32).reshape(crypto.DIM)
            blob = crypto.seal(key, crypto.vector_bytes(moved), aad_door_template(subject, template, model))
            moved.fill(0)
            self._conn.execute("INSERT INTO door_templates(id, subject_id, model, ct, created) VALUES (?,?,?,?,?)",
                               (template, subject, model, blob, self._now()))
            old = [r[0] for r in self._conn.execute("SELECT id FROM door_templates WHERE subject_id=? AND model=? "
                                                    "ORDER BY created DESC, rowid DESC", (subject, model))][keep:]
            self._conn.executemany("DELETE FROM door_templates WHERE id=?", [(t,) for t in old])
            self._signer.sign(subject)
            count = self._conn.execute("SELECT count(*) FROM door_templates WHERE subject_id=? AND model=?",
                                       (subject, model)).fetchone()[0]
            self.audit.append(self._now(), "door_template", subject, kept=count, replaced=len(old))
        return int(count)

    def door_template_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT subject_id, count(*) FROM door_templates GROUP BY subject_id")
            return {str(s): int(n) for s, n in rows.fetchall()}

    def drop_door_templates(self, reason: str) -> int:
        """Destroy every door template (``match.adapt`` turned off): audited, WAL truncated."""
        with self._txn():
            subjects = [r[0] for r in self._conn.execute("SELECT DISTINCT subject_id FROM door_templates")]
            count = self._conn.execute("DELETE FROM door_templates").rowcount
            for subject in subjects:
                self._signer.sign(subject)
            if count:
                self.audit.append(self._now(), "door_templates_dropped", count=count, reason=reason)
        if count:
            self._checkpoint()
        return int(count)

    def _door_rows_for(self, model: str, subjects: set[str]) -> list[tuple[str, np.ndarray]]:
        """Door templates of ``model`` for these (already checked) subjects, for a door's gallery."""
        out = []
        with self._lock:
            for subject in sorted(subjects):
                try:
                    key = self._subject_key(subject)
                except (SubjectNotFound, VaultError):
                    continue
                out.extend((subject, v) for v in self._open_rows(subject, key, model, True))
        return out

    def _damaged_door_templates(self, skip: set[str]) -> list[str]:
        """Door templates that fail authentication (for doctor), of subjects not in ``skip``."""
        out = []
        with self._lock:
            rows = self._conn.execute("SELECT d.id, d.subject_id, d.model, d.ct, s.wrapped_key FROM door_templates d "
                                      "JOIN subjects s ON s.id = d.subject_id ORDER BY d.id").fetchall()
            for tid, sid, model, ct, wrapped in rows:
                if sid in skip:
                    continue
                try:
                    crypto.unseal(self._data_key(sid, wrapped), bytes(ct), aad_door_template(sid, tid, model),
                                  f"door template {tid}")
                except TemplateIntegrityError:
                    out.append(tid)
        return out

    def _delete_door_templates(self, subject: str) -> int:
        """Inside the caller's transaction (revocation, expiry, a replaced site record)."""
        return int(self._conn.execute("DELETE FROM door_templates WHERE subject_id=?", (subject,)).rowcount)
