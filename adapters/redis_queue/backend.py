"""`ChatBackend` for a gateway: jobs go to Redis, workers on any host run them.

Events flow back on the job's reply stream as they happen, so streaming stays token by
token. Closing the stream early (the caller went away) raises the job's cancel flag, and the
worker stops the CLI. Batch jobs are buffered until complete, so a batch line that a second
worker had to start over is delivered once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis

from adapters.redis_queue.messages import (
    ClaimedEvent,
    CompletedEvent,
    ErrorEvent,
    JobMessage,
    Keys,
    ResetEvent,
    RetractedEvent,
    StartedEvent,
    StreamRead,
    TextEvent,
    ThinkingEvent,
    ToolEvent,
    event_decoder,
    job_encoder,
)
from core.errors import ProxyError, RateLimited
from core.redis_conn import redis_errors
from core.types import BackendEvent, CompletionJob, Priority, Retracted, Started, TextDelta

_REPLY_TTL_S = 600


class _RemoteError(ProxyError):
    """An error a worker reported; it keeps the worker's status, type and code."""


def rebuild_error(event: ErrorEvent) -> ProxyError:
    error = _RemoteError(event.message, code=event.code)
    error.status = event.status
    error.type = event.type
    return error


class RedisQueueBackend:
    """Puts jobs on the Redis work queue and relays the worker's events."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, *, claim_timeout_s: float, retry_after_s: float, block_ms: int
    ) -> None:
        self.client = client
        self.block_ms = block_ms  # below the socket timeout, so a quiet stream is not an error
        self.keys = Keys(prefix)
        self.claim_timeout_s = claim_timeout_s
        self.retry_after_s = retry_after_s

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"queue": {"mode": "redis"}}

    def accounts(self) -> list[dict[str, Any]]:
        return []  # the workers' CLIs see the plan; the gateway does not

    async def stream(self, job: CompletionJob) -> AsyncGenerator[BackendEvent, None]:
        job_id = secrets.token_hex(12)
        reply = self.keys.reply(job_id)
        async with redis_errors("queue the request"):
            await self.client.xadd(self.keys.jobs(job.priority), {"m": job_encoder.encode(JobMessage(job_id, job))})
        finished = False
        try:
            if job.priority == Priority.BATCH:
                async for event in self._buffered(reply):
                    yield event
            else:
                async for event in self._events(reply):
                    yield event
            finished = True
        finally:
            # Shielded: a caller who went away may cancel us again, and the worker must still
            # learn that its job is void.
            await asyncio.shield(self._clean_up(job_id, cancel=not finished))

    async def _clean_up(self, job_id: str, *, cancel: bool) -> None:
        async with redis_errors("clean up the request"):
            if cancel:
                await self.client.set(self.keys.cancel(job_id), b"1", ex=_REPLY_TTL_S)
            await self.client.expire(self.keys.reply(job_id), 60)

    async def _buffered(self, reply: str) -> AsyncIterator[BackendEvent]:
        held: list[BackendEvent] = []
        async for event in self._events(reply, resettable=True):
            if event is None:
                held.clear()
                continue
            held.append(event)
        for event in held:
            yield event

    async def _events(self, reply: str, *, resettable: bool = False) -> AsyncIterator[Any]:
        last: bytes | str = "0-0"  # then the id of the last entry read
        claimed = False
        deadline = time.monotonic() + self.claim_timeout_s
        while True:
            if not claimed and time.monotonic() > deadline:
                raise RateLimited(
                    f"no worker took the request within {self.claim_timeout_s:g}s; retry shortly",
                    retry_after=self.retry_after_s,
                    code="no_worker",
                )
            async with redis_errors("read the worker's reply"):
                answer = cast(
                    "StreamRead | None", await self.client.xread({reply: last}, block=self.block_ms, count=256)
                )
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = event_decoder.decode(fields[b"e"])
                    if isinstance(event, ClaimedEvent):
                        claimed = True
                    elif isinstance(event, StartedEvent):
                        yield Started(event.usage)
                    elif isinstance(event, TextEvent):
                        yield TextDelta(event.text)
                    elif isinstance(event, ToolEvent | ThinkingEvent):
                        yield event.part
                    elif isinstance(event, RetractedEvent):
                        yield Retracted()
                    elif isinstance(event, CompletedEvent):
                        yield event.completed
                        return
                    elif isinstance(event, ErrorEvent):
                        raise rebuild_error(event)
                    elif isinstance(event, ResetEvent) and resettable:
                        yield None
