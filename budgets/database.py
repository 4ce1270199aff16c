"""The one SQLite database under `storage.path`: projects, keys and the usage ledger."""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

DATABASE_NAME = "claude-proxy.db"


def database_path(storage_path: str | Path) -> Path:
    return Path(storage_path) / DATABASE_NAME


def open_database(storage_path: str | Path) -> sqlite_utils.Database:
    """Opens (creating if needed) the database; WAL lets the `keys` command write beside a server."""
    path = database_path(storage_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(path)
    db.enable_wal()
    db.execute("PRAGMA busy_timeout = 5000")
    # With WAL, NORMAL keeps every commit through a crash of the process (power loss may drop the
    # last ones) and saves an fsync per commit.
    db.execute("PRAGMA synchronous = NORMAL")
    return db
