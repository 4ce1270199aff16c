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
    migrate(db)
    return db


# Columns added after their table was first shipped: (table, column, SQL type and default). A
# database made before gets them here; new tables are created with them by their owners.
_ADDED_COLUMNS = [
    ("usage", "account", "TEXT NOT NULL DEFAULT 'default'"),
    ("projects", "plan_share", "FLOAT"),
]


def migrate(db: sqlite_utils.Database) -> None:
    """Brings the tables of an older database up to date; a no-op on a current or empty one."""
    tables = set(db.table_names())
    for table, column, definition in _ADDED_COLUMNS:
        if table in tables and column not in db.table(table).columns_dict:
            # Rows from before the column existed read as its default: one account, no cap.
            db.execute(f"ALTER TABLE [{table}] ADD COLUMN [{column}] {definition}")
