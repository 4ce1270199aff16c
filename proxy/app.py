"""`create_app`: the Litestar application built from explicit parts."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException

from adapters.protocol import ChatBackend
from adapters.router import ModelRouter
from proxy.auth import Principal, authenticate
from proxy.batches.runner import BatchRunner
from proxy.batches.store import BatchStore
from proxy.cache import MemoryCache, RedisCache, ResponseCache
from proxy.chat.service import ChatService
from proxy.metering import Metering
from proxy.metrics import Metrics, timing_hook
from core.redis_conn import connect
from proxy.routing import RequestRouter
from core.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ProxyError,
    RequestTooLarge,
    ShuttingDown,
)
from proxy.middleware import add_request_headers, request_id
from proxy.routes import files_router, routes
from proxy.routes.chat import ChatParts
from proxy.settings import Settings
from core.tokens import count_tokens
from proxy.wire.chat_response import encoder

log = logging.getLogger("claude_proxy")

_JSON = "application/json"


def _error_response(error: ProxyError) -> Response[bytes]:
    return Response(
        content=encoder.encode(error.to_body()),
        status_code=error.status,
        media_type=_JSON,
        headers=error.headers,
    )


def _translate_http_exception(request: Request, exc: HTTPException) -> ProxyError:
    status = exc.status_code
    if status == 404:
        return NotFound(f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url")
    if status == 405:
        return MethodNotAllowed(f"Method {request.method} is not allowed for {request.url.path}.")
    if status == 413:
        return RequestTooLarge("The request body is larger than this server accepts.")
    if 400 <= status < 500:
        error = InvalidRequest(str(exc.detail))
        error.status = status  # keep the framework's status (e.g. 415) with OpenAI's body
        return error
    log.error("framework error %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
    return ProxyError("The server had an error while processing your request.")


def handle_exception(request: Request, exc: Exception) -> Response[bytes]:
    """The one place where exceptions become OpenAI error responses."""
    if isinstance(exc, ProxyError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = _translate_http_exception(request, exc)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = ProxyError("The server had an error while processing your request.")
    return _error_response(error)


def authenticated_principal(request: Request, metering: Metering) -> Principal:
    """The `principal` dependency: the caller's project and key (401/429 otherwise)."""
    request_id(request.scope)
    return authenticate(request, metering.keys, metering.auth_failures)


class _Caching:
    """The response cache, when `cache.enabled`; built once Redis (if any) is connected."""

    cache: ResponseCache | None = None


class _Batches:
    """The batch store and runner, which exist once the lifespan has opened the database."""

    store: BatchStore
    runner: BatchRunner


def _default_backend(settings: Settings, redis: aioredis.Redis | None) -> ChatBackend:
    """The CLI pool, Redis workers (`pool.size: 0`), or both (`workers.overflow`)."""
    from adapters.claude_cli.backend import ClaudeCliBackend
    from adapters.redis_queue.backend import RedisQueueBackend
    from adapters.redis_queue.hybrid import OverflowBackend

    if redis is None:
        return ClaudeCliBackend(settings.claude, settings.pool)
    remote = RedisQueueBackend(
        redis,
        settings.redis.prefix,
        claim_timeout_s=settings.pool.queue_timeout_s,
        retry_after_s=settings.pool.retry_after_s,
        block_ms=max(int(settings.redis.timeout_s * 500), 50),
    )
    if settings.pool.size == 0:
        return remote
    if settings.workers.overflow:
        return OverflowBackend(ClaudeCliBackend(settings.claude, settings.pool), remote)
    return ClaudeCliBackend(settings.claude, settings.pool)


class Drain:
    """Set when the server begins to shut down: from then on no new request is admitted, while
    requests already running finish within `server.shutdown_grace_s`."""

    def __init__(self) -> None:
        self.started = False

    def begin(self) -> None:
        self.started = True


# Probes keep answering during a drain, so an orchestrator can see it happen.
_ALWAYS_OPEN = frozenset({"/health", "/metrics"})


def _refusing_while_draining(drain: Drain) -> Callable[[Request], Awaitable[None]]:
    async def before_request(request: Request) -> None:
        if drain.started and request.url.path not in _ALWAYS_OPEN:
            raise ShuttingDown("the server is shutting down; retry shortly or on another instance")

    return before_request


def create_app(settings: Settings, *, backend: ChatBackend | None = None, drain: Drain | None = None) -> Litestar:
    """Builds the app. `backend` defaults to the Claude CLI pool; tests may pass another.
    `drain` is begun by the command that runs the server when a shutdown signal arrives."""
    drain = drain or Drain()
    redis = connect(settings.redis) if settings.redis.url else None
    if backend is None:
        backend = _default_backend(settings, redis)
    router = ModelRouter(settings.models)
    routing = RequestRouter(router, settings.router)
    service = ChatService(backend, timeout_s=settings.server.request_timeout_s)
    metrics = Metrics()
    metering = Metering(settings, metrics=metrics)
    metrics.gauges.append(lambda: backend.health().get("pool") or {})
    batches = _Batches()
    caching = _Caching()

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        metering.open(redis)
        # Loading the tokenizer takes most of a second: do it now rather than in a first request.
        await asyncio.to_thread(count_tokens, "warm up")
        if settings.cache.enabled:
            caching.cache = (
                RedisCache(redis, settings.redis.prefix, ttl_s=settings.cache.ttl_s)
                if redis is not None
                else MemoryCache(ttl_s=settings.cache.ttl_s, max_entries=settings.cache.max_entries)
            )
        try:
            await backend.start()
            try:
                batches.store = BatchStore(metering.db, settings.storage.path)
                batches.runner = BatchRunner(
                    store=batches.store, metering=metering, routing=routing, chat=service, settings=settings
                )
                await batches.runner.start()
                try:
                    yield
                finally:
                    await batches.runner.close()
            finally:
                await backend.close()
        finally:
            metering.close()
            if redis is not None:
                await redis.aclose()

    return Litestar(
        route_handlers=[*routes, files_router(settings)],
        lifespan=[resources],
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "backend": Provide(lambda: backend, use_cache=True, sync_to_thread=False),
            "router": Provide(lambda: router, use_cache=True, sync_to_thread=False),
            "routing": Provide(lambda: routing, use_cache=True, sync_to_thread=False),
            "metering": Provide(lambda: metering, use_cache=True, sync_to_thread=False),
            # Every /v1 route that takes `principal` is authenticated before its body is read.
            "principal": Provide(authenticated_principal, sync_to_thread=False),
            "chat_parts": Provide(
                lambda: ChatParts(routing, service, metering, settings, caching.cache, metrics), sync_to_thread=False
            ),
            "metrics": Provide(lambda: metrics, use_cache=True, sync_to_thread=False),
            "batch_store": Provide(lambda: batches.store, use_cache=True, sync_to_thread=False),
            "batch_runner": Provide(lambda: batches.runner, use_cache=True, sync_to_thread=False),
            "chat": Provide(lambda: service, use_cache=True, sync_to_thread=False),
        },
        exception_handlers={Exception: handle_exception},
        before_send=[add_request_headers, timing_hook(metrics)],
        before_request=_refusing_while_draining(drain),
        request_max_body_size=settings.server.max_body_bytes,
        state=State({"settings": settings}),
        openapi_config=None,
        logging_config=None,  # logging is configured once, by the command that runs the server
        debug=False,
    )
