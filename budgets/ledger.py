"""The usage ledger: one row per request, the record of what each project spent."""

from __future__ import annotations

import logging
import time

import sqlite_utils
from msgspec import Struct, structs

from core.errors import StorageUnavailable

log = logging.getLogger("claude_proxy.ledger")

DEFAULT_ACCOUNT = "default"  # the server's own login; also rows from before accounts were recorded

PROBE_INTERVAL_S = 1.0


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
    account: str = DEFAULT_ACCOUNT  # the Claude account that served the request


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
    """Append-only rows in the `usage` table, with the sums budgets and `/v1/usage` need.

    It also owns whether it can be written: a failed write marks it unwritable (say, a full
    disk), and from then on `ensure_writable` refuses work until a probe write works again,
    probing at most once a second.
    """

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._failure: str | None = None
        self._probed_at = 0.0
        if "usage" not in db.table_names():
            columns = {field.name: field.type for field in structs.fields(LedgerEntry)}
            db.table("usage").create({"id": int, **columns}, pk="id")
            db.table("usage").create_index(["project", "created_at"])
        if "idx_usage_account_created_at" not in {index.name for index in db.table("usage").indexes}:
            db.table("usage").create_index(["account", "created_at"], index_name="idx_usage_account_created_at")
        if "storage_probe" not in db.table_names():
            db.table("storage_probe").create({"id": int, "at": float}, pk="id")

    @property
    def failure(self) -> str | None:
        """Why the last write failed, while the ledger cannot be written; None when it can."""
        return self._failure

    def record(self, entry: LedgerEntry) -> None:
        """Writes one row; raises `StorageUnavailable` (and marks the ledger) when it cannot."""
        if not entry.created_at:
            entry.created_at = time.time()
        try:
            # One prepared statement and one commit: this runs for every request.
            with self.db.conn:
                self.db.conn.execute(_INSERT, structs.astuple(entry))
        except Exception as exc:
            self._failed(exc)
            raise StorageUnavailable(f"the usage ledger cannot be written ({self._failure})") from exc
        self._failure = None

    def ensure_writable(self) -> None:
        """Raises `StorageUnavailable` (503) while the ledger cannot be written."""
        if self._failure is None:
            return
        if time.monotonic() - self._probed_at >= PROBE_INTERVAL_S:
            self._probed_at = time.monotonic()
            try:
                self.probe()
            except Exception as exc:  # noqa: BLE001 - any failure to write counts
                self._failed(exc)
            else:
                log.warning("the usage ledger can be written again")
                self._failure = None
                return
        raise StorageUnavailable(
            f"the usage ledger cannot be written ({self._failure}); requests are refused until it can"
        )

    def _failed(self, exc: BaseException) -> None:
        self._failure = f"{type(exc).__name__}: {exc}"
        self._probed_at = time.monotonic()

    def probe(self) -> None:
        """A small real write: raises when the database cannot be written (disk full, read-only)."""
        with self.db.conn:
            self.db.execute("insert or replace into storage_probe (id, at) values (1, ?)", [time.time()])

    def spent(self, project: str, since: float = 0.0) -> float:
        row = self.db.execute(
            "select coalesce(sum(cost_usd), 0) from usage where project = ? and created_at >= ?", [project, since]
        ).fetchone()
        return float(row[0])

    def costs_on_account(self, account: str, since: float) -> dict[str, float]:
        """What each project spent on `account` since `since` (unix seconds), by project."""
        rows = self.db.execute(
            "select project, coalesce(sum(cost_usd), 0) from usage where account = ? and created_at >= ? "
            "group by project",
            [account, since],
        ).fetchall()
        return {project: float(cost) for project, cost in rows}

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
