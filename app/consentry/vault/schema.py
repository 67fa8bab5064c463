"""The SQLite schema, its migrations, and the connection settings every open applies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import VaultError, VaultMissing

SCHEMA_VERSION = 7
TABLES = frozenset({"meta", "subjects", "templates", "audit", "credentials", "commands", "fleet", "fleet_doors",
                    "door_templates"})

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE subjects (
        id TEXT PRIMARY KEY,
        name_ct BLOB NOT NULL,
        wrapped_key BLOB NOT NULL,
        purposes TEXT NOT NULL,
        identify_opt_in INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL,
        last_seen TEXT,
        consent_id TEXT NOT NULL,
        consent_version TEXT NOT NULL,
        consent_sha256 TEXT NOT NULL,
        consent_given_at TEXT NOT NULL,
        consent_method TEXT NOT NULL,
        witnessed_by TEXT NOT NULL,
        retention_days INTEGER NOT NULL,
        age_statement TEXT NOT NULL
    );
    CREATE TABLE templates (
        id TEXT PRIMARY KEY,
        subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        ct BLOB NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX templates_subject ON templates(subject_id);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT,
        detail TEXT NOT NULL,
        prev TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    """,
    # 2: a keyed hash of each subject's revocation code (the code itself is never stored),
    # and a table for the staff password / enrolment PIN hashes (Argon2id).
    2: """
    ALTER TABLE subjects ADD COLUMN revocation_tag TEXT;
    CREATE UNIQUE INDEX subjects_revocation ON subjects(revocation_tag);
    CREATE TABLE credentials (kind TEXT PRIMARY KEY, hash TEXT NOT NULL, updated TEXT NOT NULL);
    """,
    # 3: the request ids of remote commands seen within their freshness window (replays are
    # refused across restarts); from this version on the key metadata and every subject row
    # carry a MAC (vault/rows.py).
    3: """
    CREATE TABLE commands (request_id TEXT PRIMARY KEY, seen REAL NOT NULL);
    ALTER TABLE subjects ADD COLUMN row_mac BLOB;
    ALTER TABLE credentials ADD COLUMN mac BLOB;
    """,
    # 4: a site's replicated records (fleet/): on the enrolment kiosk, the signed record it last
    # published per subject (a revocation leaves a tombstone with no payload); on a door, the
    # version it last applied per subject. And the doors a kiosk was asked to admit.
    4: """
    CREATE TABLE fleet (subject TEXT PRIMARY KEY, seq INTEGER NOT NULL, kind TEXT NOT NULL,
                        digest TEXT NOT NULL, record BLOB);
    CREATE TABLE fleet_doors (door TEXT PRIMARY KEY, public_key BLOB NOT NULL, label TEXT NOT NULL,
                              status TEXT NOT NULL, updated TEXT NOT NULL);
    """,
    # 5: door templates (vault/door_templates.py): what a door learned of a subject after live,
    # granted visits, apart from the consent-time templates and outside a site's records.
    5: """
    CREATE TABLE door_templates (
        id TEXT PRIMARY KEY,
        subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        ct BLOB NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX door_templates_subject ON door_templates(subject_id);
    """,
    # 6: a subject's access-control panel credential (vault/cards.py): the card sealed with the
    # subject's data key, and a keyed hash of it, unique, so one card names one subject.
    6: """
    ALTER TABLE subjects ADD COLUMN card_ct BLOB;
    ALTER TABLE subjects ADD COLUMN card_tag TEXT;
    CREATE UNIQUE INDEX subjects_card ON subjects(card_tag);
    """,
    # 7: the language of the consent text the person read (NULL on older rows: English, the
    # only language then), and whether they asked to be greeted by their first name (NULL: no).
    # The row MAC covers both whenever they are set (vault/rows.py).
    7: """
    ALTER TABLE subjects ADD COLUMN consent_language TEXT;
    ALTER TABLE subjects ADD COLUMN greeting INTEGER;
    """,
}


def connect(path: Path) -> sqlite3.Connection:
    """WAL, secure_delete (deleted rows are overwritten), full fsync, foreign keys on. Text that
    is not UTF-8 (a flipped byte) decodes with replacement characters, so it fails the checks
    that cover it (MACs, consent validation) instead of raising mid-query."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.text_factory = lambda raw: raw.decode("utf-8", "replace")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except (sqlite3.DatabaseError, UnicodeError) as exc:
        raise VaultError(f"cannot open the template store {path}: {exc}") from exc
    return conn


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def version(conn: sqlite3.Connection, path: Path) -> int:
    """0 for an empty database; a store whose version row is missing or garbled is damaged."""
    present = tables(conn)
    if not present:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if "meta" in present else None
    value = row[0] if row else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, int | str) or not str(value).isdigit():
        raise VaultError(f"template store {path} has no valid schema version: it is damaged. Nothing was "
                         "changed; restore it from a backup")
    return int(row[0])


def migrate(conn: sqlite3.Connection, path: Path, create: bool) -> int:
    """Apply every migration above the store's version, each in its own transaction; returns
    the version the store had. An empty database is only initialised when ``create``."""
    current = version(conn, path)
    if current == 0 and not create:
        raise VaultMissing(f"{path} holds no template store; create one with `consentry keys init`")
    if current > SCHEMA_VERSION:
        raise VaultError(f"template store {path} has schema {current}; this Consentry reads up to {SCHEMA_VERSION}")
    for target in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, MIGRATIONS[target].split(";")):
                conn.execute(statement)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (target,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    missing = TABLES - tables(conn)
    if missing:
        raise VaultError(f"template store {path} lacks table(s) {sorted(missing)}: it is damaged. Nothing was "
                         "changed; restore it from a backup")
    return current
