"""Each project's share of the Claude plan's usage windows, and the `plan_share` cap.

A window (five hours, seven days) started at its reset time minus its length. A project's share
of it is what the project spent on that account since the window started, over what every
project spent there (both from the ledger, whose rows say which account served them). Times the
window's utilization as the plan reports it, that is how much of the window's capacity the
project has taken, `used`; a project with a `plan_share` cap is refused (429
`rate_limit_exceeded`) while its `used` is above the cap in any window of any account, until
that window resets. Comparing `used` rather than the bare share lets the first project after a
reset (which holds 100% of very little) go on until it has taken its part of the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from msgspec import Struct

from budgets.keys import Project
from budgets.ledger import UsageLedger
from core.errors import RateLimited

_HOUR = 3600
PLAN_SHARE_RULE = "plan_share is a fraction above 0 and at most 1 (0.25: a quarter of each window), or null."
_NAMES = {"five_hour": "5-hour", "seven_day": "7-day", "seven_day_opus": "7-day Opus"}


def window_seconds(window: str) -> int | None:
    """How long a plan window named `window` lasts; None for one the proxy does not know."""
    if window == "five_hour":
        return 5 * _HOUR
    if window.startswith("seven_day"):
        return 7 * 24 * _HOUR
    return None


class PlanWindow(Struct, kw_only=True):
    """One window of one account, as the backend last saw it."""

    account: str
    window: str
    utilization: float | None = None
    resets_at: int | None = None  # unix seconds


class WindowShare(Struct, kw_only=True):
    """A project's part of one window of one account."""

    account: str
    window: str
    window_start: int  # unix seconds: resets_at minus the window's length
    resets_at: int
    project_cost_usd: float
    account_cost_usd: float
    share: float  # project_cost_usd over account_cost_usd (0 when nothing was spent)
    utilization: float | None  # of the whole window, as the plan reported it
    used: float | None  # share times utilization: the part of the window's capacity the project took


class PlanShares:
    """Reads the windows the backend reports and the ledger; one per app."""

    def __init__(
        self, ledger: UsageLedger, windows: Callable[[], list[PlanWindow]], clock: Callable[[], float] = time.time
    ) -> None:
        self._ledger = ledger
        self._windows = windows
        self._clock = clock

    def of(self, project: str) -> list[WindowShare]:
        """The project's share of every window that is running now (not yet reset)."""
        now = self._clock()
        shares = []
        for window in self._windows():
            length = window_seconds(window.window)
            if length is None or window.resets_at is None or window.resets_at <= now:
                continue
            start = window.resets_at - length
            costs = self._ledger.costs_on_account(window.account, float(start))
            total = sum(costs.values())
            mine = costs.get(project, 0.0)
            share = mine / total if total > 0 else 0.0
            used = share * window.utilization if window.utilization is not None else None
            shares.append(
                WindowShare(
                    account=window.account,
                    window=window.window,
                    window_start=start,
                    resets_at=window.resets_at,
                    project_cost_usd=mine,
                    account_cost_usd=total,
                    share=share,
                    utilization=window.utilization,
                    used=used,
                )
            )
        return shares

    def check(self, project: Project) -> None:
        """Raises a 429 while the project has taken more than its `plan_share` of a window."""
        cap = project.plan_share
        if cap is None:
            return
        over = [s for s in self.of(project.name) if s.used is not None and s.used > cap]
        if not over:
            return
        # Refused until every window it is over has reset: report the last of them.
        last = max(over, key=lambda s: s.resets_at)
        when = datetime.fromtimestamp(last.resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        label = _NAMES.get(last.window, last.window.replace("_", " "))
        raise RateLimited(
            f"Project '{project.name}' has used {last.used or 0.0:.0%} of the Claude plan's {label} window "
            f"on account '{last.account}', above its plan_share of {cap:.0%}; the window resets at {when}.",
            retry_after=last.resets_at - self._clock(),
        )
