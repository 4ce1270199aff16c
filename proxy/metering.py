"""Admission and settlement of metered requests: rate limits, budget reservations, the ledger.

`Metering` is opened and closed by the app's lifespan; it owns the SQLite database and the
stores on it. `admit` runs before any CLI work and raises 429s; the returned `Admission` is
finished exactly once when the run is over, whatever the outcome.
"""

from __future__ import annotations

import logging
import time

import msgspec
import redis.asyncio as aioredis
import sqlite_utils

from adapters.router import Route
from core.types import TextBlock, ToolResultBlock, ToolUseBlock
from budgets.database import open_database
from budgets.guard import BudgetGuard, InProcessBudgetGuard, Reservation
from budgets.keys import KeyStore
from budgets.ledger import LedgerEntry, UsageLedger
from budgets.pricing import Price, cost_of, price_for, worst_case_cost
from budgets.ratelimit import InProcessRateLimiter, RateLimiter, RateTicket
from budgets.redis_limits import RedisBudgetGuard, RedisRateLimiter
from proxy.auth import FailedAuthLimiter, Principal
from proxy.chat.runner import Tally
from proxy.chat.service import to_usage
from proxy.chat.translate import Plan
from core.errors import ProxyError, StorageUnavailable
from proxy.metrics import Metrics
from proxy.settings import Settings
from core.tokens import count_tokens

log = logging.getLogger("claude_proxy.metering")


_json = msgspec.json.Encoder()
STORAGE_PROBE_INTERVAL_S = 1.0
IMAGE_TOKENS = 1600  # the most a 1.15-megapixel image costs; larger ones are scaled down upstream


def estimate_prompt_tokens(plan: Plan, overhead: int) -> int:
    texts = [plan.job.system]
    images = 0
    for tool in plan.job.tools:
        texts.append(_json.encode(tool).decode())
    for block in [block for turn in plan.job.history for block in turn.content] + plan.job.prompt:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            texts.append(block.name + _json.encode(block.input).decode())
        elif isinstance(block, ToolResultBlock):
            texts.extend(part.text for part in block.content)
        else:
            images += 1
    return count_tokens("\n".join(texts)) + images * IMAGE_TOKENS + overhead


class Admission:
    """A request that passed its limits and holds a budget reservation until `finish`."""

    def __init__(
        self,
        metering: "Metering",
        *,
        principal: Principal,
        route: Route,
        request_id: str,
        price: Price,
        reservation: Reservation,
        ticket: RateTicket,
    ) -> None:
        self.metering = metering
        self.principal = principal
        self.route = route
        self.request_id = request_id
        self.price = price
        self.reservation = reservation
        self.ticket = ticket
        self.started = time.perf_counter()
        self.finished = False

    @property
    def headers(self) -> dict[str, str]:
        return self.ticket.headers

    async def finish(self, tally: Tally, status: int) -> None:
        """Records the request and settles its reservation to the real cost. Never raises."""
        if self.finished:
            return
        self.finished = True
        usages = tally.usages()
        cli_cost = tally.cli_cost()
        if self.metering.settings.budgets.prefer_cli_cost and cli_cost is not None:
            cost, source = cli_cost, "cli"
        else:
            cost, source = sum(cost_of(usage, self.price) for usage in usages), "table"
        returned = to_usage(usages) if status == 200 else None
        try:
            self.metering.ledger.record(
                LedgerEntry(
                    request_id=self.request_id,
                    project=self.principal.project.name,
                    key_prefix=self.principal.key.prefix,
                    requested_model=self.route.requested,
                    resolved_model=self.route.claude_model,
                    input_tokens=sum(u.input_tokens for u in usages),
                    output_tokens=sum(u.output_tokens for u in usages),
                    cache_read_tokens=sum(u.cache_read_tokens for u in usages),
                    cache_creation_tokens=sum(u.cache_creation_tokens for u in usages),
                    prompt_tokens=returned.prompt_tokens if returned else 0,
                    completion_tokens=returned.completion_tokens if returned else 0,
                    cost_usd=cost,
                    cost_source=source,
                    latency_ms=int((time.perf_counter() - self.started) * 1000),
                    status=status,
                )
            )
            self.metering.storage_error = None
        except Exception as exc:  # noqa: BLE001 - a ledger failure must not keep the reservation
            log.exception("could not record usage of request %s", self.request_id)
            self.metering.storage_failed(exc)
        if self.metering.metrics is not None:
            self.metering.metrics.observe_completion(
                project=self.principal.project.name,
                model=self.route.requested,
                claude_model=self.route.claude_model,
                status=status,
                prompt=returned.prompt_tokens if returned else 0,
                completion=returned.completion_tokens if returned else 0,
                cost=cost,
            )
        try:
            await self.metering.guard.settle(self.reservation, cost)
            await self.metering.limiter.adjust(self.ticket, sum(u.prompt_tokens + u.output_tokens for u in usages))
        except ProxyError as exc:  # Redis gone: its reservations expire on their own
            log.error("could not settle request %s: %s", self.request_id, exc.message)


def cached_entry(principal: Principal, route: Route, request_id: str, usages: list) -> LedgerEntry:
    """The ledger row of an answer replayed from the cache: the caller's usage, no cost."""
    returned = to_usage(usages)
    return LedgerEntry(
        request_id=request_id,
        project=principal.project.name,
        key_prefix=principal.key.prefix,
        requested_model=route.requested,
        resolved_model=route.claude_model,
        prompt_tokens=returned.prompt_tokens,
        completion_tokens=returned.completion_tokens,
        cost_usd=0.0,
        cost_source="cache",
        status=200,
    )


class Metering:
    """Keys, ledger, budget guard and rate limiter over the database under `storage.path`."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.db: sqlite_utils.Database | None = None
        self.redis: aioredis.Redis | None = None
        self.keys: KeyStore
        self.ledger: UsageLedger
        self.guard: BudgetGuard
        self.limiter: RateLimiter
        # Set when the ledger could not be written; admissions are refused until a probe write works.
        self.storage_error: str | None = None
        self._probed_at = 0.0

    def open(self, redis: aioredis.Redis | None = None) -> None:
        """Opens the database; with a Redis client, limits and budgets are shared through it."""
        self.db = open_database(self.settings.storage.path)
        self.keys = KeyStore(self.db)
        self.auth_failures = FailedAuthLimiter(self.settings.auth.max_failures_per_minute)
        self.ledger = UsageLedger(self.db)
        self.redis = redis
        if redis is None:
            self.guard = InProcessBudgetGuard(self.ledger)
            self.limiter = InProcessRateLimiter()
        else:
            prefix = self.settings.redis.prefix
            hold = self.settings.server.request_timeout_s + 60
            self.guard = RedisBudgetGuard(redis, prefix, self.ledger, hold_s=hold)
            self.limiter = RedisRateLimiter(redis, prefix)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def storage_failed(self, exc: BaseException) -> None:
        self.storage_error = f"{type(exc).__name__}: {exc}"
        self._probed_at = time.monotonic()

    def check_storage(self) -> None:
        """Refuses work while the ledger cannot be written, probing at most once a second."""
        if self.storage_error is None:
            return
        if time.monotonic() - self._probed_at >= STORAGE_PROBE_INTERVAL_S:
            self._probed_at = time.monotonic()
            try:
                self.ledger.probe()
            except Exception as exc:  # noqa: BLE001 - any failure to write counts
                self.storage_failed(exc)
            else:
                log.warning("the usage ledger can be written again")
                self.storage_error = None
                return
        raise StorageUnavailable(
            f"the usage ledger cannot be written ({self.storage_error}); requests are refused until it can"
        )

    def record_cached(self, entry: LedgerEntry) -> None:
        """Records an answer replayed from the cache; one that cannot be recorded is not served."""
        self.check_storage()
        try:
            self.ledger.record(entry)
        except Exception as exc:  # noqa: BLE001 - any failure to write counts
            self.storage_failed(exc)
            raise StorageUnavailable(f"the usage ledger cannot be written ({self.storage_error})") from exc

    async def admit(self, principal: Principal, plan: Plan, route: Route, *, request_id: str) -> Admission:
        """Checks the ledger can be written, the key's rate limits, then reserves the worst-case
        cost; raises 503 and 429s."""
        self.check_storage()
        budgets = self.settings.budgets
        plan.job.owner = principal.project.name  # the job is bound to its project from here on
        prompt = estimate_prompt_tokens(plan, budgets.overhead_tokens)
        max_output = plan.job.max_output_tokens or budgets.default_max_tokens
        price = price_for(route.claude_model, budgets.prices)
        project = principal.project
        # The visible prefix keeps windows apart when hosts with separate databases share Redis.
        window = f"{principal.key.prefix}:{principal.key.id}"
        ticket = await self.limiter.admit(
            window, rpm=project.rpm, tpm=project.tpm, tokens=plan.n * (prompt + max_output)
        )
        try:
            reservation = await self.guard.reserve(project, plan.n * worst_case_cost(prompt, max_output, price))
        except Exception:
            await self.limiter.adjust(ticket, 0)  # refused requests spend no tokens
            raise
        return Admission(
            self,
            principal=principal,
            route=route,
            request_id=request_id,
            price=price,
            reservation=reservation,
            ticket=ticket,
        )
