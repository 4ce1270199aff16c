"""The Redis connection: one asyncio client with a connection pool and timeouts on every call.

Redis failures are translated here, at the boundary, into `RedisUnavailable` (503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import RedisUnavailable


class RedisSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Optional Redis; null keeps everything in process memory and SQLite."""

    url: str | None = None
    timeout_s: float = 2.0
    prefix: str = "claude-proxy:"


def connect(settings: RedisSettings) -> aioredis.Redis:
    """A client for `redis.url`; it connects lazily, so a server can start while Redis is down."""
    if not settings.url:
        raise ValueError("redis.url is not set")
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )


@asynccontextmanager
async def redis_errors(what: str) -> AsyncIterator[None]:
    """Turns any Redis failure inside the block into a 503 that says what could not be done."""
    try:
        yield
    except RedisError as exc:
        raise RedisUnavailable(f"Redis is unreachable, so the proxy could not {what}: {exc}") from exc
    except OSError as exc:
        raise RedisUnavailable(f"Redis is unreachable, so the proxy could not {what}: {exc}") from exc


async def ping(client: aioredis.Redis) -> str | None:
    """None when Redis answers, else what went wrong (for /health)."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None
