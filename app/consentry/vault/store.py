"""The consent vault: the only room that touches the database and the keys.

Subjects are random pseudonymous ids. Each has a data key (wrapped by the device master
key) that encrypts its display name and its templates with AES-256-GCM; the associated data
binds every blob to its row. Templates are multiplied by the deployment's secret orthogonal
transform before they are stored, so templates of one face on two deployments cannot be
linked. Revoking deletes the wrapped key, the templates and the record, overwrites them
(secure_delete) and truncates the WAL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SubjectNotFound, TemplateIntegrityError, VaultError, VaultMissing, WrongKey
from . import crypto, schema
from . import rows as macs
from .aad import aad_door_template
from .aad import aad_key as _aad_key
from .aad import aad_name as _aad_name
from .aad import aad_template as _aad_template
from .audit import AuditLog, AuditReport
from .cards import CardRows
from .consent import MAX_RETENTION_DAYS, ConsentRecord
from .door_templates import DoorTemplates
from .files import prepare_files
from .keys import KeyFile, KeyProvider
from .replica import FleetRows

log = logging.getLogger(__name__)

DB_NAME = "consentry.db"
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SubjectInfo:
    """A subject as listed: pseudonymous id, purposes, dates (ISO 8601 UTC), template models;
    ``name`` only when explicitly asked for."""

    id: str
    purposes: tuple[str, ...]
    created: str
    last_seen: str | None
    expires: str
    models: tuple[str, ...]
    identify_opt_in: bool
    name: str | None = None
    intact: bool = True  # False: the consent row fails its MAC (listed so staff can revoke it)

    def as_json(self) -> dict:
        out = {"id": self.id, "purposes": list(self.purposes), "created": self.created,
               "last_seen": self.last_seen, "expires": self.expires, "models": list(self.models),
               "identify_opt_in": self.identify_opt_in}
        if self.name is not None:
            out["name"] = self.name
        if not self.intact:
            out["damaged"] = True
        return out


@dataclass(frozen=True)
class DeletionReceipt:
    subject: str
    time: str
    destroyed: dict
    audit_hash: str
    reason: str

    def as_json(self) -> dict:
        return {"subject": self.subject, "time": self.time, "reason": self.reason,
                "destroyed": self.destroyed, "audit_hash": self.audit_hash}


@dataclass(frozen=True, eq=False)
class TemplateSet:
    """Decrypted templates as ``(subject id, (128,) float32 transformed vector)`` pairs, the
    ids of templates that failed authentication, and subjects with only other models'
    templates. The caller zeroes the vectors once it has copied them (see ``wipe``)."""

    templates: list[tuple[str, np.ndarray]]
    damaged: list[str] = field(default_factory=list)
    other_models: list[str] = field(default_factory=list)

    def wipe(self) -> None:
        for _, vector in self.templates:
            vector.fill(0)


class Vault(DoorTemplates, FleetRows, CardRows):
    """Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(self, home: Path, provider: KeyProvider, *, inactivity_days: int = 365,
                 clock: Clock = utc_now, create: bool = False) -> None:
        """Open the store in ``home``. Only ``create`` (`keys init`, the first enrolment) may
        make a new one; otherwise a missing or empty store is :class:`VaultMissing`, and a
        store whose metadata is missing or fails its MAC is refused — never replaced."""
        self.home = Path(home)
        self.path = self.home / DB_NAME
        self.provider = provider
        self.inactivity_days = min(inactivity_days, MAX_RETENTION_DAYS)
        self.clock = clock
        self._lock = threading.RLock()
        self._revoke_callbacks: list[Callable[[str], None]] = []
        self._enrol_callbacks: list[Callable[[str], None]] = []
        prepare_files(self.home, self.path, create)
        self._conn = schema.connect(self.path)
        try:
            previous = schema.migrate(self._conn, self.path, create)
            self._unlock(create, authenticated=previous >= macs.MACS_SINCE)
        except (sqlite3.DatabaseError, UnicodeError) as exc:
            self._conn.close()
            raise VaultError(f"template store {self.path} is damaged ({exc}). Nothing was changed; "
                             "restore it from a backup") from None
        except BaseException:
            self._conn.close()
            raise

    # -- keys -----------------------------------------------------------------------------
    def _meta(self, key: str) -> bytes | None:
        return macs.meta_value(self._conn, key)

    def _set_meta(self, key: str, value: bytes | str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def _unlock(self, create: bool, authenticated: bool) -> None:
        salt = self._meta("salt")
        if salt is None:
            blank = self._blank()
            if blank and not create:  # made by an open that had no key yet: nothing to lose
                raise VaultMissing(f"template store {self.path} was never initialised; create it with "
                                   "`consentry keys init`")
            if not blank:
                raise VaultError(f"template store {self.path} has lost its key metadata: it is damaged. Nothing "
                                 "was changed (a new key would orphan every template); restore it from a backup")
            self._initialise()
            return
        master = self.provider.master_key(salt)
        if not self._opens(master):
            pending = self.provider.pending if isinstance(self.provider, KeyFile) else None
            if pending is not None and pending.exists() and self._opens(KeyFile(pending).master_key(salt)):
                log.warning("finishing an interrupted key rotation: the new key file becomes current")
                self.provider.commit()
                master = self.provider.master_key(salt)
            else:
                raise WrongKey(f"the master key from the {self.provider.name} provider does not open {self.path}")
        self._check_meta(master, authenticated)
        self._use_master(master)

    def _blank(self) -> bool:
        """Nothing but a schema version: safe to initialise."""
        keys = {r[0] for r in self._conn.execute("SELECT key FROM meta")}
        rows = sum(self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
                   for t in ("subjects", "templates", "audit", "credentials"))
        return keys <= {"schema_version"} and rows == 0

    def _check_meta(self, master: bytes, authenticated: bool) -> None:
        """The key metadata must carry a valid MAC; a store that predates it gets one now."""
        stored = self._meta("meta_mac")
        if stored is None and not authenticated:
            with self._txn():
                self._set_meta("meta_mac", macs.meta_mac(self._conn, master))
                macs.SubjectSigner(self._conn, master).sign_all()
            log.info("signed the key metadata and subject rows of %s (schema upgrade)", self.path)
            return
        if stored is None or not hmac.compare_digest(stored, macs.meta_mac(self._conn, master)):
            raise VaultError(f"the key metadata of {self.path} was changed or is missing its MAC: refusing to "
                             "open it. Nothing was changed; restore the store from a backup")

    def _opens(self, master: bytes) -> bool:
        try:
            crypto.unseal(crypto.derive(master, "check"), self._meta("key_check") or b"", "consentry:key-check", "")
            return True
        except TemplateIntegrityError:
            return False

    def _use_master(self, master: bytes) -> None:
        self._signer = macs.SubjectSigner(self._conn, master)
        meta_key = crypto.derive(master, "meta")
        self._wrap_key = crypto.derive(master, "wrap")
        self._secret_key = crypto.derive(master, "secrets")
        audit_key = crypto.unseal(meta_key, self._meta("audit_key") or b"", "consentry:audit-key", "the audit key")
        self.audit = AuditLog(self._conn, audit_key)
        raw = crypto.unseal(meta_key, self._meta("transform") or b"", "consentry:transform", "the deployment transform")
        self.transform = np.frombuffer(raw, dtype="<f4").reshape(crypto.DIM, crypto.DIM).astype(np.float32)

    def _initialise(self) -> None:
        salt = os.urandom(16)
        master = self.provider.master_key(salt)
        with self._txn():
            self._set_meta("salt", salt)
            self._set_meta("deployment", secrets.token_hex(8).encode())
            self._seal_meta(master, crypto.new_key(), crypto.random_orthogonal())
        self._use_master(master)
        with self._txn():
            self.audit.append(self._now(), "vault_created", provider=self.provider.name)

    def _seal_meta(self, master: bytes, audit_key: bytes, transform: np.ndarray) -> None:
        """The key check, the audit key and the transform, sealed under ``master``."""
        meta_key = crypto.derive(master, "meta")
        self._set_meta("key_check", crypto.seal(crypto.derive(master, "check"), b"ok", "consentry:key-check"))
        self._set_meta("audit_key", crypto.seal(meta_key, audit_key, "consentry:audit-key"))
        self._set_meta("transform", crypto.seal(meta_key, np.asarray(transform, "<f4").tobytes(),
                                                "consentry:transform"))
        self._set_meta("meta_mac", macs.meta_mac(self._conn, master))

    @property
    def salt(self) -> bytes:
        return self._meta("salt") or b""

    # -- plumbing -------------------------------------------------------------------------
    def _now(self) -> str:
        return self.clock().isoformat()

    @contextmanager
    def _txn(self) -> Iterator[None]:
        """One write transaction. SQLite's own failures (locked past the busy timeout, disk
        full, I/O) surface as VaultError, which every caller already handles."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise VaultError(f"the vault could not be written: {exc}") from exc
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # a failed COMMIT may have ended it already
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise VaultError(f"the vault could not be written: {exc}") from exc
                raise

    def _data_key(self, subject: str, wrapped: bytes) -> bytes:
        return crypto.unseal(self._wrap_key, bytes(wrapped), _aad_key(subject), f"data key of subject {subject}")

    def on_revoke(self, callback: Callable[[str], None]) -> None:
        """Called with the subject id after every revocation (galleries drop the subject at once)."""
        self._revoke_callbacks.append(callback)

    def on_enrol(self, callback: Callable[[str], None]) -> None:
        """Called with the subject id after an enrolment in this process (a site publishes it)."""
        self._enrol_callbacks.append(callback)

    # -- lifecycle ------------------------------------------------------------------------
    def enroll(self, name: str, consent: ConsentRecord, vectors: Sequence[np.ndarray], model: str,
               card=None) -> str:
        """Store a new subject (with its panel ``card``, if any); returns its pseudonymous id.
        One transaction: all or nothing."""
        subject = "s-" + secrets.token_hex(8)
        with self._txn():
            self._insert_subject(subject, name, consent, vectors, model)
            if card is not None:
                self._put_card(subject, card)
            self.audit.append(self._now(), "enrol", subject, templates=len(vectors), model=model,
                              purposes=list(consent.purposes), consent=f"{consent.consent_id}@{consent.version}",
                              method=consent.method)
        for callback in self._enrol_callbacks:
            callback(subject)
        return subject

    def _insert_subject(self, subject: str, name: str, consent: ConsentRecord, vectors: Sequence[np.ndarray],
                        model: str, *, transformed: bool = False) -> None:
        """Inside the caller's transaction. ``transformed``: the vectors are already in this
        store's transform space (a site's replicated templates)."""
        consent.validate()
        if not vectors:
            raise VaultError("enrolment needs at least one template")
        data_key = crypto.new_key()
        now = self._now()
        self._conn.execute(
            "INSERT INTO subjects(id, name_ct, wrapped_key, purposes, identify_opt_in, created, consent_id, "
            "consent_version, consent_sha256, consent_given_at, consent_method, witnessed_by, retention_days, "
            "age_statement, consent_language, greeting) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (subject, crypto.seal(data_key, name.encode(), _aad_name(subject)),
             crypto.seal(self._wrap_key, data_key, _aad_key(subject)), ",".join(consent.purposes),
             int(consent.identify_opt_in), now, consent.consent_id, consent.version, consent.sha256,
             consent.given_at, consent.method, consent.witnessed_by, consent.retention_days,
             consent.age_statement, consent.language, int(consent.greeting)))
        for vector in vectors:
            self._store_template(subject, data_key, vector, model, now, transformed=transformed)
        self._signer.sign(subject)
        self._set_meta("roster", self._signer.toggled(self._meta("roster"), subject))

    def _store_template(self, subject: str, data_key: bytes, vector: np.ndarray, model: str, now: str,
                        transformed: bool = False) -> None:
        template = "t-" + secrets.token_hex(8)
        vector = np.asarray(vector, np.float32).reshape(crypto.DIM)
        moved = vector.copy() if transformed else self.transform @ vector
        blob = crypto.seal(data_key, crypto.vector_bytes(moved), _aad_template(subject, template, model))
        moved.fill(0)
        self._conn.execute("INSERT INTO templates(id, subject_id, model, ct, created) VALUES (?,?,?,?,?)",
                           (template, subject, model, blob, now))

    def exists(self, subject: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM subjects WHERE id=?", (subject,)).fetchone() is not None

    def subjects(self, show_names: bool = False, reason: str = "") -> list[SubjectInfo]:
        """Every subject; names are decrypted (and the disclosure audited) only on request."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id, s.purposes, s.created, s.last_seen, s.consent_given_at, s.retention_days, "
                "s.identify_opt_in, s.name_ct, s.wrapped_key, group_concat(DISTINCT t.model), s.row_mac "
                "FROM subjects s LEFT JOIN templates t ON t.subject_id = s.id GROUP BY s.id "
                "ORDER BY s.created, s.id").fetchall()
            intact = {r[0]: self._signer.intact(r[0], r[-1]) for r in rows}
        out = []
        for sid, purposes, created, seen, given, days, opt_in, name_ct, wrapped, models, _ in rows:
            if not intact[sid]:
                out.append(SubjectInfo(sid, (), str(created), None, "", (), False, intact=False))
                continue
            name = None
            if show_names:
                name = crypto.unseal(self._data_key(sid, wrapped), bytes(name_ct), _aad_name(sid),
                                     f"name of subject {sid}").decode()
            out.append(SubjectInfo(sid, tuple(purposes.split(",")), created, seen,
                                   self._expiry(given, seen or created, days).isoformat(),
                                   tuple(sorted((models or "").split(",")) if models else ()), bool(opt_in), name))
        if show_names:
            with self._txn():
                self.audit.append(self._now(), "names_shown", count=len(out), reason=reason or "unspecified")
        return out

    def _expiry(self, given: str, seen: str, retention_days: int) -> dt.datetime:
        by_consent = dt.datetime.fromisoformat(given) + dt.timedelta(days=retention_days)
        by_absence = dt.datetime.fromisoformat(seen) + dt.timedelta(days=self.inactivity_days)
        return min(by_consent, by_absence)

    def load_templates(self, model: str, purpose: str | None = None, opted_in_only: bool = False) -> TemplateSet:
        """Decrypt the (transformed) templates of ``model``, optionally only for subjects whose
        consent covers ``purpose`` (and opts in to 1:N identification). Damaged templates are
        skipped and named, not fatal."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id, s.wrapped_key, s.purposes, s.identify_opt_in, t.id, t.model, t.ct, s.row_mac "
                "FROM templates t JOIN subjects s ON s.id = t.subject_id ORDER BY s.id, t.id").fetchall()
            intact = {sid: self._signer.intact(sid, mac) for sid, mac in
                      self._conn.execute("SELECT id, row_mac FROM subjects").fetchall()}
        templates, damaged, other = [], [], set()
        for sid, wrapped, purposes, opt_in, tid, tmodel, ct, _ in rows:
            if not intact.get(sid, False):
                if tid not in damaged:
                    log.error("subject %s: its consent record fails its MAC; its templates are skipped", sid)
                damaged.append(tid)
                continue
            if (purpose and purpose not in purposes.split(",")) or (opted_in_only and not opt_in):
                continue
            if tmodel != model:
                other.add(sid)
                continue
            try:
                raw = crypto.unseal(self._data_key(sid, wrapped), bytes(ct), _aad_template(sid, tid, tmodel),
                                    f"template {tid} of subject {sid}")
            except TemplateIntegrityError as exc:
                log.error("%s; skipping it", exc)
                damaged.append(tid)
                continue
            templates.append((sid, crypto.bytes_vector(raw)))
        if purpose == "door":  # a door's own door templates join its subjects' (vault/door_templates.py)
            templates += self._door_rows_for(model, {s for s, _ in templates})
        return TemplateSet(templates, damaged, sorted(other - {s for s, _ in templates}))

    def touch(self, subject: str) -> None:
        """Record that a subject was seen (at most one write per subject per day)."""
        today = self.clock().date().isoformat()
        with self._txn():
            if self._conn.execute("UPDATE subjects SET last_seen=? WHERE id=? AND (last_seen IS NULL OR "
                                  "substr(last_seen, 1, 10) < ?)", (self._now(), subject, today)).rowcount:
                self._signer.sign(subject)

    def record_access(self, subject: str | None, decision: str, count: int = 1) -> None:
        """Audit an access decision: a subject's pseudonymous id, or a count of unknown faces."""
        with self._txn():
            if subject is None:
                self.audit.append(self._now(), "unknown_faces", count=count)
            else:
                self.audit.append(self._now(), "access", subject, decision=decision)

    def revoke(self, subject: str, reason: str = "consent withdrawn") -> DeletionReceipt:
        with self._txn():
            destroyed, now, mac = self._delete_subject(subject, reason)
        self._after_revoke(subject)
        return DeletionReceipt(subject, now, destroyed, mac, reason)

    def _delete_subject(self, subject: str, reason: str, audit: bool = True) -> tuple[dict, str, str]:
        """Inside the caller's transaction: the key, templates, record, and any replicated
        payload of the subject (a site's published record) go; the audit says so."""
        row = self._conn.execute("SELECT 1 FROM subjects WHERE id=?", (subject,)).fetchone()
        if row is None:
            raise SubjectNotFound(f"no subject {subject} (never enrolled, already revoked, or purged)")
        templates = self._conn.execute("DELETE FROM templates WHERE subject_id=?", (subject,)).rowcount
        door = self._delete_door_templates(subject)
        self._conn.execute("DELETE FROM subjects WHERE id=?", (subject,))
        self._conn.execute("UPDATE fleet SET record=NULL WHERE subject=? AND kind != 'revoke'", (subject,))
        self._set_meta("roster", self._signer.toggled(self._meta("roster"), subject))
        destroyed = {"data_key": True, "templates": templates, "door_templates": door, "name": True,
                     "consent_record": True}
        now = self._now()
        if not audit:
            return destroyed, now, ""
        mac = self.audit.append(now, "revoke" if reason != "expired" else "expire", subject,
                                reason=reason, **destroyed)
        return destroyed, now, mac

    def _after_revoke(self, subject: str) -> None:
        self._checkpoint()
        for callback in self._revoke_callbacks:
            callback(subject)

    # -- revocation codes and staff credentials -------------------------------------------
    def issue_revocation_code(self, subject: str) -> str:
        """A new code that withdraws ``subject``'s consent without staff; only a keyed hash
        of it is stored, so the code is shown once and cannot be recovered."""
        code = new_revocation_code()
        with self._txn():
            updated = self._conn.execute("UPDATE subjects SET revocation_tag=? WHERE id=?",
                                         (self._code_tag(code), subject)).rowcount
            self._signer.sign(subject)
        if not updated:
            raise SubjectNotFound(f"no subject {subject}")
        return code

    def revoke_by_code(self, code: str) -> DeletionReceipt:
        with self._lock:
            row = self._conn.execute("SELECT id FROM subjects WHERE revocation_tag=?",
                                     (self._code_tag(code),)).fetchone()
        if row is None:
            raise SubjectNotFound("no subject has that revocation code")
        return self.revoke(row[0], reason="withdrawn with revocation code")

    def _code_tag(self, code: str) -> str:
        key = crypto.derive(self.audit.key, "revocation-code")
        return hmac.new(key, normalise_code(code).encode(), hashlib.sha256).hexdigest()

    def remember_command(self, request_id: str, now: float, max_age: float) -> bool:
        """Record a remote command's id; False when it was seen within ``max_age`` seconds
        (kept in the store, so a replay is refused after a restart too)."""
        with self._txn():
            self._conn.execute("DELETE FROM commands WHERE seen < ?", (now - max_age,))
            if self._conn.execute("SELECT 1 FROM commands WHERE request_id=?", (request_id,)).fetchone():
                return False
            self._conn.execute("INSERT INTO commands(request_id, seen) VALUES (?, ?)", (request_id, now))
        return True

    def set_credential(self, kind: str, hashed: str) -> None:
        """Store a staff password / PIN hash (Argon2id, made by the caller), with its MAC."""
        with self._txn():
            self._conn.execute("INSERT OR REPLACE INTO credentials(kind, hash, updated, mac) VALUES (?,?,?,?)",
                               (kind, hashed, self._now(), self._signer.credential_mac(kind, hashed)))
            self.audit.append(self._now(), "credential_set", credential=kind)

    def credential(self, kind: str) -> str | None:
        """The hash, or None when there is none or it fails its MAC (then nobody logs in with it)."""
        with self._lock:
            row = self._conn.execute("SELECT hash, mac FROM credentials WHERE kind=?", (kind,)).fetchone()
        if row is None:
            return None
        hashed, mac = row
        if mac is None or not hmac.compare_digest(bytes(mac), self._signer.credential_mac(kind, hashed)):
            log.error("the stored %s credential fails its MAC; it is ignored until it is set again", kind)
            return None
        return hashed

    def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it, so no deleted page survives there."""
        with self._lock:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("WAL checkpoint was blocked by another reader; it will complete on the next revoke")

    def expired(self) -> list[str]:
        now = self.clock()
        return [s.id for s in self.subjects() if s.intact and dt.datetime.fromisoformat(s.expires) <= now]

    def purge(self, dry_run: bool = False) -> list[DeletionReceipt | str]:
        """Remove every expired subject (or, with ``dry_run``, list who would be removed)."""
        due = self.expired()
        if dry_run:
            return list(due)
        return [self.revoke(s, reason="expired") for s in due]

    def needs_reenrolment(self, model: str) -> list[str]:
        """Subjects with no template of ``model`` (after a model change; no images are kept)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id FROM subjects s WHERE NOT EXISTS (SELECT 1 FROM templates t WHERE "
                "t.subject_id = s.id AND t.model = ?) ORDER BY s.id", (model,)).fetchall()
        return [r[0] for r in rows]

    def rotate(self, new_master: bytes, renew_transform: bool = False, *,
               transform: np.ndarray | None = None) -> int:
        """Re-wrap every data key under ``new_master`` (and optionally renew the transform, or
        adopt a given one — a site's — re-encrypting every template). One transaction.
        Returns the subjects re-wrapped."""
        if transform is None:
            if renew_transform:
                self.refuse_renewal_in_a_site()
            transform = crypto.random_orthogonal() if renew_transform else self.transform
        else:
            transform, renew_transform = np.asarray(transform, np.float32), True
        change = transform @ self.transform.T
        new_wrap = crypto.derive(new_master, "wrap")
        with self._txn():
            rows = self._conn.execute("SELECT id, wrapped_key FROM subjects").fetchall()
            for sid, wrapped in rows:
                data_key = self._data_key(sid, wrapped)
                self._conn.execute("UPDATE subjects SET wrapped_key=? WHERE id=?",
                                   (crypto.seal(new_wrap, data_key, _aad_key(sid)), sid))
                if renew_transform:
                    self._retransform(sid, data_key, change)
            self._seal_meta(new_master, self.audit.key, transform)
            macs.SubjectSigner(self._conn, new_master).sign_all()
            self.audit.append(self._now(), "key_rotate", subjects=len(rows), transform_renewed=renew_transform)
        self._checkpoint()
        self._use_master(new_master)
        return len(rows)

    def _retransform(self, sid: str, data_key: bytes, change: np.ndarray) -> None:
        self._reseal_moved("templates", _aad_template, "template", sid, data_key, change)
        self._reseal_moved("door_templates", aad_door_template, "door template", sid, data_key, change)

    def _reseal_moved(self, table: str, aad_of, label: str, sid: str, data_key: bytes, change: np.ndarray) -> None:
        """Every template of ``sid`` in ``table`` moved by ``change`` and sealed again under its row's AAD."""
        for tid, model, ct in self._conn.execute(f"SELECT id, model, ct FROM {table} WHERE subject_id=?",
                                                 (sid,)).fetchall():
            aad = aad_of(sid, tid, model)
            vector = crypto.bytes_vector(crypto.unseal(data_key, bytes(ct), aad, f"{label} {tid}"))
            moved = change @ vector
            self._conn.execute(f"UPDATE {table} SET ct=? WHERE id=?",
                               (crypto.seal(data_key, crypto.vector_bytes(moved), aad), tid))
            vector.fill(0)
            moved.fill(0)

    def audit_entries(self, limit: int | None = None) -> list[dict]:
        """The newest audit entries first (under the vault's lock: the web page reads them while
        the loop appends)."""
        with self._lock:
            return self.audit.entries(limit)

    def verify_audit(self) -> AuditReport:
        """The audit chain, and whether the subject rows still add up to the keyed roster
        (rows removed or inserted outside Consentry show here)."""
        with self._lock:
            report = self.audit.verify()
            roster_ok = hmac.compare_digest(self._meta("roster") or bytes(32), self._signer.roster())
        if roster_ok:
            return report
        problem = "subjects were added or removed outside Consentry: the subject rows do not match the roster"
        return AuditReport(False, report.entries, report.head, [*report.problems, problem])

    def damaged(self) -> list[str]:
        """Subjects whose row fails its MAC and templates that fail authentication (moved to
        another row, flipped): a full pass that decrypts every template once, for doctor."""
        with self._lock:
            rows = self._conn.execute("SELECT id, row_mac FROM subjects ORDER BY id").fetchall()
            models = [r[0] for r in self._conn.execute("SELECT DISTINCT model FROM templates ORDER BY model")]
        found = {sid for sid, mac in rows if not self._signer.intact(sid, mac)}
        for model in models:
            loaded = self.load_templates(model)
            loaded.wipe()
            found.update(loaded.damaged)
        found.update(self._damaged_door_templates(found))
        return sorted(found)

    def integrity_check(self) -> str:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_revocation_code() -> str:
    """16 symbols (80 bits) in groups of four, e.g. ``7KQ2-M9XD-4HTR-0BWE``."""
    symbols = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(symbols[i:i + 4] for i in range(0, 16, 4))


def normalise_code(code: str) -> str:
    """Forgiving input: case, spaces and dashes ignored; O→0, I/L→1."""
    text = "".join(ch for ch in code.upper() if ch.isalnum())
    return text.translate(str.maketrans("OIL", "011"))


def default_home() -> Path:
    """$CONSENTRY_HOME, else $XDG_DATA_HOME/consentry, else ~/.local/share/consentry."""
    if os.environ.get("CONSENTRY_HOME"):
        return Path(os.environ["CONSENTRY_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "consentry"


