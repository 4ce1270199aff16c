"""Holds batch lines and background responses while the Claude plan is nearly used up.

People need the plan's five-hour and seven-day windows for interactive work; batch lines and
background responses can wait. While every account the backend knows has a window above
`plan.batch_max_utilization` (or refused by the plan), the gate is shut: the batch runner
starts no new line and a background response stays `queued`. It opens again when a window
resets (its `resets_at` passes) or a later answer reports less use. Interactive requests never
look at it. With no account known (an API key, a queue gateway) the gate is always open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import Struct

WAIT_REASON = "plan_utilization"


class _Window(Struct):
    utilization: float | None = None
    resets_at: int | None = None
    status: str | None = None


class _Account(Struct):
    name: str
    windows: dict[str, _Window] = {}


class PlanWait(Struct, kw_only=True):
    """Why background work waits: shown on a waiting batch as its `waiting` field."""

    reason: str = WAIT_REASON
    message: str
    resumes_at: int | None = None  # unix seconds: the earliest reset that would open the gate


class PlanGate:
    """Reads the backend's accounts (`ChatBackend.accounts`) and says whether background work
    may start now. Stateless apart from the clock: each question reads the windows afresh."""

    def __init__(
        self,
        accounts: Callable[[], list[dict[str, Any]]],
        max_utilization: float,
        *,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._accounts = accounts
        self._max = max_utilization
        self._poll_s = poll_s
        self._clock = clock

    def wait(self) -> PlanWait | None:
        """Why background work must wait now, or None when it may run."""
        accounts = msgspec.convert(self._accounts(), list[_Account])
        if not accounts:
            return None
        now = self._clock()
        reopens: list[int | None] = []
        for account in accounts:
            full = [w for w in account.windows.values() if self._full(w, now)]
            if not full:
                return None
            # An account frees up when every one of its full windows has reset.
            resets = [w.resets_at for w in full]
            reopens.append(None if None in resets else max(r for r in resets if r is not None))
        known = [r for r in reopens if r is not None]
        resumes_at = min(known) if known else None
        names = ", ".join(account.name for account in accounts)
        message = (
            f"Waiting: every Claude account ({names}) has used more than {self._max:.0%} of a plan window "
            "(plan.batch_max_utilization); "
        )
        if resumes_at is None:
            message += "resumes when an answer reports less use."
        else:
            when = datetime.fromtimestamp(resumes_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            message += f"resumes at {when}, when the first of them resets."
        return PlanWait(message=message, resumes_at=resumes_at)

    async def wait_open(self) -> None:
        """Returns once background work may run, checking every `poll_s` (sooner at a reset)."""
        while (waiting := self.wait()) is not None:
            pause = self._poll_s
            if waiting.resumes_at is not None:
                pause = min(pause, max(waiting.resumes_at - self._clock(), 0.0) + 0.05)
            await asyncio.sleep(pause)

    def _full(self, window: _Window, now: float) -> bool:
        if window.resets_at is not None and window.resets_at <= now:
            return False  # reset since it was reported
        if window.status == "rejected":
            return True
        return window.utilization is not None and window.utilization > self._max
