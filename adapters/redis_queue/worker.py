"""`claude-proxy worker`: takes jobs from Redis and runs them on this host's CLI pool.

Interactive jobs are always read before batch jobs. A job a dead worker held is claimed again
by another after `workers.claim_idle_ms` (`XAUTOCLAIM`); live workers keep their jobs fresh with
a heartbeat so nobody steals them. A reclaimed batch job starts over (its gateway discards the
first attempt); a reclaimed interactive job is retried once if the caller has seen nothing yet,
and otherwise ends with an error event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.typing import KeyT, StreamIdT

from adapters.protocol import ChatBackend
from adapters.redis_queue.messages import (
    GROUP,
    ClaimedEvent,
    CompletedEvent,
    ErrorEvent,
    Keys,
    ReplyEvent,
    ResetEvent,
    RetractedEvent,
    StartedEvent,
    StreamEntry,
    StreamRead,
    TextEvent,
    ThinkingEvent,
    ToolEvent,
    event_decoder,
    job_decoder,
    job_encoder,
)
from core.errors import ProxyError
from core.types import (
    Completed,
    Priority,
    RedactedThinking,
    Retracted,
    Started,
    TextDelta,
    ThinkingDelta,
    ThinkingSigned,
    ToolCallArguments,
    ToolCallStarted,
)

log = logging.getLogger("claude_proxy.worker")

_MAX_DELIVERIES = 3


class Worker:
    """Runs up to `capacity` jobs at once from the Redis work queue on `backend`."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        backend: ChatBackend,
        *,
        capacity: int,
        claim_idle_ms: int,
        block_ms: int = 500,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.backend = backend
        self.capacity = capacity
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms  # below the socket timeout, so waiting for work is not an error
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.streams = [self.keys.jobs(Priority.INTERACTIVE), self.keys.jobs(Priority.BATCH)]
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self.ensure_groups()
        log.info(
            "worker %s ready: %d slots, claiming jobs idle over %d ms", self.name, self.capacity, self.claim_idle_ms
        )
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            free = self.capacity - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED, timeout=0.5)
                continue
            if loop.time() >= next_claim:
                next_claim = loop.time() + self.claim_idle_ms / 2000
                if await self._reclaim(free):
                    continue
            entries = await self._read(free)
            for stream, entry_id, fields in entries:
                self._start(stream, entry_id, fields, redelivered=False)
        await self._drain()

    async def _read(self, count: int) -> list[tuple[str, bytes, dict]]:
        # Interactive first: only when none waits does a batch job get read.
        interactive: dict[KeyT, StreamIdT] = {self.streams[0]: ">"}
        every: dict[KeyT, StreamIdT] = {s: ">" for s in self.streams}
        for streams, block in ((interactive, None), (every, self.block_ms)):
            answer = cast(
                "StreamRead | None", await self.client.xreadgroup(GROUP, self.name, streams, count=count, block=block)
            )
            found = [(s.decode(), entry_id, fields) for s, entries in answer or [] for entry_id, fields in entries]
            if found:
                return found
        return []

    async def _reclaim(self, count: int) -> bool:
        claimed_any = False
        for stream in self.streams:
            result = await self.client.xautoclaim(stream, GROUP, self.name, self.claim_idle_ms, "0-0", count=count)
            for entry_id, fields in result[1]:
                if fields:
                    claimed_any = True
                    self._start(stream, entry_id, fields, redelivered=True)
        return claimed_any

    def _start(self, stream: str, entry_id: bytes, fields: dict, *, redelivered: bool) -> None:
        task = asyncio.create_task(self._serve(stream, entry_id, fields, redelivered))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, stream: str, entry_id: bytes, fields: dict, redelivered: bool) -> None:
        message = job_decoder.decode(fields[b"m"])
        reply = self.keys.reply(message.id)
        heartbeat = asyncio.create_task(self._heartbeat(stream, entry_id))
        try:
            if await self.client.exists(self.keys.cancel(message.id)):
                return
            if redelivered and not await self._may_retry(stream, entry_id, message.job.priority, reply):
                return
            await self._send(reply, ClaimedEvent(self.name))
            await self._run(message.id, message.job, reply)
        except Exception:  # the caller gets an error event, the worker goes on
            log.exception("job %s failed in the worker", message.id)
            await self._send(reply, ErrorEvent(502, "server_error", "worker_failed", "The worker failed."))
        finally:
            heartbeat.cancel()
            # Acknowledged and then deleted, so the job streams hold only work not done yet.
            await self.client.xack(stream, GROUP, entry_id)
            await self.client.xdel(stream, entry_id)
            await self.client.expire(reply, 600)

    async def _may_retry(self, stream: str, entry_id: bytes, priority: int, reply: str) -> bool:
        pending = await self.client.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
        # redis-py parses times_delivered as an int already; int() tells the type checker so.
        deliveries = int(pending[0]["times_delivered"]) if pending else _MAX_DELIVERIES + 1
        # A batch job may start over a few times; an interactive caller is waiting: one retry.
        limit = _MAX_DELIVERIES if priority == Priority.BATCH else 2
        if deliveries > limit:
            await self._send(
                reply, ErrorEvent(502, "server_error", "worker_lost", "Workers kept failing on this request.")
            )
            return False
        if priority == Priority.BATCH:
            await self._send(reply, ResetEvent())
            return True
        seen = cast("list[StreamEntry]", await self.client.xrange(reply, count=100))
        if any(not isinstance(event_decoder.decode(fields[b"e"]), ClaimedEvent) for _, fields in seen):
            await self._send(
                reply,
                ErrorEvent(502, "server_error", "worker_lost", "The worker serving this request stopped mid-answer."),
            )
            return False
        return True

    async def _run(self, job_id: str, job: Any, reply: str) -> None:
        events = self.backend.stream(job)
        watcher = asyncio.create_task(self._watch_cancel(job_id, asyncio.current_task()))
        try:
            async for event in events:
                if isinstance(event, Started):
                    await self._send(reply, StartedEvent(event.usage))
                elif isinstance(event, TextDelta):
                    await self._send(reply, TextEvent(event.text))
                elif isinstance(event, (ToolCallStarted, ToolCallArguments)):
                    await self._send(reply, ToolEvent(event))
                elif isinstance(event, (ThinkingDelta, ThinkingSigned, RedactedThinking)):
                    await self._send(reply, ThinkingEvent(event))
                elif isinstance(event, Retracted):
                    await self._send(reply, RetractedEvent())
                elif isinstance(event, Completed):
                    await self._send(reply, CompletedEvent(event))
        except ProxyError as exc:
            await self._send(reply, ErrorEvent(exc.status, exc.type, exc.code, exc.message))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping.is_set() or task is None:
                raise
            task.uncancel()  # cancelled by the watcher: the caller went away, the worker goes on
            log.info("job %s cancelled by its caller", job_id)
        finally:
            watcher.cancel()
            await events.aclose()

    async def _watch_cancel(self, job_id: str, runner: asyncio.Task | None) -> None:
        key = self.keys.cancel(job_id)
        while True:
            await asyncio.sleep(0.1)
            if await self.client.exists(key):
                if runner is not None:
                    runner.cancel()
                return

    async def _heartbeat(self, stream: str, entry_id: bytes) -> None:
        # Re-claiming our own entry resets its idle time, so XAUTOCLAIM leaves it to us.
        while True:
            await asyncio.sleep(self.claim_idle_ms / 3000)
            await self.client.xclaim(stream, GROUP, self.name, 0, [entry_id], justid=True)

    async def _send(self, reply: str, event: ReplyEvent) -> None:
        await self.client.xadd(reply, {"e": job_encoder.encode(event)})

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks)
