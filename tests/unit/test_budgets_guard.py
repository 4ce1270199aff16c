"""budgets.guard.BudgetBook: reservations, settlement and status over a real SQLite ledger."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

import budgets.guard as guard_module
from budgets.database import open_database
from budgets.guard import BudgetBook
from budgets.keys import Project
from budgets.ledger import LedgerEntry, UsageLedger
from core.errors import InsufficientQuota

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC).timestamp()
TODAY = datetime(2025, 3, 15, tzinfo=UTC).timestamp()
TOMORROW = datetime(2025, 3, 16, tzinfo=UTC).timestamp()
MONTH = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
NEXT_MONTH = datetime(2025, 4, 1, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(NOW)
    monkeypatch.setattr(guard_module, "time", fake)
    return fake


@pytest.fixture
def ledger(tmp_path: Path) -> UsageLedger:
    return UsageLedger(open_database(tmp_path))


@pytest.fixture
def guard(ledger: UsageLedger, clock: Clock) -> BudgetBook:
    return BudgetBook(ledger)


_ids = iter(range(1, 100_000))


def spend(ledger: UsageLedger, project: str, cost: float, at: float) -> None:
    ledger.record(
        LedgerEntry(
            request_id=f"req-{next(_ids)}",
            project=project,
            key_prefix="sk-cp-abcdef",
            requested_model="gpt-4o",
            resolved_model="sonnet",
            cost_usd=cost,
            created_at=at,
        )
    )


def test_nothing_is_reserved_once_every_reservation_is_settled(guard: BudgetBook) -> None:
    # Amounts whose float sum and difference do not cancel exactly (0.1 + 0.2 - 0.1 - 0.2 != 0).
    project = Project(name="p", budget_usd=10.0)
    first, second = guard.reserve(project, 0.1), guard.reserve(project, 0.2)
    guard.settle(first, 0.0)
    assert guard.status(project).reserved_usd == pytest.approx(0.2)
    guard.settle(second, 0.0)
    assert guard.status(project).reserved_usd == 0.0


def test_project_without_budget_always_reserves(guard: BudgetBook) -> None:
    project = Project(name="free")
    for _ in range(50):
        guard.reserve(project, 1_000_000.0)
    status = guard.status(project)
    assert status.budget_usd is None
    assert status.remaining_usd is None
    assert status.reserved_usd == pytest.approx(50_000_000.0)


def test_reservations_add_up_and_the_one_that_passes_the_budget_is_refused(guard: BudgetBook) -> None:
    project = Project(name="p", budget_usd=10.0)
    guard.reserve(project, 4.0)
    guard.reserve(project, 4.0)
    with pytest.raises(InsufficientQuota) as caught:
        guard.reserve(project, 4.0)
    error = caught.value
    assert error.status == 429
    assert error.type == "insufficient_quota"
    assert error.code == "insufficient_quota"
    assert "p" in error.message
    assert guard.status(project).reserved_usd == pytest.approx(8.0)  # the refused one holds nothing
    guard.reserve(project, 2.0)  # exactly fills the budget
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 0.01)


def test_a_single_reservation_above_the_budget_is_refused(guard: BudgetBook) -> None:
    with pytest.raises(InsufficientQuota):
        guard.reserve(Project(name="p", budget_usd=1.0), 1.5)


def test_zero_budget_refuses_any_cost(guard: BudgetBook) -> None:
    project = Project(name="p", budget_usd=0.0)
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 0.000001)


def test_settling_releases_the_reservation_and_counts_the_real_cost(guard: BudgetBook) -> None:
    project = Project(name="p", budget_usd=10.0)
    first = guard.reserve(project, 6.0)
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 6.0)
    guard.settle(first, 1.0)
    status = guard.status(project)
    assert status.spent_usd == pytest.approx(1.0)
    assert status.reserved_usd == pytest.approx(0.0)
    assert status.remaining_usd == pytest.approx(9.0)
    second = guard.reserve(project, 6.0)  # fits now: 1 spent + 6 reserved <= 10
    guard.settle(second, 6.0)
    assert guard.status(project).spent_usd == pytest.approx(7.0)
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 3.5)
    guard.reserve(project, 3.0)


def test_settling_at_zero_cost_frees_everything(guard: BudgetBook) -> None:
    project = Project(name="p", budget_usd=1.0)
    for _ in range(5):
        reservation = guard.reserve(project, 1.0)
        guard.settle(reservation, 0.0)
    assert guard.status(project).spent_usd == 0.0
    assert guard.status(project).remaining_usd == pytest.approx(1.0)


def test_spend_already_in_the_ledger_counts(guard: BudgetBook, ledger: UsageLedger) -> None:
    spend(ledger, "p", 3.0, NOW - 86_400 * 40)
    spend(ledger, "p", 4.0, NOW - 60)
    spend(ledger, "other", 100.0, NOW - 60)  # another project's spend never counts
    project = Project(name="p", budget_usd=10.0)  # total budget: every row counts
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 3.5)
    guard.reserve(project, 3.0)
    status = guard.status(project)
    assert status.spent_usd == pytest.approx(7.0)
    assert status.remaining_usd == pytest.approx(0.0)


def test_daily_budget_counts_only_spend_since_utc_midnight(guard: BudgetBook, ledger: UsageLedger) -> None:
    spend(ledger, "p", 50.0, TODAY - 3600)  # yesterday 23:00 UTC
    spend(ledger, "p", 2.0, TODAY)  # exactly midnight: today
    spend(ledger, "p", 1.0, NOW - 60)
    project = Project(name="p", budget_usd=10.0, budget_period="daily")
    status = guard.status(project)
    assert status.spent_usd == pytest.approx(3.0)
    assert status.period == "daily"
    assert status.period_start == TODAY
    assert status.period_end == TOMORROW
    guard.reserve(project, 7.0)
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 0.01)


def test_monthly_budget_counts_only_spend_since_the_first(guard: BudgetBook, ledger: UsageLedger) -> None:
    spend(ledger, "p", 50.0, MONTH - 1)
    spend(ledger, "p", 2.0, MONTH + 1)
    status = guard.status(Project(name="p", budget_usd=5.0, budget_period="monthly"))
    assert status.spent_usd == pytest.approx(2.0)
    assert status.remaining_usd == pytest.approx(3.0)
    assert (status.period_start, status.period_end) == (MONTH, NEXT_MONTH)


def test_total_budget_status_has_open_bounds(guard: BudgetBook) -> None:
    status = guard.status(Project(name="p", budget_usd=5.0))
    assert status.period == "total"
    assert status.period_start == 0.0
    assert status.period_end is None
    assert (status.spent_usd, status.reserved_usd, status.remaining_usd) == (0.0, 0.0, 5.0)


def test_status_reports_spent_reserved_and_remaining(guard: BudgetBook, ledger: UsageLedger) -> None:
    spend(ledger, "p", 1.5, NOW - 10)
    project = Project(name="p", budget_usd=10.0, budget_period="daily")
    guard.reserve(project, 2.0)
    guard.reserve(project, 0.5)
    status = guard.status(project)
    assert status.budget_usd == 10.0
    assert status.spent_usd == pytest.approx(1.5)
    assert status.reserved_usd == pytest.approx(2.5)
    assert status.remaining_usd == pytest.approx(6.0)


def test_remaining_is_never_negative(guard: BudgetBook, ledger: UsageLedger) -> None:
    spend(ledger, "p", 12.0, NOW - 10)  # already over (e.g. the budget was lowered)
    project = Project(name="p", budget_usd=10.0)
    status = guard.status(project)
    assert status.spent_usd == pytest.approx(12.0)
    assert status.remaining_usd == 0.0
    with pytest.raises(InsufficientQuota) as caught:
        guard.reserve(project, 0.01)
    assert "$0.000000" in caught.value.message  # the message never shows a negative balance


def test_real_cost_above_the_reservation_still_counts(guard: BudgetBook) -> None:
    project = Project(name="p", budget_usd=10.0)
    reservation = guard.reserve(project, 1.0)
    guard.settle(reservation, 9.5)
    status = guard.status(project)
    assert status.spent_usd == pytest.approx(9.5)
    assert status.reserved_usd == 0.0
    assert status.remaining_usd == pytest.approx(0.5)


def test_projects_have_separate_budgets(guard: BudgetBook) -> None:
    a = Project(name="a", budget_usd=1.0)
    b = Project(name="b", budget_usd=1.0)
    guard.reserve(a, 1.0)
    guard.reserve(b, 1.0)  # a's reservation does not count against b
    with pytest.raises(InsufficientQuota):
        guard.reserve(a, 0.5)


def test_a_new_day_starts_a_fresh_daily_budget(guard: BudgetBook, clock: Clock) -> None:
    project = Project(name="p", budget_usd=1.0, budget_period="daily")
    guard.settle(guard.reserve(project, 1.0), 1.0)
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 0.5)
    clock.now = TOMORROW + 1  # nothing was recorded in the ledger for tomorrow
    guard.reserve(project, 0.5)
    assert guard.status(project).period_start == TOMORROW


def test_twenty_back_to_back_reservations_against_a_budget_worth_three(guard: BudgetBook) -> None:
    worst_case = 0.75
    project = Project(name="p", budget_usd=3 * worst_case)
    outcomes = []
    for _ in range(20):
        try:
            guard.reserve(project, worst_case)
            outcomes.append(True)
        except InsufficientQuota:
            outcomes.append(False)
    assert outcomes == [True] * 3 + [False] * 17


def test_a_budget_of_thirty_cents_covers_three_ten_cent_requests(guard: BudgetBook) -> None:
    project = Project(name="p", budget_usd=0.30)
    succeeded = 0
    for _ in range(20):
        try:
            guard.reserve(project, 0.10)
            succeeded += 1
        except InsufficientQuota:
            pass
    assert succeeded == 3


def _random_run(seed: int, guard: BudgetBook) -> None:
    rng = random.Random(seed)
    budget = round(rng.uniform(0.5, 20.0), 2)
    period = rng.choice(["total", "daily", "monthly"])
    project = Project(name=f"p{seed}", budget_usd=budget, budget_period=period)
    outstanding: list = []
    settled = 0.0
    for _ in range(rng.randint(5, 60)):
        if outstanding and rng.random() < 0.45:
            reservation = outstanding.pop(rng.randrange(len(outstanding)))
            actual = reservation.amount * rng.choice([0.0, 1.0, rng.random()])  # real cost <= worst case
            guard.settle(reservation, actual)
            settled += actual
        else:
            worst = rng.uniform(0.01, budget / 2)
            held = sum(r.amount for r in outstanding)
            try:
                outstanding.append(guard.reserve(project, worst))
            except InsufficientQuota:
                assert settled + held + worst > budget - 1e-9, f"seed {seed}: refused a reservation that fits"
            else:
                assert settled + held + worst <= budget + 1e-9, f"seed {seed}: admitted past the budget"
        assert settled <= budget, f"seed {seed}: settled {settled} > budget {budget}"
    for reservation in outstanding:
        actual = reservation.amount * rng.random()
        guard.settle(reservation, actual)
        settled += actual
    assert settled <= budget, f"seed {seed}: settled {settled} > budget {budget}"
    status = guard.status(project)
    assert status.spent_usd == pytest.approx(settled), f"seed {seed}"
    assert status.reserved_usd == pytest.approx(0.0, abs=1e-9), f"seed {seed}"
    assert status.remaining_usd == pytest.approx(max(budget - settled, 0.0), abs=1e-9), f"seed {seed}"


def test_random_reserve_settle_sequences_never_overspend(guard: BudgetBook) -> None:
    """Reserve worst case W, settle real cost <= W, in random interleavings: spend stays in budget."""
    for seed in range(500):
        _random_run(seed, guard)


def test_a_request_spanning_midnight_counts_in_the_new_day(
    guard: BudgetBook, ledger: UsageLedger, clock: Clock
) -> None:
    project = Project(name="p", budget_usd=10.0, budget_period="daily")
    clock.now = TOMORROW - 1  # 23:59:59
    late = guard.reserve(project, 8.0)
    clock.now = TOMORROW + 1  # 00:00:01 the next day: another request caches the new day's spend
    guard.settle(guard.reserve(project, 0.5), 0.0)
    clock.now = TOMORROW + 2  # the late request ends; metering records it, then settles
    spend(ledger, "p", 8.0, clock.now)
    guard.settle(late, 8.0)
    assert ledger.spent("p", since=TOMORROW) == pytest.approx(8.0)
    assert guard.status(project).spent_usd == pytest.approx(8.0)
    with pytest.raises(InsufficientQuota):
        guard.reserve(project, 5.0)  # 8 already spent today: 5 more would pass 10
