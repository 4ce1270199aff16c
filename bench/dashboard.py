"""How fast the dashboard's data loads over a large ledger: `python -m bench.dashboard [rows]`.

Fills a fresh database with `rows` ledger rows (100,000 by default) spread over 40 days and 12
projects, then times, in process: each `LedgerReports` query, and `/ui/api/overview`,
`/ui/api/live` and the `/ui` page through the real app with a logged-in session. Prints JSON
figures (milliseconds: median and p90 of repeated runs) and the query plans, which show the
covering index at work. Nothing is asserted: docs/dashboard.md records the figures.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

from litestar.testing import TestClient

from bench.measure import percentiles
from budgets.database import open_database
from budgets.keys import KeyStore, Project
from budgets.ledger import _COLUMNS, _INSERT, LedgerEntry, UsageLedger
from budgets.periods import period_start
from budgets.reports import LedgerReports
from proxy.app import create_app
from proxy.settings import load_settings
from tests.support.fake_backend import FakeBackend

ADMIN_KEY = "bench-admin-key"
RUNS = 30


def _fill(storage: str, rows: int) -> None:
    db = open_database(storage)
    keys = KeyStore(db)
    projects = [f"project-{i:02d}" for i in range(12)]
    for name in projects:
        keys.upsert_project(Project(name=name, budget_usd=100.0, budget_period="monthly"))
    UsageLedger(db)
    rng = random.Random(7)
    now = time.time()
    batch: list[tuple[Any, ...]] = []
    for i in range(rows):
        prompt, completion = rng.randint(10, 4000), rng.randint(1, 1500)
        entry = LedgerEntry(
            request_id=f"req_{i}",
            project=rng.choice(projects),
            key_prefix="sk-cp-bench0",
            requested_model=rng.choice(["gpt-4o-mini", "gpt-4o", "o3"]),
            resolved_model="haiku",
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=(prompt + 5 * completion) * 1e-6,
            latency_ms=rng.randint(200, 9000),
            status=200 if rng.random() > 0.02 else 429,
            created_at=now - rng.random() * 40 * 86_400,
        )
        batch.append(tuple(getattr(entry, column) for column in _COLUMNS))
    with db.conn:
        db.conn.executemany(_INSERT, sorted(batch, key=lambda row: row[-1]))
    db.close()


def _time(call: Callable[[], Any]) -> dict[str, float]:
    call()  # the first run warms SQLite's page cache, as any earlier poll would
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    figures = percentiles(samples)
    return {"median_ms": round(figures["p50"], 2), "p90_ms": round(figures["p90"], 2)}


def main(rows: int = 100_000) -> dict[str, Any]:
    storage = tempfile.mkdtemp(prefix="bench-dashboard-")
    started = time.perf_counter()
    _fill(storage, rows)
    filled_s = time.perf_counter() - started
    db = open_database(storage)
    reports = LedgerReports(db)
    now = time.time()
    month_start = period_start("monthly", now)
    queries = {
        "overview": lambda: reports.overview(now),
        # The same a second before this month began: the month's scan then covers a whole month.
        "overview_month_end": lambda: reports.overview(month_start - 1),
        "last_day": lambda: reports.last_day(now),
        "last_month": lambda: reports.last_month(now),
        "activity_30d": lambda: reports.activity(now - 30 * 86_400),
        "recent_50": lambda: reports.recent(50),
    }
    result: dict[str, Any] = {"rows": rows, "fill_s": round(filled_s, 2), "queries": {}, "http": {}, "plans": {}}
    for name, query in queries.items():
        result["queries"][name] = _time(query)
    for name, sql in {
        "series": "select project, count(*) from usage indexed by usage_by_time where created_at >= 0 group by project",
        "recent": "select * from usage indexed by usage_by_time order by created_at desc limit 50",
    }.items():
        result["plans"][name] = [row[-1] for row in db.execute("explain query plan " + sql).fetchall()]
    db.close()

    settings = load_settings(None, environ={}, overrides={"storage.path": storage, "auth.admin_key": ADMIN_KEY})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(settings, backend=FakeBackend())
    with TestClient(app=app) as client:
        client.post("/ui/login", data={"key": ADMIN_KEY})
        for path in ("/ui/api/overview", "/ui/api/live", "/ui"):
            result["http"][path] = _time(lambda path=path: client.get(path).raise_for_status())
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))  # noqa: T201
