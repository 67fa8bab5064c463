"""The consent vault's invariants, on a real SQLite file and real AES-GCM."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import numpy as np
import pytest
from consentry.errors import ConsentMissing, KeyUnavailable, SubjectNotFound, TemplateIntegrityError, WrongKey
from consentry.match import MatchPolicy, gallery_from_vault
from consentry.vault import ConsentRecord, KeyFile, Passphrase, Vault, rotate_keys
from consentry.vault.schema import SCHEMA_VERSION
from consentry.vault.store import DB_NAME

MODEL = "dlib_resnet_v1_int8+flip"
NAME = "Zebedee Quixote-Example"


def consent(days: int = 365, **overrides) -> ConsentRecord:
    fields = dict(consent_id="consentry-door", version="1", sha256="ab" * 32,
                  given_at="2026-11-28T00:00:00+00:00", method="cli", witnessed_by="tester",
                  retention_days=days, age_statement="adult", purposes=("door",))
    fields.update(overrides)
    return ConsentRecord(**fields)


def vectors(seed: int, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(128).astype(np.float32) * 0.09  # about a dlib descriptor's size
    return [base + rng.standard_normal(128).astype(np.float32) * 0.01 for _ in range(n)]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def store_bytes(home) -> bytes:
    """Every byte of the database and its WAL / journal files."""
    return b"".join((home / f"{DB_NAME}{suffix}").read_bytes() for suffix in ("", "-wal", "-journal", "-shm")
                    if (home / f"{DB_NAME}{suffix}").exists())


def windows(raw: bytes, size: int = 16) -> list[bytes]:
    return [raw[i:i + size] for i in range(0, len(raw) - size + 1, size)]


def test_store_holds_no_name_and_no_embedding_bytes(vault):
    vecs = vectors(1)
    vault.enroll(NAME, consent(), vecs, MODEL)
    vault.enroll("Second Person", consent(), vectors(2), MODEL)
    for data in (store_bytes(vault.home), None):
        if data is None:  # again after the WAL was checkpointed into the database
            vault._checkpoint()
            data = store_bytes(vault.home)
        assert NAME.encode() not in data and b"Second Person" not in data
        for v in vecs:
            for form in (v, vault.transform @ v):
                raw = np.asarray(form, "<f4").tobytes()
                assert not any(w in data for w in windows(raw)), "embedding bytes found in the store"


def test_enrolment_without_a_complete_consent_is_refused(vault):
    with pytest.raises(ConsentMissing, match="witnessed_by"):
        vault.enroll(NAME, consent(witnessed_by=""), vectors(1), MODEL)
    with pytest.raises(ConsentMissing, match="retention_days"):
        vault.enroll(NAME, consent(days=4000), vectors(1), MODEL)
    assert vault.subjects() == []


def test_revocation_leaves_no_ciphertext_and_a_receipt(vault, tmp_path, keyfile):
    keep = vault.enroll("Keeper", consent(), vectors(3), MODEL)
    gone = vault.enroll(NAME, consent(), vectors(4), MODEL)
    conn = sqlite3.connect(vault.path)
    blobs = [bytes(b) for row in conn.execute("SELECT name_ct, wrapped_key FROM subjects WHERE id=?", (gone,))
             for b in row]
    blobs += [bytes(r[0]) for r in conn.execute("SELECT ct FROM templates WHERE subject_id=?", (gone,))]
    conn.close()
    stale = gallery_from_vault(Vault(vault.home, keyfile), MODEL, MatchPolicy(0.3)).gallery  # another "process"
    receipt = vault.revoke(gone)
    data = store_bytes(vault.home)
    assert blobs and not any(w in data for b in blobs for w in windows(b, 24))
    assert receipt.subject == gone and receipt.destroyed["templates"] == 3 and receipt.destroyed["data_key"]
    assert vault.audit.entries(1)[0]["hash"] == receipt.audit_hash
    assert stale.identify(vectors(4)[0], MODEL).decision == "unknown"  # stale gallery, revoked elsewhere
    assert stale.identify(vectors(3)[0], MODEL).subject == keep
    with pytest.raises(SubjectNotFound):
        vault.revoke(gone)


def test_a_blob_copied_to_another_row_or_flipped_fails_and_others_still_work(vault):
    a = vault.enroll("A", consent(), vectors(5, 1), MODEL)
    b = vault.enroll("B", consent(), vectors(6, 1), MODEL)
    c = vault.enroll("C", consent(), vectors(7, 1), MODEL)
    conn = sqlite3.connect(vault.path)
    ct_a = conn.execute("SELECT ct FROM templates WHERE subject_id=?", (a,)).fetchone()[0]
    conn.execute("UPDATE templates SET ct=? WHERE subject_id=?", (ct_a, b))  # copy A's blob into B's row
    ct_c = bytearray(conn.execute("SELECT ct FROM templates WHERE subject_id=?", (c,)).fetchone()[0])
    ct_c[20] ^= 0x01
    conn.execute("UPDATE templates SET ct=? WHERE subject_id=?", (bytes(ct_c), c))
    conn.commit()
    conn.close()
    before = (vault.home / DB_NAME).read_bytes()
    loaded = gallery_from_vault(vault, MODEL, MatchPolicy(0.3))
    assert len(loaded.damaged) == 2 and loaded.gallery.subjects == (a,)
    assert loaded.gallery.identify(vectors(5, 1)[0], MODEL).subject == a
    assert (vault.home / DB_NAME).read_bytes() == before, "loading must not rewrite anything"
    with pytest.raises(TemplateIntegrityError, match="failed authentication"):
        from consentry.vault import crypto

        crypto.unseal(b"\0" * 32, bytes(ct_c), "x", "template")


def test_key_problems_are_clear_and_never_show_the_key(tmp_path, keyfile):
    home = tmp_path / "home"
    Vault(home, keyfile, create=True).close()
    key = keyfile.path.read_bytes()
    other = KeyFile(tmp_path / "other.key")
    other.create()
    with pytest.raises(WrongKey, match="does not open") as wrong:
        Vault(home, other)
    missing = KeyFile(tmp_path / "nope.key")
    with pytest.raises(KeyUnavailable, match="keys init") as absent:
        Vault(home, missing)
    os.chmod(keyfile.path, 0o644)
    with pytest.raises(KeyUnavailable, match="chmod 600") as loose:
        Vault(home, keyfile)
    for err in (wrong, absent, loose):
        assert key.hex() not in str(err.value) and repr(key) not in str(err.value)
    os.chmod(keyfile.path, 0o600)
    Vault(home, keyfile).close()  # nothing was overwritten by the failed opens


def test_audit_log_finds_edits_removals_and_reorders(vault):
    for i in range(4):
        vault.enroll(f"P{i}", consent(), vectors(10 + i, 1), MODEL)
    assert vault.audit.verify().ok
    conn = vault._conn
    cases = {
        "edit": "UPDATE audit SET detail='{\"templates\":9}' WHERE seq=3",
        "remove": "DELETE FROM audit WHERE seq=2",
        "reorder": "UPDATE audit SET seq=-2 WHERE seq=2; UPDATE audit SET seq=2 WHERE seq=3; "
                   "UPDATE audit SET seq=3 WHERE seq=-2",
        "truncate": "DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)",
    }
    for label, sql in cases.items():
        conn.execute("SAVEPOINT t")
        for statement in sql.split(";"):
            conn.execute(statement)
        report = vault.audit.verify()
        conn.execute("ROLLBACK TO t")
        conn.execute("RELEASE t")
        assert not report.ok, label
    assert vault.audit.verify().ok
    text = str(vault.audit.entries())
    assert "P1" not in text and "vector" not in text


def test_retention_and_inactivity_expire_subjects(tmp_path, keyfile):
    clock = Clock()
    with Vault(tmp_path / "home", keyfile, inactivity_days=100, clock=clock, create=True) as v:
        short = v.enroll("Short", consent(days=30, given_at=clock.now.isoformat()), vectors(20, 1), MODEL)
        idle = v.enroll("Idle", consent(days=1000, given_at=clock.now.isoformat()), vectors(21, 1), MODEL)
        seen = v.enroll("Seen", consent(days=1000, given_at=clock.now.isoformat()), vectors(22, 1), MODEL)
        clock.now += dt.timedelta(days=31)
        assert v.purge(dry_run=True) == [short]
        assert [r.subject for r in v.purge()] == [short]
        clock.now += dt.timedelta(days=50)
        v.touch(seen)
        clock.now += dt.timedelta(days=60)
        assert [r.subject for r in v.purge()] == [idle]
        assert [s.id for s in v.subjects()] == [seen]
        assert v.audit.entries(1)[0]["kind"] == "expire"


def test_key_rotation_and_transform_renewal_keep_matching(tmp_path, keyfile):
    home = tmp_path / "home"
    with Vault(home, keyfile, create=True) as v:
        sid = v.enroll(NAME, consent(), vectors(30), MODEL)
        old_key, old_transform = keyfile.path.read_bytes(), v.transform.copy()
        assert rotate_keys(v, renew_transform=True) == 1
        assert not np.allclose(v.transform, old_transform)
        assert gallery_from_vault(v, MODEL, MatchPolicy(0.3)).gallery.identify(vectors(30)[0], MODEL).subject == sid
        assert v.audit.verify().ok
    assert keyfile.path.read_bytes() != old_key and not keyfile.pending.exists()
    stale = tmp_path / "old.key"
    KeyFile.write(old_key, stale)
    with pytest.raises(WrongKey):
        Vault(home, KeyFile(stale))


def test_an_interrupted_rotation_is_finished_on_the_next_open(tmp_path, keyfile):
    from consentry.vault import crypto

    home = tmp_path / "home"
    with Vault(home, keyfile, create=True) as v:
        v.enroll(NAME, consent(), vectors(31), MODEL)
        new = crypto.new_key()
        keyfile.stage(new)
        v.rotate(new)  # the power fails before keyfile.commit()
    with Vault(home, keyfile, create=True) as v:
        assert len(v.subjects()) == 1
    assert keyfile.path.read_bytes() == new


def test_passphrase_provider(tmp_path):
    home = tmp_path / "home"
    with Vault(home, Passphrase("correct horse battery staple"), create=True) as v:
        v.enroll(NAME, consent(), vectors(40), MODEL)
    with pytest.raises(WrongKey):
        Vault(home, Passphrase("incorrect horse battery staple"))
    with pytest.raises(KeyUnavailable, match="CONSENTRY_PASSPHRASE"):
        Vault(home, Passphrase())


def test_model_change_lists_subjects_to_re_enrol(vault):
    old = vault.enroll("Old", consent(), vectors(50, 1), "dlib_resnet_v1_int8")
    new = vault.enroll("New", consent(), vectors(51, 1), MODEL)
    assert vault.needs_reenrolment(MODEL) == [old]
    loaded = gallery_from_vault(vault, MODEL, MatchPolicy(0.3))
    assert loaded.gallery.subjects == (new,) and loaded.other_models == [old]


def test_systemd_credential_provider(tmp_path, monkeypatch):
    from consentry.vault import SystemdCredential

    creds = tmp_path / "creds"
    KeyFile.write(os.urandom(32), creds / "consentry-master-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    (creds / "consentry-master-key").chmod(0o440)  # as systemd 257 hands credentials over
    with Vault(tmp_path / "home", SystemdCredential("consentry-master-key"), create=True) as v:
        v.enroll(NAME, consent(), vectors(60), MODEL)
    (creds / "consentry-master-key").chmod(0o444)  # others may read it: refused even there
    with pytest.raises(KeyUnavailable, match="readable or writable by others"):
        Vault(tmp_path / "home", SystemdCredential("consentry-master-key"))
    elsewhere = tmp_path / "master.key"
    KeyFile.write(os.urandom(32), elsewhere)
    elsewhere.chmod(0o440)  # outside the credentials directory the group bit is refused
    with pytest.raises(KeyUnavailable, match="readable or writable by others"):
        KeyFile(elsewhere).master_key(b"")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(KeyUnavailable, match="LoadCredentialEncrypted"):
        Vault(tmp_path / "home", SystemdCredential("consentry-master-key"))


def test_declining_consent_at_the_prompt_stores_nothing(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from consentry.cli import main

    consent_file = Path(__file__).parents[1] / "deploy" / "consent" / "door.txt"
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    home = tmp_path / "home"
    assert main(["--home", str(home), "keys", "init"]) == 0
    assert main(["--home", str(home), "enroll", "--name", NAME, "--consent", str(consent_file), "x.jpg"]) == 1
    out = capsys.readouterr().out
    assert "Face recognition for opening this door" in out and "nothing was captured" in out
    assert not (home / DB_NAME).exists() or "enrol" not in str(Vault(home, KeyFile(home / "master.key"))
                                                               .audit.entries())


def test_a_schema_1_store_is_migrated_and_keeps_its_subjects(tmp_path, keyfile):
    home = tmp_path / "home"
    with Vault(home, keyfile, create=True) as v:
        sid = v.enroll(NAME, consent(), vectors(70), MODEL)
    conn = sqlite3.connect(home / DB_NAME)  # turn it back into what schema 1 looked like
    conn.executescript("DROP INDEX subjects_card; ALTER TABLE subjects DROP COLUMN card_ct; "
                       "ALTER TABLE subjects DROP COLUMN card_tag; "
                       "DROP INDEX subjects_revocation; ALTER TABLE subjects DROP COLUMN revocation_tag; "
                       "DROP TABLE credentials; DROP TABLE commands; DROP TABLE fleet; DROP TABLE fleet_doors; "
                       "DROP TABLE door_templates; "
                       "ALTER TABLE subjects DROP COLUMN row_mac; ALTER TABLE subjects DROP COLUMN consent_language; "
                       "ALTER TABLE subjects DROP COLUMN greeting; "
                       "DELETE FROM meta WHERE key = 'meta_mac'; "
                       "UPDATE meta SET value = 1 WHERE key = 'schema_version';")
    conn.close()
    with Vault(home, keyfile, create=True) as v:
        assert v._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == SCHEMA_VERSION
        assert [s.id for s in v.subjects()] == [sid]
        assert gallery_from_vault(v, MODEL, MatchPolicy(0.3)).gallery.identify(vectors(70)[0], MODEL).subject == sid
        code = v.issue_revocation_code(sid)
        assert v.revoke_by_code(code).subject == sid
