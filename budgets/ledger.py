"""The usage ledger: one row per request, the record of what each project spent."""

from __future__ import annotations

import time

import sqlite_utils
from msgspec import Struct, structs


class LedgerEntry(Struct, kw_only=True):
    request_id: str
    project: str
    key_prefix: str
    requested_model: str
    resolved_model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    prompt_tokens: int = 0  # as returned to the caller
    completion_tokens: int = 0  # as returned to the caller
    cost_usd: float = 0.0
    cost_source: str = "none"  # "cli" (total_cost_usd), "table" (config prices) or "none"
    latency_ms: int = 0
    status: int = 200
    created_at: float = 0.0


class ModelTotals(Struct):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_cost_usd: float


class UsageTotals(Struct, kw_only=True):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_cost_usd: float
    by_model: dict[str, ModelTotals]


_COLUMNS = [field.name for field in structs.fields(LedgerEntry)]
_INSERT = f"insert into usage ({', '.join(_COLUMNS)}) values ({', '.join('?' for _ in _COLUMNS)})"


class UsageLedger:
    """Append-only rows in the `usage` table, with the sums budgets and `/v1/usage` need."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        if "usage" not in db.table_names():
            columns = {field.name: field.type for field in structs.fields(LedgerEntry)}
            db.table("usage").create({"id": int, **columns}, pk="id")
            db.table("usage").create_index(["project", "created_at"])
        if "storage_probe" not in db.table_names():
            db.table("storage_probe").create({"id": int, "at": float}, pk="id")

    def record(self, entry: LedgerEntry) -> None:
        if not entry.created_at:
            entry.created_at = time.time()
        # One prepared statement and one commit: this runs for every request.
        with self.db.conn:
            self.db.conn.execute(_INSERT, structs.astuple(entry))

    def probe(self) -> None:
        """A small real write: raises when the database cannot be written (disk full, read-only)."""
        with self.db.conn:
            self.db.execute("insert or replace into storage_probe (id, at) values (1, ?)", [time.time()])

    def spent(self, project: str, since: float = 0.0) -> float:
        row = self.db.execute(
            "select coalesce(sum(cost_usd), 0) from usage where project = ? and created_at >= ?", [project, since]
        ).fetchone()
        return float(row[0])

    def totals(self, project: str, start: float = 0.0, end: float | None = None) -> UsageTotals:
        end = end if end is not None else time.time() + 1
        rows = self.db.execute(
            """select requested_model, count(*), coalesce(sum(prompt_tokens), 0),
                      coalesce(sum(completion_tokens), 0), coalesce(sum(cost_usd), 0)
               from usage where project = ? and created_at >= ? and created_at < ?
               group by requested_model order by requested_model""",
            [project, start, end],
        ).fetchall()
        by_model = {model: ModelTotals(n, p, c, float(cost)) for model, n, p, c, cost in rows}
        return UsageTotals(
            requests=sum(m.requests for m in by_model.values()),
            prompt_tokens=sum(m.prompt_tokens for m in by_model.values()),
            completion_tokens=sum(m.completion_tokens for m in by_model.values()),
            total_cost_usd=sum(m.total_cost_usd for m in by_model.values()),
            by_model=by_model,
        )
