"""A vault mutation campaign: every meta row, every table, the consent columns, templates,
the audit log, credentials, and seeded random byte damage. After each mutation the store
either answers exactly as before, or says clearly what is damaged, or refuses to open with a
clear error and leaves the file as it found it. Never a silent rewrite, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import stat

import numpy as np
import pytest
from consentry.cli import main
from consentry.errors import ConsentryError, VaultMissing
from consentry.match import MatchPolicy, gallery_from_vault
from consentry.vault import KeyFile, Vault
from consentry.vault.store import DB_NAME

from tests.test_vault import MODEL, NAME, consent, vectors

PROBES = {"a": 11, "b": 12, "stranger": 99}


def build(path) -> KeyFile:
    keyfile = KeyFile(path / "master.key")
    keyfile.create()
    with Vault(path, keyfile, create=True) as v:
        a = v.enroll(NAME, consent(), [vectors(11)[0], vectors(11)[0] * 0.99], MODEL)
        v.enroll("Bea Other", consent(), [vectors(12)[0]], MODEL)
        v.issue_revocation_code(a)
        v.set_credential("admin", "$argon2id$fake")
    return keyfile


def answers(path, keyfile) -> dict:
    """What a user would see: subjects, who each probe matches, damage reports, the audit."""
    with Vault(path, keyfile) as v:
        listed = sorted((s.id, s.purposes, s.expires, s.intact) for s in v.subjects())
        loaded = gallery_from_vault(v, MODEL, MatchPolicy(0.3), "door")
        matches = {k: loaded.gallery.identify(vectors(seed)[0], MODEL).subject for k, seed in PROBES.items()}
        report = v.verify_audit()
        return {"subjects": listed, "matches": matches, "damaged": sorted(loaded.damaged),
                "audit_ok": report.ok, "credential": v.credential("admin")}


def digest(path) -> str:
    return hashlib.sha256((path / DB_NAME).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine")
    keyfile = build(path)
    return path, keyfile, answers(path, keyfile)


def sql(statement: str, params: tuple = ()):
    def mutate(db):
        conn = sqlite3.connect(db)
        conn.execute(statement, params)
        conn.commit()
        conn.close()
    return mutate


def flip(offset: int, length: int, seed: int):
    def mutate(db):
        raw = bytearray(db.read_bytes())
        rng = random.Random(seed)
        start = offset % max(1, len(raw) - length)
        raw[start:start + length] = bytes(rng.getrandbits(8) for _ in range(length))
        db.write_bytes(bytes(raw))
    return mutate


META_KEYS = ("salt", "deployment", "key_check", "audit_key", "transform", "meta_mac", "audit_head", "schema_version")
TABLES = ("meta", "subjects", "templates", "audit", "credentials", "commands")
SUBJECT_EDITS = {"purposes": "door,checkout", "identify_opt_in": 1, "retention_days": 99999,
                 "consent_given_at": "2099-01-01T00:00:00+00:00", "last_seen": "2099-01-01T00:00:00+00:00",
                 "created": "2000-01-01T00:00:00+00:00", "consent_sha256": "0" * 64, "age_statement": "guardian",
                 "revocation_tag": "f" * 64, "row_mac": None, "witnessed_by": "nobody"}

MUTATIONS = {
    **{f"meta {k} deleted": sql("DELETE FROM meta WHERE key=?", (k,)) for k in META_KEYS},
    **{f"meta {k} replaced": sql("UPDATE meta SET value=randomblob(32) WHERE key=?", (k,)) for k in META_KEYS},
    **{f"schema_version={v!r}": sql("UPDATE meta SET value=? WHERE key='schema_version'", (v,))
       for v in (0, 1, 2, 99, "x")},
    **{f"table {t} dropped": sql(f"DROP TABLE {t}") for t in TABLES},
    **{f"table {t} emptied": sql(f"DELETE FROM {t}") for t in TABLES},
    **{f"subject {c} edited": sql(f"UPDATE subjects SET {c}=? WHERE rowid=1", (v,)) for c, v in SUBJECT_EDITS.items()},
    "template deleted": sql("DELETE FROM templates WHERE rowid=1"),
    "template moved to the other subject": sql(
        "UPDATE templates SET subject_id=(SELECT id FROM subjects WHERE rowid=2) WHERE rowid=1"),
    "template blobs swapped": sql("UPDATE templates SET ct=(SELECT ct FROM templates WHERE rowid=3) WHERE rowid=1"),
    "template model renamed": sql("UPDATE templates SET model='other' WHERE rowid=1"),
    "wrapped keys swapped": sql("UPDATE subjects SET wrapped_key=(SELECT wrapped_key FROM subjects WHERE rowid=2) "
                                "WHERE rowid=1"),
    "audit entry edited": sql("UPDATE audit SET detail='{}' WHERE seq=2"),
    "audit entry removed": sql("DELETE FROM audit WHERE seq=2"),
    "last audit entry removed": sql("DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)"),
    "credential replaced": sql("UPDATE credentials SET hash='$argon2id$attacker'"),
    "credential planted": sql("INSERT INTO credentials(kind, hash, updated) VALUES ('pin', '$argon2id$x', 'now')"),
    **{f"64 random bytes at {o}": flip(o, 64, o) for o in range(0, 60000, 1999)},
    **{f"one byte at {o}": flip(o, 1, o + 1) for o in range(7, 60000, 4001)},
    "file truncated to 0 bytes": lambda db: db.write_bytes(b""),
    "file truncated to half": lambda db: db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 2]),
    "file removed": lambda db: db.unlink(),
    "file replaced by a directory": lambda db: (db.unlink(), db.mkdir()),
}


def outcome(before: dict, after: dict) -> str:
    if after == before:
        return "same"
    flagged = (after["damaged"] or not after["audit_ok"] or any(not s[3] for s in after["subjects"])
               or after["credential"] is None)
    wrong_match = any(after["matches"][k] not in (None, before["matches"][k]) for k in PROBES)
    assert not wrong_match, f"a probe matched someone it did not match before: {after['matches']}"
    assert after["credential"] in (None, before["credential"]), "a planted credential was accepted"
    widened = {s[0]: s[1] for s in after["subjects"] if s[3]} != {s[0]: s[1] for s in before["subjects"]
                                                                  if s[0] in {x[0] for x in after["subjects"]
                                                                              if x[3]}}
    assert not widened, "a subject's purposes changed without the change being noticed"
    assert flagged, f"the answers changed silently: {before} -> {after}"
    return "flagged"


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_mutated_store_answers_as_before_flags_the_damage_or_refuses(tmp_path, pristine, name):
    source, keyfile, before = pristine
    path = tmp_path / "home"
    shutil.copytree(source, path)
    db = path / DB_NAME
    MUTATIONS[name](db)
    mutated = digest(path) if db.is_file() else None
    try:
        result = outcome(before, answers(path, keyfile))
    except ConsentryError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        result = "refused"
        if db.is_file():
            assert digest(path) == mutated, "a refused open changed the file"
        else:
            assert not db.exists() or db.is_dir(), "a missing store was re-created"
    assert result in ("same", "flagged", "refused")


def test_a_missing_or_empty_store_is_never_replaced_by_a_command(tmp_path, capsys):
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    for argv in (["subjects", "list"], ["audit", "verify"], ["purge"], ["revoke", "s-0123456789abcdef"]):
        assert main(["--home", str(home), *argv]) == 2
        assert "keys init" in capsys.readouterr().err
        assert not (home / DB_NAME).exists()
    (home / DB_NAME).write_bytes(b"")
    with pytest.raises(VaultMissing, match="is empty"):
        Vault(home, KeyFile(home / "master.key"))
    assert (home / DB_NAME).stat().st_size == 0


def test_keys_init_makes_a_private_home_and_store_whatever_the_umask(tmp_path):
    import os

    home = tmp_path / "fresh" / "home"
    old = os.umask(0)
    try:
        assert main(["--home", str(home), "keys", "init"]) == 0
        with Vault(home, KeyFile(home / "master.key")) as v:
            v.set_credential("pin", "$argon2id$fake")
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for f in home.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert main(["--home", str(home), "audit", "verify"]) == 0


def test_a_key_file_that_is_a_directory_is_a_clear_error(tmp_path, capsys):
    home = tmp_path / "home"
    build(home)
    (home / "master.key").unlink()
    (home / "master.key").mkdir(mode=0o700)
    assert main(["--home", str(home), "subjects", "list"]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_opening_a_sound_store_changes_nothing(tmp_path):
    path = tmp_path / "home"
    keyfile = build(path)
    before = digest(path)
    answers(path, keyfile)
    assert digest(path) == before
    assert np.isfinite(len(before))
