"""Budget reservations that hold under concurrency.

Before a request runs, its worst-case cost is reserved; the reservation is refused when spend
plus everything already reserved plus it would pass the budget. When the request ends it is
settled to the real cost. Check and reservation happen with no await in between, so on one
event loop they are atomic; the Redis issue provides a shared implementation of the protocol.
"""

from __future__ import annotations

import itertools
import time
from typing import Protocol, runtime_checkable

from msgspec import Struct

from budgets.keys import Project
from budgets.ledger import UsageLedger
from budgets.periods import period_end, period_start
from core.errors import InsufficientQuota

_TOLERANCE_USD = 1e-9


class Reservation(Struct, kw_only=True):
    id: int | str  # a counter in process; "<instance>-<counter>" for the Redis guard, unique across servers
    project: str
    amount: float
    period: str


class BudgetStatus(Struct, kw_only=True):
    budget_usd: float | None
    period: str
    spent_usd: float
    reserved_usd: float
    remaining_usd: float | None
    period_start: float
    period_end: float | None

    @classmethod
    def of(cls, project: Project, *, spent: float, reserved: float, now: float) -> BudgetStatus:
        """The status of `project` given its spend and reservations in the period around `now`."""
        remaining = None if project.budget_usd is None else max(project.budget_usd - spent - reserved, 0.0)
        return cls(
            budget_usd=project.budget_usd,
            period=project.budget_period,
            spent_usd=spent,
            reserved_usd=reserved,
            remaining_usd=remaining,
            period_start=period_start(project.budget_period, now),
            period_end=period_end(project.budget_period, now),
        )


@runtime_checkable  # the app injects it, and Litestar checks what it injects
class BudgetGuard(Protocol):
    """Reserves worst-case costs against project budgets and settles them to real costs.

    `reserve` must check and reserve atomically with respect to every other caller that shares
    the budget (one event loop for `InProcessBudgetGuard`, all servers for the Redis one).
    """

    async def reserve(self, project: Project, amount: float) -> Reservation: ...

    async def settle(self, reservation: Reservation, actual_cost: float) -> None: ...

    async def status(self, project: Project) -> BudgetStatus: ...


class BudgetBook:
    """The synchronous book of one process's reservations over the SQLite ledger (the ledger is
    the record of spend); `InProcessBudgetGuard` is the `BudgetGuard` in front of it."""

    def __init__(self, ledger: UsageLedger) -> None:
        self.ledger = ledger
        self._ids = itertools.count(1)
        self._reserved: dict[str, float] = {}
        self._holding: dict[str, int] = {}  # reservations not settled yet, per project
        self._spent: dict[tuple[str, float], float] = {}

    def _spent_since(self, project: str, start: float) -> float:
        key = (project, start)
        if key not in self._spent:
            self._spent[key] = self.ledger.spent(project, since=start)
        return self._spent[key]

    def reserve(self, project: Project, amount: float) -> Reservation:
        start = period_start(project.budget_period, time.time())
        reservation = Reservation(id=next(self._ids), project=project.name, amount=amount, period=project.budget_period)
        if project.budget_usd is not None:
            committed = self._spent_since(project.name, start) + self._reserved.get(project.name, 0.0)
            # A hair of tolerance, so that three reservations of 0.1 fit a budget of 0.3.
            if committed + amount - project.budget_usd > _TOLERANCE_USD:
                left = max(project.budget_usd - committed, 0.0)
                raise InsufficientQuota(
                    f"Project '{project.name}' has ${left:.6f} of its {project.budget_period} budget of "
                    f"${project.budget_usd:.2f} left, and this request may cost up to ${amount:.6f}. "
                    "Lower max_tokens, or raise the budget."
                )
        self._reserved[project.name] = self._reserved.get(project.name, 0.0) + amount
        self._holding[project.name] = self._holding.get(project.name, 0) + 1
        return reservation

    def settle(self, reservation: Reservation, actual_cost: float) -> None:
        holding = self._holding.get(reservation.project, 0) - 1
        if holding <= 0:
            # The last one out: exactly nothing is reserved, not what float subtraction leaves.
            self._holding.pop(reservation.project, None)
            self._reserved.pop(reservation.project, None)
        else:
            self._holding[reservation.project] = holding
            left = self._reserved.get(reservation.project, 0.0) - reservation.amount
            self._reserved[reservation.project] = max(left, 0.0)
        # The ledger dates the cost now, so it belongs to the period running now, which may be a
        # new one if the request ran across midnight.
        key = (reservation.project, period_start(reservation.period, time.time()))
        if key in self._spent:
            self._spent[key] += actual_cost

    def status(self, project: Project) -> BudgetStatus:
        now = time.time()
        spent = self._spent_since(project.name, period_start(project.budget_period, now))
        return BudgetStatus.of(project, spent=spent, reserved=self._reserved.get(project.name, 0.0), now=now)


class InProcessBudgetGuard:
    """`BudgetGuard` for one server process: the synchronous `BudgetBook` behind it."""

    def __init__(self, ledger: UsageLedger) -> None:
        self.local = BudgetBook(ledger)

    async def reserve(self, project: Project, amount: float) -> Reservation:
        return self.local.reserve(project, amount)

    async def settle(self, reservation: Reservation, actual_cost: float) -> None:
        self.local.settle(reservation, actual_cost)

    async def status(self, project: Project) -> BudgetStatus:
        return self.local.status(project)
