"""The one path every request takes: plan, admit, cache, run, settle.

Surfaces (chat completions, legacy completions, batch lines, the WebSocket) decode their own
request into a `Submission`, call `Pipeline.run`, and render the `Outcome`. Whatever happens to
the run (an answer, an error, a caller who went away), the admission is settled exactly once,
from the `finally` of the code that ran it, and shielded from cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from msgspec import Struct

from adapters.protocol import ChatBackend
from budgets.admission import Admission, AdmissionControl, Spent
from budgets.keys import Principal
from core.errors import ProxyError
from core.types import Priority
from proxy.cache import ResponseCache, cache_key
from proxy.metrics import Metrics
from proxy.pipeline.results import (
    Outcome,
    RunResult,
    StreamEvent,
    answer_to_cache,
    replayed_events,
    replayed_result,
    result_from,
)
from proxy.pipeline.run import RunEnded, Tally, run_choices
from proxy.pipeline.submission import Plan, Submission
from proxy.selection import ModelSelector

log = logging.getLogger("claude_proxy.pipeline")

CLIENT_CLOSED = 499  # the status recorded for a request whose caller went away

Settle = Callable[[Tally, int], Awaitable[None]]


class CacheUse(Struct, frozen=True):
    """How one request may use the response cache (when the operator turned it on)."""

    read: bool = True
    write: bool = True

    @classmethod
    def from_header(cls, cache_control: str) -> CacheUse:
        """`Cache-Control: no-cache` skips the lookup; `no-store` keeps the answer out."""
        directives = cache_control.lower()
        return cls(read="no-cache" not in directives, write="no-store" not in directives)


NO_CACHE = CacheUse(read=False, write=False)


def _status(exc: BaseException) -> int:
    return exc.status if isinstance(exc, ProxyError) else CLIENT_CLOSED


class Pipeline:
    """Runs submissions for their callers. One per app, built by the lifespan from its parts."""

    def __init__(
        self,
        *,
        selector: ModelSelector,
        backend: ChatBackend,
        admission: AdmissionControl,
        timeout_s: float,
        default_max_tokens: int,
        cache: ResponseCache | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._selector = selector
        self._backend = backend
        self._admission = admission
        self._timeout_s = timeout_s
        self._default_max_tokens = default_max_tokens
        self._cache = cache
        self._metrics = metrics

    def plan(self, submission: Submission, principal: Principal, *, request_id: str, priority: int) -> Plan:
        """Resolves the model and builds the job; raises 4xx for what cannot run."""
        selection = self._selector.decide(submission.model, submission.features)
        return Plan.make(
            submission,
            selection,
            principal=principal,
            request_id=request_id,
            priority=priority,
            default_max_tokens=self._default_max_tokens,
        )

    def input_tokens(self, submission: Submission, principal: Principal, *, request_id: str) -> int:
        """The prompt's input tokens as admission estimates them, without running anything:
        the same figure the budget and the tokens-per-minute limit reserve."""
        plan = self.plan(submission, principal, request_id=request_id, priority=Priority.INTERACTIVE)
        return self._admission.estimated_prompt_tokens(plan.job)

    async def run(
        self,
        submission: Submission,
        principal: Principal,
        *,
        request_id: str,
        priority: int = Priority.INTERACTIVE,
        cache: CacheUse = NO_CACHE,
    ) -> Outcome:
        """Plans, admits and runs one request, or replays it from the cache. A streamed run is
        started and its first event awaited, so failures before any output (queue full,
        upstream 429, no CLI) are raised here, as plain HTTP errors."""
        plan = self.plan(submission, principal, request_id=request_id, priority=priority)
        choice = plan.selection.choice
        headers = {"x-claude-model": choice.claude_model}
        key = None
        if self._cache is not None and (cache.read or cache.write):
            key = cache_key(principal.project.name, plan.job, n=plan.n, stops=plan.stops, sampling=plan.sampling)
            hit = await self._cache.get(key) if cache.read else None
            if self._metrics is not None:
                self._metrics.cache["hit" if hit is not None else "miss"] += 1
            if hit is not None:
                self._admission.record_cached(principal, choice, request_id, Spent(usages=hit.usage))
                headers["x-cache"] = "hit"
                if plan.stream:
                    return Outcome(plan, headers, events=replayed_events(hit))
                return Outcome(plan, headers, result=replayed_result(hit))
            headers["x-cache"] = "miss"
            if not cache.write:
                key = None
        admission = await self._admission.admit(principal, choice, plan.job, copies=plan.n, request_id=request_id)
        headers.update(admission.headers)

        async def settle(tally: Tally, status: int) -> None:
            await self._settle(plan, principal, admission, key, tally, status)

        tally = Tally(plan.n)
        if plan.stream:
            events = await self._open_stream(plan, tally, settle)
            _process_header(headers, tally)  # the choices that started by the first event
            return Outcome(plan, headers, events=events)
        result = await self._complete(plan, tally, settle)
        _process_header(headers, tally)
        return Outcome(plan, headers, result=result)

    def _run(self, plan: Plan, tally: Tally) -> AsyncGenerator[StreamEvent, None]:
        return run_choices(
            self._backend, plan.job, stops=plan.stops, timeout_s=self._timeout_s, tally=tally, streamed=plan.stream
        )

    async def _complete(self, plan: Plan, tally: Tally, settle: Settle) -> RunResult:
        events = self._run(plan, tally)
        status = 200
        try:
            async for _ in events:
                pass  # the tally keeps what each choice produced
        except BaseException as exc:
            status = _status(exc)
            raise
        finally:
            await events.aclose()
            await asyncio.shield(settle(tally, status))
        return result_from(tally)

    async def _open_stream(self, plan: Plan, tally: Tally, settle: Settle) -> AsyncGenerator[StreamEvent, None]:
        events = self._stream(plan, tally, settle)
        # A failure here has finished the generator, and its `finally` has settled.
        first = await events.__anext__()
        return _prepend(first, events)

    async def _stream(self, plan: Plan, tally: Tally, settle: Settle) -> AsyncGenerator[StreamEvent, None]:
        events = self._run(plan, tally)
        status = CLIENT_CLOSED
        try:
            async for event in events:
                yield event
            status = 200
            yield RunEnded(tally.usages())
        except ProxyError as exc:
            status = exc.status
            raise
        finally:
            await events.aclose()
            await asyncio.shield(settle(tally, status))

    async def _settle(
        self, plan: Plan, principal: Principal, admission: Admission, key: str | None, tally: Tally, status: int
    ) -> None:
        spent = Spent(usages=tally.usages(), cli_cost=tally.cli_cost(), account=tally.account())
        settled = await admission.settle(spent, status)
        choice = plan.selection.choice
        if self._metrics is not None:
            self._metrics.observe_completion(
                project=principal.project.name,
                model=choice.requested,
                claude_model=choice.claude_model,
                status=status,
                prompt=settled.prompt_tokens,
                completion=settled.completion_tokens,
                cost=settled.cost_usd,
            )
            for ran in tally.choices:
                if ran.process is not None:
                    self._metrics.observe_process(ran.process, ran.seconds)
        answer = answer_to_cache(tally) if key is not None and status == 200 else None
        if self._cache is not None and key is not None and answer is not None:
            try:
                await self._cache.put(key, answer)
            except ProxyError as exc:  # a cache that cannot be written is only a missed saving
                log.warning("could not store a response in the cache: %s", exc.message)


PROCESS_HEADER = "x-claude-proxy-process"


def _process_header(headers: dict[str, str], tally: Tally) -> None:
    """How the backend found each choice's process (`core.types.PROCESS_PATHS`), comma-separated
    in choice order. It names a path and nothing else: no process, project or count."""
    processes = tally.processes()
    if processes:
        headers[PROCESS_HEADER] = ",".join(processes)


async def _prepend(first: StreamEvent, rest: AsyncGenerator[StreamEvent, None]) -> AsyncGenerator[StreamEvent, None]:
    try:
        yield first
        async for event in rest:
            yield event
    finally:
        await rest.aclose()
