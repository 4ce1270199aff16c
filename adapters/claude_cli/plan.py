"""The Claude plan's usage windows, as the CLI reports them in subscription (OAuth) mode.

Each answer's `rate_limit_event` line says how much of the plan's five-hour and seven-day
windows is used and when each resets. `PlanWindows` keeps the latest of each window per
account (the configured `accounts`, or `default`: the server's own environment) and is the one
owner of that state; the backend holds it and asks it which accounts may serve a request and in
what order, answers hand it what they read, the admin API shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from adapters.claude_cli.events import PlanWindow, RateLimitInfo
from core.errors import RateLimited

DEFAULT_ACCOUNT = "default"

# How the windows are named to people.
_WINDOW_NAMES = {"five_hour": "5-hour", "seven_day": "7-day", "seven_day_opus": "7-day Opus"}


class Window(msgspec.Struct, kw_only=True):
    utilization: float | None = None
    resets_at: int | None = None  # unix seconds
    status: str | None = None


class _Account:
    __slots__ = ("overage", "status", "type", "windows")

    def __init__(self) -> None:
        self.status: str | None = None
        self.type: str | None = None
        self.overage = False
        self.windows: dict[str, Window] = {}


class PlanWindows:
    """The latest usage windows seen per account."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        accounts: Sequence[str] = (),
        allow_overage: bool = False,
    ) -> None:
        self._clock = clock
        self.allow_overage = allow_overage
        # Configured accounts are listed before anything is seen of them.
        self._accounts: dict[str, _Account] = {name: _Account() for name in accounts}

    def observe(self, info: RateLimitInfo, account: str = DEFAULT_ACCOUNT) -> None:
        """One `rate_limit_event`: the windows it names replace what was known of them."""
        state = self._accounts.setdefault(account, _Account())
        state.status = info.status
        state.type = info.rateLimitType
        state.overage = info.isUsingOverage
        for name, window in info.unifiedWindows.items():
            state.windows[name] = _window(window)
        if info.rateLimitType and info.rateLimitType not in info.unifiedWindows:
            # The deciding window without a per-window entry: what the line says of it.
            state.windows[info.rateLimitType] = Window(resets_at=info.resetsAt, status=info.status)

    def accounts(self) -> list[dict[str, Any]]:
        """Every account seen, as `/admin/accounts` lists them."""
        return [
            {
                "name": name,
                "status": _status(state, self._clock()),
                "windows": {key: msgspec.to_builtins(window) for key, window in sorted(state.windows.items())},
            }
            for name, state in sorted(self._accounts.items())
        ]

    def rejection(self, account: str = DEFAULT_ACCOUNT) -> RateLimited | None:
        """The caller's 429 when the account is out of rotation: its plan refused the last
        request, or (without `allow_overage`) answered it from paid extra usage. Names the
        window and the seconds until it resets; None when the account may serve."""
        state = self._accounts.get(account)
        if state is None:
            return None
        now = self._clock()
        rejected = _rejected(state, now)
        if not rejected or (state.overage and self.allow_overage):
            return None
        # The window the CLI named first, else the one that stays shut longest.
        rejected.sort(key=lambda item: (item[0] != state.type, -(item[1].resets_at or 0)))
        name, window = rejected[0]
        resets_at = window.resets_at or 0
        when = datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        label = _WINDOW_NAMES.get(name, name.replace("_", " "))
        extra = " (paid extra usage is not allowed: plan.allow_overage)" if state.overage else ""
        return RateLimited(
            f"The Claude plan's {label} limit is reached{extra}; it resets at {when}.",
            retry_after=resets_at - now,
        )

    def rotation(self, accounts: Sequence[str], *, sticky: str | None = None) -> list[str]:
        """The accounts of `accounts` that may serve, best first: `sticky` (the account holding
        the conversation's warm process) when it may, then by lowest utilization of their
        fullest window, ties in the order given."""
        usable = [name for name in accounts if self.rejection(name) is None]
        order = {name: index for index, name in enumerate(accounts)}
        return sorted(usable, key=lambda name: (name != sticky, self.utilization(name), order[name]))

    def utilization(self, account: str) -> float:
        """The used fraction of the account's fullest window that has not reset yet (0 unknown)."""
        state = self._accounts.get(account)
        if state is None:
            return 0.0
        now = self._clock()
        return max(
            (
                w.utilization
                for w in state.windows.values()
                if w.utilization is not None and (w.resets_at is None or w.resets_at > now)
            ),
            default=0.0,
        )

    def refusal(self, accounts: Sequence[str]) -> RateLimited | None:
        """The 429 for a request no account of `accounts` may serve: the refusal that ends
        first, so `Retry-After` is the wait until some account is back. None if one may serve."""
        refusals = [self.rejection(name) for name in accounts]
        if not refusals or any(refused is None for refused in refusals):
            return None
        return min((r for r in refusals if r is not None), key=lambda r: r.retry_after or 0)


def _window(window: PlanWindow) -> Window:
    return Window(utilization=window.utilization, resets_at=window.resetsAt, status=window.status)


def _rejected(state: _Account, now: float) -> list[tuple[str, Window]]:
    """The account's windows that refused and have not reset yet."""
    return [
        (name, w)
        for name, w in state.windows.items()
        if w.status == "rejected" and w.resets_at is not None and w.resets_at > now
    ]


def _status(state: _Account, now: float) -> str:
    # A window past its reset no longer refuses, whatever it said last; nor does overage it led to.
    current = [w for w in state.windows.values() if w.resets_at is None or w.resets_at > now]
    statuses = {window.status for window in current} if state.windows else {state.status}
    refused_before = any(w.status == "rejected" for w in state.windows.values())
    if state.overage and ("rejected" in statuses or not refused_before):
        return "overage"
    if "rejected" in statuses:
        return "rejected"
    if "allowed_warning" in statuses:
        return "warning"
    return "ok"
