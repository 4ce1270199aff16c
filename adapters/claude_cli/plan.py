"""The Claude plan's usage windows, as the CLI reports them in subscription (OAuth) mode.

Each answer's `rate_limit_event` line says how much of the plan's five-hour and seven-day
windows is used and when each resets. `PlanWindows` keeps the latest of each window per
account (today one, `default`: the server's own environment) and is the one owner of that
state; the backend holds it, answers hand it what they read, the admin API shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._accounts: dict[str, _Account] = {}

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
                "status": _status(state),
                "windows": {key: msgspec.to_builtins(window) for key, window in sorted(state.windows.items())},
            }
            for name, state in sorted(self._accounts.items())
        ]

    def rejection(self, account: str = DEFAULT_ACCOUNT) -> RateLimited | None:
        """The caller's 429 when the account's plan refused the last request: which window,
        and the seconds until it resets. None when no window is known to be exhausted."""
        state = self._accounts.get(account)
        if state is None:
            return None
        now = self._clock()
        rejected = [
            (name, w)
            for name, w in state.windows.items()
            if w.status == "rejected" and w.resets_at is not None and w.resets_at > now
        ]
        if not rejected:
            return None
        # The window the CLI named first, else the one that stays shut longest.
        rejected.sort(key=lambda item: (item[0] != state.type, -(item[1].resets_at or 0)))
        name, window = rejected[0]
        resets_at = window.resets_at or 0
        when = datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        label = _WINDOW_NAMES.get(name, name.replace("_", " "))
        return RateLimited(
            f"The Claude plan's {label} limit is reached; it resets at {when}.",
            retry_after=resets_at - now,
        )


def _window(window: PlanWindow) -> Window:
    return Window(utilization=window.utilization, resets_at=window.resetsAt, status=window.status)


def _status(state: _Account) -> str:
    statuses = {state.status, *(window.status for window in state.windows.values())}
    if "rejected" in statuses:
        return "rejected"
    if state.overage:
        return "overage"
    if "allowed_warning" in statuses:
        return "warning"
    return "ok"
