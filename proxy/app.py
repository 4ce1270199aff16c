"""`create_app`: the Litestar application built from explicit parts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException

from adapters.models import ModelAliases
from adapters.protocol import ChatBackend
from budgets.admission import AdmissionControl
from budgets.database import open_database
from budgets.guard import BudgetGuard, InProcessBudgetGuard
from budgets.keys import KeyStore, Principal
from budgets.ledger import UsageLedger
from budgets.ratelimit import InProcessRateLimiter, RateLimiter
from budgets.redis_limits import RedisBudgetGuard, RedisRateLimiter
from budgets.reports import LedgerReports
from core.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ProxyError,
    RequestTooLarge,
    ShuttingDown,
)
from core.redis_conn import connect
from core.tokens import count_tokens
from proxy.auth import AdminAccess, FailedAuthLimiter, authenticate, require_admin
from proxy.batches.runner import BatchRunner
from proxy.batches.store import BatchStore
from proxy.cache import MemoryCache, RedisCache, ResponseCache
from proxy.messages.errors import anthropic_headers, anthropic_status, error_body, is_anthropic_path
from proxy.metrics import Metrics, timing_hook
from proxy.pipeline import Pipeline
from proxy.plan_gate import PlanGate
from proxy.request_ids import add_request_headers, request_id
from proxy.responses.background import BackgroundResponses
from proxy.responses.store import ResponseStore
from proxy.routes import files_router, routes
from proxy.selection import ModelSelector
from proxy.settings import Settings
from proxy.ui import ui_headers, ui_router
from proxy.wire.chat_response import encoder

log = logging.getLogger("claude_proxy")

_JSON = "application/json"


def _error_response(error: ProxyError, *, anthropic: bool = False) -> Response[bytes]:
    if anthropic:
        return Response(
            content=encoder.encode(error_body(error)),
            status_code=anthropic_status(error),
            media_type=_JSON,
            headers=anthropic_headers(error.headers),
        )
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
    """The one place where exceptions become error responses: OpenAI's shape, or Anthropic's
    on the Messages routes (and on the model routes for a caller that sends `anthropic-version`)."""
    if isinstance(exc, ProxyError):
        error = exc
    elif isinstance(exc, HTTPException):
        error = _translate_http_exception(request, exc)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = ProxyError("The server had an error while processing your request.")
    return _error_response(error, anthropic=is_anthropic_path(request.url.path, request.headers))


def authenticated_principal(
    request: Request[Any, Any, Any], keys: KeyStore, auth_failures: FailedAuthLimiter
) -> Principal:
    """The `principal` dependency: the caller's project and key (401/429 otherwise)."""
    request_id(request.scope)
    return authenticate(request, keys, auth_failures)


def admin_access(
    request: Request[Any, Any, Any], keys: KeyStore, auth_failures: FailedAuthLimiter, settings: Settings
) -> AdminAccess:
    """The `admin` dependency: the caller presented `auth.admin_key` (401/403/429 otherwise)."""
    request_id(request.scope)
    require_admin(request, settings.auth.admin_key, keys, auth_failures)
    return AdminAccess()


class _Resources:
    """What the lifespan opens, for the dependencies to hand out; each is set before the app
    takes its first request and stays until the lifespan closes it."""

    keys: KeyStore
    ledger: UsageLedger
    reports: LedgerReports
    guard: BudgetGuard
    pipeline: Pipeline
    batch_store: BatchStore
    batch_runner: BatchRunner
    response_store: ResponseStore
    background: BackgroundResponses


def _default_backend(settings: Settings, redis: aioredis.Redis | None) -> ChatBackend:
    """The CLI pool, Redis workers (`pool.size: 0`), or both (`workers.overflow`)."""
    from adapters.claude_cli.backend import ClaudeCliBackend
    from adapters.redis_queue.backend import RedisQueueBackend
    from adapters.redis_queue.hybrid import OverflowBackend

    if redis is None:
        return ClaudeCliBackend(settings.claude, settings.pool, accounts=settings.accounts, plan=settings.plan)
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
        return OverflowBackend(
            ClaudeCliBackend(settings.claude, settings.pool, accounts=settings.accounts, plan=settings.plan), remote
        )
    return ClaudeCliBackend(settings.claude, settings.pool, accounts=settings.accounts, plan=settings.plan)


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
    chat_backend = backend if backend is not None else _default_backend(settings, redis)
    aliases = ModelAliases(settings.models)
    selector = ModelSelector(aliases, settings.router)
    metrics = Metrics()
    auth_failures = FailedAuthLimiter(settings.auth.max_failures_per_minute)
    metrics.gauges.append(lambda: chat_backend.health().get("pool") or {})
    metrics.accounts = chat_backend.accounts
    gate = PlanGate(chat_backend.accounts, settings.plan.batch_max_utilization, poll_s=settings.batches.poll_s)
    opened = _Resources()

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        db = open_database(settings.storage.path)
        opened.keys = KeyStore(db)
        opened.ledger = ledger = UsageLedger(db)
        opened.reports = LedgerReports(db)
        guard: BudgetGuard
        limiter: RateLimiter
        if redis is None:
            guard, limiter = InProcessBudgetGuard(ledger), InProcessRateLimiter()
        else:
            hold = settings.server.request_timeout_s + 60
            guard = RedisBudgetGuard(redis, settings.redis.prefix, ledger, hold_s=hold)
            limiter = RedisRateLimiter(redis, settings.redis.prefix)
        opened.guard = guard
        # Loading the tokenizer takes most of a second: do it now rather than in a first request.
        await asyncio.to_thread(count_tokens, "warm up")
        opened.pipeline = Pipeline(
            selector=selector,
            backend=chat_backend,
            admission=AdmissionControl(ledger=ledger, guard=guard, limiter=limiter, settings=settings.budgets),
            timeout_s=settings.server.request_timeout_s,
            default_max_tokens=settings.budgets.default_max_tokens,
            cache=_response_cache(settings, redis),
            metrics=metrics,
        )
        try:
            await chat_backend.start()
            try:
                opened.batch_store = BatchStore(db, settings.storage.path)
                opened.response_store = ResponseStore(db)
                opened.batch_runner = BatchRunner(
                    store=opened.batch_store,
                    keys=opened.keys,
                    pipeline=opened.pipeline,
                    settings=settings.batches,
                    images=settings.images,
                    gate=gate,
                )
                await opened.batch_runner.start()
                opened.background = BackgroundResponses(opened.response_store, opened.pipeline, gate)
                try:
                    yield
                finally:
                    await opened.background.close()
                    await opened.batch_runner.close()
            finally:
                await chat_backend.close()
        finally:
            db.close()
            if redis is not None:
                await redis.aclose()

    def provide(value: Callable[[], Any]) -> Provide:
        return Provide(value, use_cache=True, sync_to_thread=False)

    return Litestar(
        route_handlers=[*routes, files_router(settings), *ui_router(settings.auth.admin_key)],
        lifespan=[resources],
        dependencies={
            "settings": provide(lambda: settings),
            "backend": provide(lambda: chat_backend),
            "aliases": provide(lambda: aliases),
            "selector": provide(lambda: selector),
            "metrics": provide(lambda: metrics),
            "redis": provide(lambda: redis),
            "auth_failures": provide(lambda: auth_failures),
            "keys": provide(lambda: opened.keys),
            "ledger": provide(lambda: opened.ledger),
            "reports": provide(lambda: opened.reports),
            "guard": provide(lambda: opened.guard),
            "pipeline": provide(lambda: opened.pipeline),
            "batch_store": provide(lambda: opened.batch_store),
            "batch_runner": provide(lambda: opened.batch_runner),
            "response_store": provide(lambda: opened.response_store),
            "background": provide(lambda: opened.background),
            # Every /v1 route that takes `principal` is authenticated before its body is read.
            "principal": Provide(authenticated_principal, sync_to_thread=False),
            # Every /admin route takes `admin`, which checks the admin key first.
            "admin": Provide(admin_access, sync_to_thread=False),
        },
        exception_handlers={Exception: handle_exception},
        before_send=[add_request_headers, timing_hook(metrics), ui_headers],
        before_request=_refusing_while_draining(drain),
        request_max_body_size=settings.server.max_body_bytes,
        state=State({"settings": settings}),
        openapi_config=None,
        logging_config=None,  # logging is configured once, by the command that runs the server
        debug=False,
    )


def _response_cache(settings: Settings, redis: aioredis.Redis | None) -> ResponseCache | None:
    """The response cache, when `cache.enabled`: in Redis when there is one, else in memory."""
    if not settings.cache.enabled:
        return None
    if redis is not None:
        return RedisCache(redis, settings.redis.prefix, ttl_s=settings.cache.ttl_s)
    return MemoryCache(ttl_s=settings.cache.ttl_s, max_entries=settings.cache.max_entries)
