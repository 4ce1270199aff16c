"""budgets.plan_share: each project's share of the plan's windows from the ledger's account
column, the `plan_share` cap, the migration of older databases, and both seen through the app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from budgets.database import open_database
from budgets.keys import KeyStore, Project
from budgets.ledger import LedgerEntry, UsageLedger
from budgets.plan_share import PlanShares, PlanWindow, window_seconds
from core.errors import RateLimited
from core.types import Completed, Started, TextDelta, TokenUsage
from tests.support.fake_backend import FakeBackend
from tests.unit.test_app_routes import (
    assert_error,
    make_proxy,  # noqa: F401 - the fixture
)

ADMIN_KEY = "admin-secret-for-plan-share"

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

NOW = 1_800_000_000
FIVE_HOURS = 5 * 3600


@pytest.fixture
def ledger(tmp_path: Path) -> UsageLedger:
    return UsageLedger(open_database(tmp_path))


def spend(ledger: UsageLedger, project: str, cost: float, *, at: float, account: str = "default") -> None:
    ledger.record(
        LedgerEntry(
            request_id=f"req-{project}-{at}-{cost}",
            project=project,
            key_prefix="sk-cp-x",
            requested_model="gpt-4o",
            resolved_model="sonnet",
            cost_usd=cost,
            created_at=at,
            account=account,
        )
    )


def test_window_lengths() -> None:
    assert window_seconds("five_hour") == FIVE_HOURS
    assert window_seconds("seven_day") == window_seconds("seven_day_opus") == 7 * 86400
    assert window_seconds("something_new") is None


def test_a_share_counts_the_projects_cost_on_that_account_since_the_window_started(ledger: UsageLedger) -> None:
    resets = NOW + 3600  # the window started four hours ago
    start = resets - FIVE_HOURS
    spend(ledger, "team", 5.0, at=start - 1)  # before the window: not counted
    spend(ledger, "team", 3.0, at=start + 10)
    spend(ledger, "other", 1.0, at=start + 20)
    spend(ledger, "team", 7.0, at=start + 30, account="bob")  # another account
    windows = [PlanWindow(account="default", window="five_hour", utilization=0.5, resets_at=resets)]
    [share] = PlanShares(ledger, lambda: windows, clock=lambda: NOW).of("team")
    assert (share.account, share.window, share.window_start, share.resets_at) == ("default", "five_hour", start, resets)
    assert (share.project_cost_usd, share.account_cost_usd) == (3.0, 4.0)
    assert share.share == pytest.approx(0.75)
    assert share.used == pytest.approx(0.375)  # three quarters of the half used


def test_windows_already_reset_or_unknown_are_left_out(ledger: UsageLedger) -> None:
    windows = [
        PlanWindow(account="default", window="five_hour", utilization=0.5, resets_at=NOW - 1),
        PlanWindow(account="default", window="mystery", utilization=0.5, resets_at=NOW + 10),
        PlanWindow(account="default", window="seven_day", utilization=None, resets_at=None),
    ]
    assert PlanShares(ledger, lambda: windows, clock=lambda: NOW).of("team") == []


def test_nothing_spent_is_a_zero_share(ledger: UsageLedger) -> None:
    windows = [PlanWindow(account="default", window="seven_day", utilization=0.1, resets_at=NOW + 60)]
    [share] = PlanShares(ledger, lambda: windows, clock=lambda: NOW).of("team")
    assert (share.share, share.used) == (0.0, 0.0)


def test_the_cap_refuses_a_project_above_it_until_the_window_resets(ledger: UsageLedger) -> None:
    resets = NOW + 120
    spend(ledger, "team", 9.0, at=NOW - 60)
    spend(ledger, "other", 1.0, at=NOW - 50)
    windows = [PlanWindow(account="default", window="five_hour", utilization=0.5, resets_at=resets)]
    shares = PlanShares(ledger, lambda: windows, clock=lambda: NOW)
    shares.check(Project(name="team"))  # no cap
    shares.check(Project(name="team", plan_share=0.5))  # 0.9 of the spend times 0.5 used: 0.45 of the window
    shares.check(Project(name="other", plan_share=0.1))
    with pytest.raises(RateLimited) as refused:
        shares.check(Project(name="team", plan_share=0.4))
    assert refused.value.code == "rate_limit_exceeded" and refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "120"}
    assert "45%" in refused.value.message and "5-hour" in refused.value.message and "40%" in refused.value.message


def test_an_older_database_gains_the_account_and_plan_share_columns(tmp_path: Path) -> None:
    old = sqlite_utils.Database(tmp_path / "claude-proxy.db")
    old.table("usage").create({"id": int, "project": str, "cost_usd": float, "created_at": float}, pk="id")
    old.table("usage").insert({"project": "team", "cost_usd": 2.0, "created_at": float(NOW)})
    old.table("projects").create(
        {"name": str, "budget_usd": float, "budget_period": str, "rpm": int, "tpm": int, "created_at": float},
        pk="name",
    )
    old.table("projects").insert({"name": "team", "budget_period": "total", "created_at": 1.0})
    old.close()

    db = open_database(tmp_path)
    assert db.execute("select account from usage").fetchall() == [("default",)]
    keys = KeyStore(db)
    assert keys.get_project("team") == Project(name="team", created_at=1.0)
    keys.upsert_project(Project(name="team", plan_share=0.25, created_at=1.0))
    assert (keys.get_project("team") or Project(name="?")).plan_share == 0.25
    assert UsageLedger(db).costs_on_account("default", 0.0) == {"team": 2.0}
    open_database(tmp_path).close()  # a second migration changes nothing


def _windows(utilization: float, resets_in: float = 3600) -> list[dict[str, Any]]:
    reset = int(time.time() + resets_in)
    return [
        {
            "name": "alice",
            "status": "ok",
            "windows": {"five_hour": {"utilization": utilization, "resets_at": reset, "status": "allowed"}},
        }
    ]


def _alice_answer() -> list[Any]:
    usage = TokenUsage(input_tokens=10, output_tokens=5)
    return [
        Started(usage),
        TextDelta("hi"),
        Completed(finish_reason="stop", usage=usage, cost_usd=0.5, account="alice"),
    ]


def test_usage_and_the_admin_api_show_the_share_and_the_cap_refuses(make_proxy) -> None:  # noqa: F811
    proxy = make_proxy(FakeBackend(lambda job: _alice_answer()), **{"auth.admin_key": ADMIN_KEY})
    proxy.backend.plan_accounts = _windows(0.6)
    assert proxy.chat().status_code == 200

    # The ledger row says alice served it: alice's window holds all of the project's cost.
    usage = proxy.get("/v1/usage").json()
    assert usage["plan_share"] is None
    [window] = usage["plan_windows"]
    assert (window["account"], window["window"], window["share"], window["used"]) == ("alice", "five_hour", 1.0, 0.6)
    assert (window["project_cost_usd"], window["account_cost_usd"]) == (0.5, 0.5)
    assert window["window_start"] == window["resets_at"] - FIVE_HOURS
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert proxy.client.get("/admin/usage/acme", headers=admin).json()["plan_windows"] == [window]

    bad = proxy.client.patch("/admin/projects/acme", json={"plan_share": 1.5}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "plan_share"
    capped = proxy.client.patch("/admin/projects/acme", json={"plan_share": 0.5}, headers=admin)
    assert capped.status_code == 200 and capped.json()["plan_share"] == 0.5
    refused = proxy.chat()
    assert_error(refused, 429, code="rate_limit_exceeded")
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    assert len(proxy.backend.jobs) == 1  # the refused request never ran

    proxy.backend.plan_accounts = _windows(0.6, resets_in=-1)  # the window reset
    assert proxy.chat().status_code == 200
