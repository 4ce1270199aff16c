"""budgets.ledger.UsageLedger: recording rows and summing spend and totals per project."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from budgets.database import open_database
from budgets.ledger import LedgerEntry, ModelTotals, UsageLedger

T0 = 1_750_000_000.0  # a fixed moment in June 2025


@pytest.fixture
def ledger(tmp_path: Path) -> UsageLedger:
    return UsageLedger(open_database(tmp_path))


_ids = iter(range(1, 10_000))


def entry(project: str = "alpha", *, cost: float = 0.0, at: float = T0, model: str = "gpt-4o", **fields) -> LedgerEntry:
    return LedgerEntry(
        request_id=f"req-{next(_ids)}",
        project=project,
        key_prefix="sk-cp-abcdef",
        requested_model=model,
        resolved_model=fields.pop("resolved_model", "sonnet"),
        cost_usd=cost,
        created_at=at,
        **fields,
    )


def test_empty_ledger_spends_nothing(ledger: UsageLedger) -> None:
    assert ledger.spent("alpha") == 0.0
    totals = ledger.totals("alpha", 0.0, T0 + 10)
    assert totals.requests == 0
    assert totals.total_cost_usd == 0.0
    assert totals.by_model == {}


def test_record_then_spent(ledger: UsageLedger) -> None:
    ledger.record(entry(cost=0.25))
    ledger.record(entry(cost=0.5, at=T0 + 1))
    assert ledger.spent("alpha") == pytest.approx(0.75)
    assert ledger.spent("alpha", since=0.0) == pytest.approx(0.75)


def test_spent_since_is_inclusive_and_filters_older_rows(ledger: UsageLedger) -> None:
    ledger.record(entry(cost=1.0, at=T0 - 100))
    ledger.record(entry(cost=2.0, at=T0))
    ledger.record(entry(cost=4.0, at=T0 + 100))
    assert ledger.spent("alpha", since=T0) == pytest.approx(6.0)
    assert ledger.spent("alpha", since=T0 + 0.001) == pytest.approx(4.0)
    assert ledger.spent("alpha", since=T0 + 101) == 0.0


def test_record_fills_in_created_at(ledger: UsageLedger) -> None:
    before = time.time()
    row = entry(cost=1.0, at=0.0)
    ledger.record(row)
    assert row.created_at >= before
    assert ledger.spent("alpha", since=before) == pytest.approx(1.0)


def test_projects_are_isolated(ledger: UsageLedger) -> None:
    ledger.record(entry("alpha", cost=1.0))
    ledger.record(entry("beta", cost=10.0, prompt_tokens=99, completion_tokens=9))
    ledger.record(entry("alphabet", cost=100.0))
    assert ledger.spent("alpha") == pytest.approx(1.0)
    assert ledger.spent("beta") == pytest.approx(10.0)
    assert ledger.spent("gamma") == 0.0
    totals = ledger.totals("alpha", 0.0, T0 + 10)
    assert totals.requests == 1
    assert totals.total_cost_usd == pytest.approx(1.0)
    assert totals.prompt_tokens == 0


def test_totals_break_down_by_requested_model(ledger: UsageLedger) -> None:
    ledger.record(entry(model="gpt-4o", resolved_model="sonnet", cost=0.1, prompt_tokens=10, completion_tokens=5))
    ledger.record(entry(model="gpt-4o", resolved_model="sonnet", cost=0.2, prompt_tokens=20, completion_tokens=7))
    ledger.record(entry(model="auto", resolved_model="haiku", cost=0.01, prompt_tokens=3, completion_tokens=1))
    ledger.record(entry(model="auto", resolved_model="opus", cost=1.0, prompt_tokens=100, completion_tokens=50))
    totals = ledger.totals("alpha", 0.0, T0 + 10)
    assert set(totals.by_model) == {"gpt-4o", "auto"}  # keyed by what the caller asked for
    gpt = totals.by_model["gpt-4o"]
    assert isinstance(gpt, ModelTotals)
    assert (gpt.requests, gpt.prompt_tokens, gpt.completion_tokens) == (2, 30, 12)
    assert gpt.total_cost_usd == pytest.approx(0.3)
    auto = totals.by_model["auto"]
    assert (auto.requests, auto.prompt_tokens, auto.completion_tokens) == (2, 103, 51)
    assert auto.total_cost_usd == pytest.approx(1.01)
    assert totals.requests == 4
    assert totals.prompt_tokens == 133
    assert totals.completion_tokens == 63
    assert totals.total_cost_usd == pytest.approx(1.31)


def test_totals_filter_by_half_open_time_range(ledger: UsageLedger) -> None:
    ledger.record(entry(cost=1.0, at=T0 - 1, prompt_tokens=1))
    ledger.record(entry(cost=2.0, at=T0, prompt_tokens=2))  # on start: included
    ledger.record(entry(cost=4.0, at=T0 + 50, prompt_tokens=4))
    ledger.record(entry(cost=8.0, at=T0 + 100, prompt_tokens=8))  # on end: excluded
    totals = ledger.totals("alpha", T0, T0 + 100)
    assert totals.requests == 2
    assert totals.prompt_tokens == 6
    assert totals.total_cost_usd == pytest.approx(6.0)
    assert ledger.totals("alpha", T0 + 101, T0 + 200).requests == 0


def test_totals_default_end_is_now(ledger: UsageLedger) -> None:
    now = time.time()
    ledger.record(entry(cost=1.0, at=now - 10))
    ledger.record(entry(cost=2.0, at=now + 3600))  # in the future: not yet
    totals = ledger.totals("alpha", start=now - 60)
    assert totals.requests == 1
    assert totals.total_cost_usd == pytest.approx(1.0)


def test_ledger_reopens_over_the_same_database(tmp_path: Path) -> None:
    UsageLedger(open_database(tmp_path)).record(entry(cost=3.0))
    reopened = UsageLedger(open_database(tmp_path))
    assert reopened.spent("alpha") == pytest.approx(3.0)
