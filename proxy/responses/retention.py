"""Stored responses expire: those older than `responses.retention_days` are deleted when the
server starts and then every `responses.sweep_interval_s`, by a task the app's lifespan owns.

OpenAI keeps stored responses for 30 days, the default here too; `retention_days: 0` keeps them
for ever. An expired response is gone as a deleted one is: retrieving it, its input items, a
`previous_response_id` or an `item_reference` naming it answer 404.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable

from proxy.responses.store import ResponseStore

log = logging.getLogger("claude_proxy.responses")

DAY_S = 86_400


class ResponseRetention:
    """Deletes expired stored responses, once at `start` and then periodically until `close`."""

    def __init__(
        self,
        store: ResponseStore,
        *,
        retention_days: float,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention_s = retention_days * DAY_S
        self._interval_s = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def sweep(self) -> int:
        """Deletes what has expired by now; how many responses that was."""
        if self._retention_s <= 0:
            return 0
        try:
            deleted = self._store.expire(int(self._clock() - self._retention_s))
        except sqlite3.Error as exc:  # a sweep that fails is tried again at the next one
            log.warning("could not delete expired responses: %s", exc)
            return 0
        if deleted:
            log.info("deleted %d stored responses older than %g days", deleted, self._retention_s / DAY_S)
        return deleted

    async def start(self) -> None:
        self.sweep()
        if self._retention_s > 0:
            self._task = asyncio.create_task(self._every_interval())

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.sweep()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
