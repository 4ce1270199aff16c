"""Admission and settlement of one request: rate limits, a budget reservation, the ledger row.

`AdmissionControl.admit` runs before any CLI work and raises 503 (ledger unwritable) and 429s
(rate limits, budget). The `Admission` it returns is settled exactly once when the run is over,
whatever the outcome, with a plain summary of what the upstream consumed.
"""

from __future__ import annotations

import base64
import logging
import time

import msgspec
from msgspec import Struct

from budgets.guard import BudgetGuard, Reservation
from budgets.keys import Principal
from budgets.ledger import LedgerEntry, UsageLedger
from budgets.overhead import OverheadCalibration
from budgets.pricing import Price, cost_of, price_for, worst_case_cost
from budgets.ratelimit import RateLimiter, RateTicket
from budgets.settings import BudgetSettings
from core.documents import pdf_pages
from core.errors import ProxyError
from core.tokens import count_tokens
from core.types import (
    CompletionJob,
    DocumentBlock,
    ImageBlock,
    ModelChoice,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    TokenUsage,
    ToolResultBlock,
    ToolUseBlock,
)

log = logging.getLogger("claude_proxy.admission")

_json = msgspec.json.Encoder()
IMAGE_TOKENS = 1600  # the most a 1.15-megapixel image costs; larger ones are scaled down upstream
# A PDF page is sent as its text and as an image: Anthropic puts it at 1,500 to 3,000 tokens.
PDF_PAGE_TOKENS = 3000


def estimate_prompt_tokens(job: CompletionJob, overhead: int) -> int:
    """What the job's prompt may cost in input tokens, counted before it runs."""
    return counted_prompt_tokens(job) + overhead


def counted_prompt_tokens(job: CompletionJob) -> int:
    """The job's prompt as the proxy can count it: the caller's text, tools and images, without
    what the CLI adds."""
    texts = [job.system]
    images = 0
    pdf_tokens = 0
    for tool in job.tools:
        texts.append(_json.encode(tool).decode())
    for block in [block for turn in job.history for block in turn.content] + job.prompt:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolUseBlock):
            texts.append(block.name + _json.encode(block.input).decode())
        elif isinstance(block, ToolResultBlock):
            texts.extend(part.text for part in block.content)
        elif isinstance(block, ThinkingBlock):
            texts.append(block.thinking)
        elif isinstance(block, RedactedThinkingBlock):
            texts.append(block.data)  # encrypted: its length is all there is to go by
        elif isinstance(block, ImageBlock):
            images += 1
        elif isinstance(block, DocumentBlock):
            if block.source.type == "text":
                texts.append(block.source.data)
            else:
                pdf_tokens += PDF_PAGE_TOKENS * (pdf_pages(base64.b64decode(block.source.data)) or 1)
    return count_tokens("\n".join(texts)) + images * IMAGE_TOKENS + pdf_tokens


class Spent(Struct, kw_only=True):
    """What a finished run consumed: the upstream's counts per choice and, when every choice ran
    to the CLI's result line, the CLI's own cost figure."""

    usages: list[TokenUsage]
    cli_cost: float | None = None

    @property
    def prompt_tokens(self) -> int:
        return sum(usage.prompt_tokens for usage in self.usages)

    @property
    def completion_tokens(self) -> int:
        return sum(usage.output_tokens for usage in self.usages)


class Settled(Struct, kw_only=True):
    """What was recorded: the cost charged and the tokens the caller was told about."""

    cost_usd: float
    prompt_tokens: int
    completion_tokens: int


class Admission:
    """A request that passed its limits and holds a budget reservation until `settle`."""

    def __init__(
        self,
        control: AdmissionControl,
        *,
        principal: Principal,
        model: ModelChoice,
        request_id: str,
        price: Price,
        reservation: Reservation,
        ticket: RateTicket,
        counted: int,
    ) -> None:
        self._control = control
        self._principal = principal
        self._model = model
        self._request_id = request_id
        self._price = price
        self._reservation = reservation
        self._ticket = ticket
        self._counted = counted
        self._started = time.perf_counter()
        self._settled: Settled | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The rate-limit headers of the response."""
        return self._ticket.headers

    async def settle(self, spent: Spent, status: int) -> Settled:
        """Records the request and settles its reservation to the real cost. Never raises; a
        second call returns the first result."""
        if self._settled is not None:
            return self._settled
        if self._control.settings.prefer_cli_cost and spent.cli_cost is not None:
            cost, source = spent.cli_cost, "cli"
        else:
            cost, source = sum(cost_of(usage, self._price) for usage in spent.usages), "table"
        ok = status == 200
        settled = self._settled = Settled(
            cost_usd=cost,
            prompt_tokens=spent.prompt_tokens if ok else 0,
            completion_tokens=spent.completion_tokens if ok else 0,
        )
        usages = spent.usages
        if ok:
            for usage in usages:
                self._control.overhead.observe(self._model.claude_model, self._counted, usage.prompt_tokens)
        try:
            self._control.ledger.record(
                LedgerEntry(
                    request_id=self._request_id,
                    project=self._principal.project.name,
                    key_prefix=self._principal.key.prefix,
                    requested_model=self._model.requested,
                    resolved_model=self._model.claude_model,
                    input_tokens=sum(u.input_tokens for u in usages),
                    output_tokens=sum(u.output_tokens for u in usages),
                    cache_read_tokens=sum(u.cache_read_tokens for u in usages),
                    cache_creation_tokens=sum(u.cache_creation_tokens for u in usages),
                    prompt_tokens=settled.prompt_tokens,
                    completion_tokens=settled.completion_tokens,
                    cost_usd=cost,
                    cost_source=source,
                    latency_ms=int((time.perf_counter() - self._started) * 1000),
                    status=status,
                )
            )
        except ProxyError:  # the ledger marked itself unwritable: new requests get 503
            log.exception("could not record usage of request %s", self._request_id)
        try:
            await self._control.guard.settle(self._reservation, cost)
            await self._control.limiter.adjust(self._ticket, sum(u.prompt_tokens + u.output_tokens for u in usages))
        except ProxyError as exc:  # Redis gone: its reservations expire on their own
            log.error("could not settle request %s: %s", self._request_id, exc.message)
        return settled


class AdmissionControl:
    """Admits requests against the key's rate limits and the project's budget, and records
    answers replayed from the cache. Built by the app's lifespan from its parts."""

    def __init__(
        self,
        *,
        ledger: UsageLedger,
        guard: BudgetGuard,
        limiter: RateLimiter,
        settings: BudgetSettings,
        overhead: OverheadCalibration | None = None,
    ) -> None:
        self.ledger = ledger
        self.guard = guard
        self.limiter = limiter
        self.settings = settings
        self.overhead = overhead or OverheadCalibration(settings)

    def estimated_prompt_tokens(self, job: CompletionJob) -> int:
        """The input-token estimate `admit` reserves for one run of `job`: what the proxy can
        count plus the overhead calibrated for the job's model."""
        return estimate_prompt_tokens(job, self.overhead.tokens(job.model))

    async def admit(
        self, principal: Principal, model: ModelChoice, job: CompletionJob, *, copies: int, request_id: str
    ) -> Admission:
        """Checks the ledger can be written and the key's rate limits, then reserves the
        worst-case cost of `copies` runs of `job`; raises 503 and 429s."""
        self.ledger.ensure_writable()
        counted = counted_prompt_tokens(job)
        prompt = counted + self.overhead.tokens(model.claude_model)
        max_output = job.max_output_tokens or self.settings.default_max_tokens
        price = price_for(model.claude_model, self.settings.prices)
        project = principal.project
        # The visible prefix keeps windows apart when hosts with separate databases share Redis.
        window = f"{principal.key.prefix}:{principal.key.id}"
        ticket = await self.limiter.admit(
            window, rpm=project.rpm, tpm=project.tpm, tokens=copies * (prompt + max_output)
        )
        try:
            reservation = await self.guard.reserve(project, copies * worst_case_cost(prompt, max_output, price))
        except Exception:
            await self.limiter.adjust(ticket, 0)  # refused requests spend no tokens
            raise
        return Admission(
            self,
            principal=principal,
            model=model,
            request_id=request_id,
            price=price,
            reservation=reservation,
            ticket=ticket,
            counted=counted,
        )

    def record_cached(self, principal: Principal, model: ModelChoice, request_id: str, spent: Spent) -> None:
        """Records an answer replayed from the cache (the caller's usage, no cost); one that
        cannot be recorded is not served (raises 503)."""
        self.ledger.ensure_writable()
        self.ledger.record(
            LedgerEntry(
                request_id=request_id,
                project=principal.project.name,
                key_prefix=principal.key.prefix,
                requested_model=model.requested,
                resolved_model=model.claude_model,
                prompt_tokens=spent.prompt_tokens,
                completion_tokens=spent.completion_tokens,
                cost_usd=0.0,
                cost_source="cache",
                status=200,
            )
        )
