"""The opt-in response cache: whole completions keyed by project and a canonical request.

A hit replays the stored answer, whole or as a stream, without touching the CLI, and costs the
project nothing. The store is Redis when configured (shared by every server), else
a bounded in-process LRU.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

import msgspec
import redis.asyncio as aioredis

from core.redis_conn import redis_errors
from core.types import CompletionJob, TokenUsage

_encoder = msgspec.json.Encoder(order="deterministic")


class CachedChoice(msgspec.Struct):
    text: str
    finish_reason: str
    reasoning: str = ""  # the thinking shown to the caller (no signature: never sent back)


class CachedAnswer(msgspec.Struct):
    choices: list[CachedChoice]
    usage: list[TokenUsage]
    created: int


_decoder = msgspec.json.Decoder(CachedAnswer)


@runtime_checkable
class ResponseCache(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer) -> None: ...


def cache_key(project: str, job: CompletionJob, *, n: int, stops: list[str], sampling: dict[str, Any]) -> str:
    """Everything that decides the answer: the resolved model, the conversation, the limits,
    the sampling parameters."""
    canonical = {
        "project": project,
        "model": job.model,
        "system": job.system,
        "history": job.history,
        "prompt": job.prompt,
        "max_output_tokens": job.max_output_tokens,
        "stops": stops,
        "n": n,
        "sampling": sampling,
        "tools": job.tools,
        "tool_choice": job.tool_choice,
        "effort": job.effort,
    }
    return hashlib.sha256(_encoder.encode(canonical)).hexdigest()


class MemoryCache:
    """A bounded LRU with expiry, for a single server without Redis."""

    def __init__(self, *, ttl_s: int, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> CachedAnswer | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, raw = item
        if expires < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return _decoder.decode(raw)

    async def put(self, key: str, answer: CachedAnswer) -> None:
        self._items[key] = (time.monotonic() + self.ttl_s, _encoder.encode(answer))
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


class RedisCache:
    """Shared by every server on the same Redis; entries expire after `cache.ttl_s`."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix + "cache:"
        self.ttl_s = ttl_s

    async def get(self, key: str) -> CachedAnswer | None:
        async with redis_errors("read the response cache"):
            raw = await self.client.get(self.prefix + key)
        return _decoder.decode(raw) if raw is not None else None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        async with redis_errors("write the response cache"):
            await self.client.set(self.prefix + key, _encoder.encode(answer), ex=self.ttl_s)
