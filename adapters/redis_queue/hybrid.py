"""A server with its own pool that hands what it cannot take at once to Redis workers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from adapters.claude_cli.backend import ClaudeCliBackend
from adapters.redis_queue.backend import RedisQueueBackend
from core.types import BackendEvent, CompletionJob


class OverflowBackend:
    """Local CLI pool first; when every local slot is busy, the Redis work queue."""

    def __init__(self, local: ClaudeCliBackend, remote: RedisQueueBackend) -> None:
        self.local = local
        self.remote = remote

    async def start(self) -> None:
        await self.local.start()
        await self.remote.start()

    async def close(self) -> None:
        await self.remote.close()
        await self.local.close()

    def health(self) -> dict[str, Any]:
        return {**self.local.health(), **self.remote.health()}

    def accounts(self) -> list[dict[str, Any]]:
        return self.local.accounts()

    def stream(self, job: CompletionJob) -> AsyncGenerator[BackendEvent, None]:
        pool = self.local.pool
        if pool is not None and pool.has_free_slot():
            return self.local.stream(job)
        return self.remote.stream(job)
