"""The store's files on disk: they exist before they are opened, and only their owner reads them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import VaultError, VaultMissing


def prepare_files(home: Path, db: Path, create: bool) -> None:
    """The store must exist unless ``create``; the home is 0700 and the store's files 0600
    whatever the umask (the credentials table holds the PIN's hash)."""
    wal = db.with_name(db.name + "-wal")
    present = db.is_file() and (db.stat().st_size > 0 or (wal.is_file() and wal.stat().st_size > 0))
    if not present and not create:
        what = "is empty" if db.is_file() else "does not exist"
        raise VaultMissing(f"template store {db} {what}; create one with `consentry keys init` "
                           "(or point --home / $CONSENTRY_HOME at the right folder)")
    if db.exists() and not db.is_file():
        raise VaultError(f"template store {db} is not a regular file")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (home, db, wal, db.with_name(db.name + "-shm")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and st.st_uid == os.geteuid():
            os.chmod(path, 0o700 if path == home else 0o600)
