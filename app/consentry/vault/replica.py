"""The vault's side of a site (fleet/): sealed device secrets, the per-subject record versions,
the doors a kiosk was asked to admit, and replicated subjects applied in one transaction.

A mixin of :class:`~consentry.vault.store.Vault`: it uses the store's connection, lock and
keys, so the database and the keys stay in one room.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CardInUse, SubjectNotFound, TemplateIntegrityError, VaultError
from ..panel.formats import Card
from . import crypto
from .aad import aad_template as _aad_template
from .consent import ConsentRecord

log = logging.getLogger(__name__)

SECRET_PREFIX = "secret:"


@dataclass(frozen=True, eq=False)
class ReplicaSubject:
    """A subject as a door receives it from its site: pseudonymous id, the record's site-wide
    sequence number and digest, the consent record (no name; ``witnessed_by`` names the site),
    and ``vectors`` (n, 128) float32 already in the site's transform space; ``card`` its panel
    credential, if any."""

    subject: str
    seq: int
    digest: str
    consent: ConsentRecord
    vectors: np.ndarray
    model: str
    card: Card | None = None


@dataclass(frozen=True)
class ExportedSubject:
    """What a kiosk publishes about one of its subjects: the consent record (``witnessed_by``
    blanked), the template ids (for the digest) and ``vectors`` (n, 128) float32 in the
    store's transform space, and the panel ``card`` if any. The caller zeroes ``vectors``."""

    subject: str
    consent: ConsentRecord
    template_ids: tuple[str, ...]
    vectors: np.ndarray
    model: str
    card: Card | None = None


class FleetRows:
    # -- sealed secrets (site keys, a door's private key) ---------------------------------
    def put_secret(self, name: str, value: bytes) -> None:
        with self._txn():
            self._set_meta(SECRET_PREFIX + name, crypto.seal(self._secret_key, value, f"consentry:secret:{name}"))
            self.audit.append(self._now(), "secret_set", secret=name)

    def secret(self, name: str) -> bytes | None:
        with self._lock:
            blob = self._meta(SECRET_PREFIX + name)
        if blob is None:
            return None
        return crypto.unseal(self._secret_key, blob, f"consentry:secret:{name}", f"the {name} secret")

    def drop_secret(self, name: str) -> None:
        with self._txn():
            self._conn.execute("DELETE FROM meta WHERE key=?", (SECRET_PREFIX + name,))
            self.audit.append(self._now(), "secret_dropped", secret=name)
        self._checkpoint()

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits to the store."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    # -- record versions ------------------------------------------------------------------
    def fleet_versions(self) -> dict[str, tuple[int, str, str]]:
        """subject → (seq, kind, digest) of the record last published (kiosk) or applied (door)."""
        with self._lock:
            rows = self._conn.execute("SELECT subject, seq, kind, digest FROM fleet").fetchall()
        return {r[0]: (int(r[1]), str(r[2]), str(r[3])) for r in rows}

    def fleet_records(self) -> list[tuple[str, int, str, bytes | None]]:
        """(subject, seq, kind, signed record) in sequence order, to republish."""
        with self._lock:
            rows = self._conn.execute("SELECT subject, seq, kind, record FROM fleet ORDER BY seq").fetchall()
        return [(r[0], int(r[1]), str(r[2]), None if r[3] is None else bytes(r[3])) for r in rows]

    def fleet_note(self, subject: str, seq: int, kind: str, digest: str, record: bytes) -> None:
        """A record the kiosk published (replacing the subject's previous one)."""
        with self._txn():
            self._conn.execute("INSERT OR REPLACE INTO fleet(subject, seq, kind, digest, record) VALUES (?,?,?,?,?)",
                               (subject, seq, kind, digest, record))

    def fleet_max_seq(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM fleet").fetchone()[0])

    def fleet_refused(self, reason: str, subject: str | None) -> None:
        """Audit a site record a door refused (forged, replayed, reordered, tampered, skewed)."""
        with self._txn():
            self.audit.append(self._now(), "site_record_refused", subject, reason=reason[:200])

    def fleet_head_seq(self) -> int:
        """The highest site head this door has seen (sealed, so it cannot be lowered unnoticed:
        an old head replayed after a restart is refused)."""
        with self._lock:
            blob = self._meta("fleet_head")
        if blob is None:
            return 0
        return int(crypto.unseal(self._secret_key, bytes(blob), "consentry:fleet-head", "the fleet head"))

    def fleet_note_head(self, seq: int) -> None:
        with self._txn():
            self._set_meta("fleet_head", crypto.seal(self._secret_key, str(int(seq)).encode(), "consentry:fleet-head"))

    def fleet_digests(self, model: str) -> dict[str, str]:
        """subject → a digest of what a site publishes about it (consent fields, purposes and
        template ids), for every intact subject with ``model`` templates: cheap to compare."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id, s.purposes, s.identify_opt_in, s.consent_id, s.consent_version, s.consent_given_at, "
                "s.retention_days, s.row_mac, t.id, s.card_tag FROM subjects s JOIN templates t ON "
                "t.subject_id = s.id AND t.model = ? ORDER BY s.id, t.id", (model,)).fetchall()
            intact = {sid for sid, mac in {(r[0], r[7]) for r in rows} if self._signer.intact(sid, mac)}
        parts: dict[str, list[str]] = {}
        for sid, *fields, _mac, tid, card_tag in rows:
            if sid in intact:
                # a card joins the digest only when set: digests of subjects without one are unchanged
                parts.setdefault(sid, [model, *map(str, fields)] + ([f"card:{card_tag}"] if card_tag else [])
                                 ).append(tid)
        return {sid: hashlib.sha256("\0".join(p).encode()).hexdigest()[:32] for sid, p in parts.items()}

    # -- doors (kiosk) --------------------------------------------------------------------
    def fleet_door(self, door: str, public_key: bytes, label: str, status: str) -> None:
        with self._txn():
            self._conn.execute("INSERT OR REPLACE INTO fleet_doors(door, public_key, label, status, updated) "
                               "VALUES (?,?,?,?,?)", (door, public_key, label[:64], status, self._now()))
            if status in ("approved", "removed"):
                self.audit.append(self._now(), f"door_{status}", door=door)

    def fleet_forget_door(self, door: str, why: str) -> None:
        """A join request rejected by staff or expired: the row goes (audited)."""
        with self._txn():
            self._conn.execute("DELETE FROM fleet_doors WHERE door=? AND status='pending'", (door,))
            self.audit.append(self._now(), f"door_{why[:20]}", door=door)

    def fleet_doors(self) -> list[tuple[str, bytes, str, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT door, public_key, label, status FROM fleet_doors ORDER BY door")
            return [(r[0], bytes(r[1]), str(r[2]), str(r[3])) for r in rows.fetchall()]

    # -- a kiosk's export -----------------------------------------------------------------
    def export_subject(self, subject: str, model: str) -> ExportedSubject:
        with self._lock:
            row = self._conn.execute(
                "SELECT consent_id, consent_version, consent_sha256, consent_given_at, consent_method, "
                "retention_days, age_statement, purposes, identify_opt_in, consent_language, row_mac FROM subjects "
                "WHERE id=?",
                (subject,)).fetchone()
            if row is None:
                raise SubjectNotFound(f"no subject {subject}")
            if not self._signer.intact(subject, row[-1]):
                raise VaultError(f"subject {subject}: its consent record fails its MAC; it is not published")
            wrapped = self._conn.execute("SELECT wrapped_key FROM subjects WHERE id=?", (subject,)).fetchone()[0]
            rows = self._conn.execute("SELECT id, ct FROM templates WHERE subject_id=? AND model=? ORDER BY id",
                                      (subject, model)).fetchall()
        consent = ConsentRecord(row[0], row[1], row[2], row[3], row[4], "-", int(row[5]), row[6],
                                tuple(row[7].split(",")), bool(row[8]), row[9] or "en")
        data_key = self._data_key(subject, wrapped)
        vectors = np.zeros((len(rows), crypto.DIM), np.float32)
        for i, (tid, ct) in enumerate(rows):
            raw = crypto.unseal(data_key, bytes(ct), _aad_template(subject, tid, model), f"template {tid}")
            vectors[i] = np.frombuffer(raw, dtype="<f4")
        ids = tuple(r[0] for r in rows)
        try:
            card = self.card(subject)
        except TemplateIntegrityError as exc:  # published without it rather than holding up the site
            log.error("%s; the subject is published without a card", exc)
            card = None
        return ExportedSubject(subject, consent, ids, vectors, model, card)

    # -- a door's replicas ----------------------------------------------------------------
    def apply_replicas(self, revokes: Sequence[tuple[str, int]], subjects: Sequence[ReplicaSubject]) -> list[str]:
        """Apply a batch in one transaction: revocations first (key, templates and record
        destroyed; a tombstone kept so no older record brings the subject back), then new or
        changed subjects. Returns the subjects revoked."""
        gone = []
        with self._txn():
            for subject, seq in revokes:
                if self._conn.execute("SELECT 1 FROM subjects WHERE id=?", (subject,)).fetchone():
                    self._delete_subject(subject, "revoked by the site")
                    gone.append(subject)
                self._conn.execute("INSERT OR REPLACE INTO fleet(subject, seq, kind, digest, record) "
                                   "VALUES (?,?,'revoke','',NULL)", (subject, seq))
            for r in subjects:
                if self._conn.execute("SELECT 1 FROM subjects WHERE id=?", (r.subject,)).fetchone():
                    self._delete_subject(r.subject, "replaced by the site", audit=False)
                self._insert_subject(r.subject, "", r.consent, list(r.vectors), r.model, transformed=True)
                self._replica_card(r.subject, r.card)
                self._conn.execute("INSERT OR REPLACE INTO fleet(subject, seq, kind, digest, record) "
                                   "VALUES (?,?,'enrol',?,NULL)", (r.subject, r.seq, r.digest))
            if revokes or subjects:
                self.audit.append(self._now(), "site_records", revoked=len(revokes), applied=len(subjects))
        for subject in gone:
            self._after_revoke(subject)
        return gone

    def _replica_card(self, subject: str, card: Card | None) -> None:
        """A site subject's card, in the batch's transaction; one this door holds for another
        subject (a revocation not yet received) is left off, loudly, rather than failing the batch."""
        if card is None:
            return
        try:
            self._put_card(subject, card)
        except CardInUse:
            log.error("site subject %s: its card is registered here to another subject; it is not used until "
                      "the site's records agree", subject)

    def adopt_transform(self, transform: np.ndarray) -> None:
        """Move every template into the site's transform space (a door joining a site)."""
        self.rotate(self.provider.master_key(self.salt), transform=transform)

    def refuse_renewal_in_a_site(self) -> None:
        if self.secret("fleet") is not None:
            raise VaultError("this device belongs to a site: its template transform is the site's and cannot "
                             "be renewed here (every door's templates would stop matching)")
