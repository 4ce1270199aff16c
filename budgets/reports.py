"""What the dashboard shows of the ledger: totals, percentiles and time series, summed in SQL.

Every query here reads a time range of the `usage` table through `usage_by_time`, an index
that starts with `created_at` and carries every column these queries read, so SQLite answers
them from the index alone without touching the table (docs/dashboard.md has the figures).
"""

from __future__ import annotations

import time

import sqlite_utils
from msgspec import Struct

from budgets.periods import period_start

# Every column the dashboard's range queries read, in the index, so they never visit the table.
_INDEX = "usage_by_time"
_INDEX_COLUMNS = (
    "created_at",
    "project",
    "status",
    "latency_ms",
    "cost_usd",
    "prompt_tokens",
    "completion_tokens",
)

HOUR = 3600
DAY = 86_400


class Overview(Struct, kw_only=True):
    requests_per_minute: int
    requests_last_hour: int
    errors_last_hour: int
    latency_p50_ms: int | None
    latency_p99_ms: int | None
    spend_today_usd: float
    spend_month_usd: float
    requests_today: int


class Series(Struct, kw_only=True):
    """Requests and spend per project in equal buckets from `start` on (`step` seconds each)."""

    start: float
    step: int
    buckets: int
    requests: dict[str, list[int]]
    spend_usd: dict[str, list[float]]


class ProjectActivity(Struct, kw_only=True):
    project: str
    requests: int
    tokens: int
    spend_usd: float


class RecentRequest(Struct, kw_only=True):
    created_at: float
    project: str
    key_prefix: str
    model: str
    resolved_model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    status: int
    latency_ms: int


def ensure_report_indexes(db: sqlite_utils.Database) -> None:
    """Creates the covering index the reports read (idempotent, also on an existing ledger)."""
    columns = ", ".join(_INDEX_COLUMNS)
    db.execute(f"create index if not exists {_INDEX} on usage ({columns})")


class LedgerReports:
    """Read-only aggregates over the ledger for the operator's dashboard."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        ensure_report_indexes(db)

    def overview(self, now: float | None = None) -> Overview:
        now = now if now is not None else time.time()
        month = period_start("monthly", now)
        today = period_start("daily", now)
        row = self.db.execute(
            f"""select
                  coalesce(sum(created_at >= :minute), 0),
                  coalesce(sum(created_at >= :hour), 0),
                  coalesce(sum(created_at >= :hour and status != 200), 0),
                  coalesce(sum(case when created_at >= :today then cost_usd end), 0),
                  coalesce(sum(case when created_at >= :month then cost_usd end), 0),
                  coalesce(sum(created_at >= :today), 0)
               from usage indexed by {_INDEX} where created_at >= :since""",
            {"minute": now - 60, "hour": now - HOUR, "today": today, "month": month, "since": min(month, now - HOUR)},
        ).fetchone()
        per_minute, last_hour, errors, spend_today, spend_month, requests_today = row
        p50, p99 = self._latency_percentiles(now - HOUR, last_hour)
        return Overview(
            requests_per_minute=int(per_minute),
            requests_last_hour=int(last_hour),
            errors_last_hour=int(errors),
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            spend_today_usd=float(spend_today),
            spend_month_usd=float(spend_month),
            requests_today=int(requests_today),
        )

    def _latency_percentiles(self, since: float, count: int) -> tuple[int | None, int | None]:
        if count == 0:
            return None, None

        def rank(fraction: float) -> int:
            row = self.db.execute(
                f"""select latency_ms from usage indexed by {_INDEX} where created_at >= ?
                    order by latency_ms limit 1 offset ?""",
                [since, min(count - 1, int(fraction * count))],
            ).fetchone()
            return int(row[0]) if row else 0

        return rank(0.5), rank(0.99)

    def series(self, *, start: float, step: int, buckets: int) -> Series:
        """Requests and spend per project and bucket, for the buckets from `start` on."""
        rows = self.db.execute(
            f"""select project, cast((created_at - :start) / :step as integer) as bucket,
                       count(*), coalesce(sum(cost_usd), 0)
                from usage indexed by {_INDEX}
                where created_at >= :start and created_at < :end
                group by project, bucket""",
            {"start": start, "step": step, "end": start + step * buckets},
        ).fetchall()
        requests: dict[str, list[int]] = {}
        spend: dict[str, list[float]] = {}
        for project, bucket, count, cost in rows:
            requests.setdefault(project, [0] * buckets)[bucket] = int(count)
            spend.setdefault(project, [0.0] * buckets)[bucket] = float(cost)
        return Series(start=start, step=step, buckets=buckets, requests=requests, spend_usd=spend)

    def last_day(self, now: float | None = None) -> Series:
        """24 hourly buckets, the last one holding the current hour."""
        now = now if now is not None else time.time()
        return self.series(start=(now // HOUR - 23) * HOUR, step=HOUR, buckets=24)

    def last_month(self, now: float | None = None) -> Series:
        """30 daily buckets (UTC days), the last one holding today."""
        now = now if now is not None else time.time()
        return self.series(start=period_start("daily", now) - 29 * DAY, step=DAY, buckets=30)

    def activity(self, since: float) -> dict[str, ProjectActivity]:
        """Requests, tokens and spend of each project since `since`."""
        rows = self.db.execute(
            f"""select project, count(*), coalesce(sum(prompt_tokens + completion_tokens), 0),
                       coalesce(sum(cost_usd), 0)
                from usage indexed by {_INDEX} where created_at >= ? group by project""",
            [since],
        ).fetchall()
        return {
            project: ProjectActivity(project=project, requests=int(n), tokens=int(tokens), spend_usd=float(cost))
            for project, n, tokens, cost in rows
        }

    def recent(self, limit: int = 50) -> list[RecentRequest]:
        """The latest requests, newest first: figures only (the ledger holds no text)."""
        rows = self.db.execute(
            f"""select created_at, project, key_prefix, requested_model, resolved_model, prompt_tokens,
                      completion_tokens, cost_usd, status, latency_ms
               from usage indexed by {_INDEX} order by created_at desc limit ?""",
            [limit],
        ).fetchall()
        return [
            RecentRequest(
                created_at=float(r[0]),
                project=r[1],
                key_prefix=r[2],
                model=r[3],
                resolved_model=r[4],
                prompt_tokens=int(r[5]),
                completion_tokens=int(r[6]),
                cost_usd=float(r[7]),
                status=int(r[8]),
                latency_ms=int(r[9]),
            )
            for r in rows
        ]
