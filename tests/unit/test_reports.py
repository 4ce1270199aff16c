"""The dashboard's ledger aggregates (budgets/reports.py) against a small known ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from budgets.database import open_database
from budgets.ledger import LedgerEntry, UsageLedger
from budgets.reports import DAY, HOUR, LedgerReports

# 2026-03-15 12:30 UTC: the month began 14.5 days earlier, the day 12.5 hours earlier.
NOW = datetime(2026, 3, 15, 12, 30, tzinfo=UTC).timestamp()


def _ledger(tmp_path):
    db = open_database(tmp_path)
    ledger = UsageLedger(db)

    def add(project: str, ago: float, *, cost: float = 0.0, status: int = 200, latency: int = 100, tokens=(0, 0)):
        ledger.record(
            LedgerEntry(
                request_id=f"r{ago}{project}",
                project=project,
                key_prefix="sk-cp-x",
                requested_model="gpt-4o",
                resolved_model="sonnet",
                prompt_tokens=tokens[0],
                completion_tokens=tokens[1],
                cost_usd=cost,
                status=status,
                latency_ms=latency,
                created_at=NOW - ago,
            )
        )

    return db, add


def test_the_overview_counts_the_last_minute_hour_day_and_month(tmp_path):
    db, add = _ledger(tmp_path)
    add("a", 10, cost=1.0, latency=100)
    add("a", 30, cost=2.0, latency=200, status=500)
    add("b", 600, cost=4.0, latency=300)
    add("b", 2 * HOUR, cost=8.0)  # today, not in the last hour
    add("b", 13 * HOUR, cost=16.0)  # yesterday, this month
    add("b", 20 * DAY, cost=32.0)  # last month
    overview = LedgerReports(db).overview(NOW)
    assert overview.requests_per_minute == 2
    assert overview.requests_last_hour == 3
    assert overview.errors_last_hour == 1
    assert overview.requests_today == 4
    assert overview.spend_today_usd == 15.0
    assert overview.spend_month_usd == 31.0
    assert (overview.latency_p50_ms, overview.latency_p99_ms) == (200, 300)


def test_an_empty_ledger_has_no_latency(tmp_path):
    db, _ = _ledger(tmp_path)
    overview = LedgerReports(db).overview(NOW)
    assert (overview.requests_last_hour, overview.latency_p50_ms, overview.latency_p99_ms) == (0, None, None)


def test_series_put_each_request_in_its_hour_and_day_per_project(tmp_path):
    db, add = _ledger(tmp_path)
    add("a", 60, cost=1.0)  # this hour, today
    add("a", 90, cost=1.0)
    add("b", 3 * HOUR, cost=2.0)  # 3 hours back
    add("b", 2 * DAY, cost=4.0)  # two days back: not in the 24 hours
    add("b", 31 * DAY, cost=8.0)  # before the 30 days
    reports = LedgerReports(db)
    day = reports.last_day(NOW)
    assert (day.buckets, day.step) == (24, HOUR)
    assert day.requests["a"][23] == 2 and sum(day.requests["a"]) == 2
    assert day.requests["b"][20] == 1 and day.spend_usd["b"][20] == 2.0
    month = reports.last_month(NOW)
    assert month.start == datetime(2026, 2, 14, tzinfo=UTC).timestamp()
    assert month.requests["a"][29] == 2
    assert month.requests["b"][29] == 1 and month.requests["b"][27] == 1
    assert sum(month.spend_usd["b"]) == 6.0


def test_activity_and_recent_requests(tmp_path):
    db, add = _ledger(tmp_path)
    add("a", 60, cost=1.0, tokens=(10, 5))
    add("a", 30, cost=2.0, tokens=(20, 5))
    add("b", 40 * DAY, cost=4.0, tokens=(1, 1))
    reports = LedgerReports(db)
    activity = reports.activity(NOW - 30 * DAY)
    assert list(activity) == ["a"]
    assert (activity["a"].requests, activity["a"].tokens, activity["a"].spend_usd) == (2, 40, 3.0)
    recent = reports.recent(2)
    assert [r.created_at for r in recent] == [NOW - 30, NOW - 60]
    assert recent[0].model == "gpt-4o" and recent[0].resolved_model == "sonnet"


def test_the_covering_index_serves_the_range_queries(tmp_path):
    db, _ = _ledger(tmp_path)
    LedgerReports(db)
    plan = db.execute(
        "explain query plan select project, sum(cost_usd) from usage indexed by usage_by_time "
        "where created_at >= 0 group by project"
    ).fetchall()
    assert any("COVERING INDEX usage_by_time" in row[-1] for row in plan)
