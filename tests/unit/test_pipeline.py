"""proxy.pipeline.Pipeline on a scripted backend and a real SQLite ledger: every way a run can end
settles its admission exactly once, with the status and usage the ledger should hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from adapters.models import ModelAliases
from adapters.protocol import ChatBackend
from budgets.admission import AdmissionControl
from budgets.database import open_database
from budgets.guard import InProcessBudgetGuard
from budgets.keys import ApiKey, Principal, Project
from budgets.ledger import UsageLedger
from budgets.pricing import DEFAULT_PRICES, cost_of
from budgets.ratelimit import InProcessRateLimiter
from budgets.settings import BudgetSettings
from core.errors import InsufficientQuota, RateLimited, UpstreamError
from core.types import BackendEvent, Completed, CompletionJob, Priority, Started, TextBlock, TextDelta, TokenUsage
from proxy.cache import MemoryCache
from proxy.metrics import Metrics
from proxy.pipeline import CacheUse, ChoiceDone, ChoiceText, Pipeline, RunEnded, Submission
from proxy.pipeline.run import EVENTS_BUFFERED
from proxy.selection import ModelSelector
from proxy.settings import RouterSettings

USAGE = TokenUsage(input_tokens=10, output_tokens=3)


class ScriptedBackend:
    """Yields `events` for every job, then raises `fail` if set; records the jobs it ran and
    whether each stream was closed."""

    def __init__(self, events: list[BackendEvent], fail: Exception | None = None, hold: bool = False) -> None:
        self.events = events
        self.fail = fail
        self.hold = hold  # wait forever after the events, like a model still writing
        self.jobs: list[CompletionJob] = []
        self.started = asyncio.Event()
        self.closed = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> dict[str, Any]:
        return {}

    async def stream(self, job: CompletionJob) -> AsyncGenerator[BackendEvent, None]:
        self.jobs.append(job)
        self.started.set()
        try:
            for event in self.events:
                yield event
            if self.fail is not None:
                raise self.fail
            if self.hold:
                await asyncio.Event().wait()
        finally:
            self.closed += 1


def answer(text: str = "Hello") -> list[BackendEvent]:
    return [Started(TokenUsage(input_tokens=10)), TextDelta(text), Completed(finish_reason="stop", usage=USAGE)]


PRINCIPAL = Principal(
    project=Project(name="team", budget_usd=10.0), key=ApiKey(id=1, project="team", prefix="sk-cp-team", created_at=0)
)


@pytest.fixture
def ledger(tmp_path: Path) -> UsageLedger:
    return UsageLedger(open_database(tmp_path))


def pipeline(
    backend: ChatBackend, ledger: UsageLedger, *, cache: MemoryCache | None = None, metrics: Metrics | None = None
) -> Pipeline:
    admission = AdmissionControl(
        ledger=ledger, guard=InProcessBudgetGuard(ledger), limiter=InProcessRateLimiter(), settings=BudgetSettings()
    )
    return Pipeline(
        selector=ModelSelector(ModelAliases({"gpt-4o": "sonnet"}), RouterSettings()),
        backend=backend,
        admission=admission,
        timeout_s=5.0,
        default_max_tokens=100,
        cache=cache,
        metrics=metrics,
    )


def submission(**fields: Any) -> Submission:
    return Submission(model="gpt-4o", system="", history=[], prompt=[TextBlock("Hi")], **fields)


def rows(ledger: UsageLedger) -> list[dict[str, Any]]:
    return list(ledger.db.query("select status, prompt_tokens, completion_tokens, cost_usd, cost_source from usage"))


def test_a_plain_run_plans_the_job_and_settles_once(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer())
    outcome = asyncio.run(pipeline(backend, ledger).run(submission(), PRINCIPAL, request_id="req-1"))
    assert outcome.result is not None
    assert [choice.text for choice in outcome.result.choices] == ["Hello"]
    assert outcome.headers["x-claude-model"] == "sonnet"
    job = backend.jobs[0]
    # Owner, priority, request id and the default output limit are planned, not patched later.
    assert (job.model, job.owner, job.priority, job.request_id, job.max_output_tokens) == (
        "sonnet",
        "team",
        Priority.INTERACTIVE,
        "req-1",
        100,
    )
    assert rows(ledger) == [
        {
            "status": 200,
            "prompt_tokens": 10,
            "completion_tokens": 3,
            "cost_usd": pytest.approx(cost_of(USAGE, DEFAULT_PRICES["sonnet"])),
            "cost_source": "table",
        }
    ]


def test_the_process_path_the_backend_reports_is_a_header_and_a_metric(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(
        [
            Started(TokenUsage(input_tokens=10), process="rewound"),
            TextDelta("Hi"),
            Completed(finish_reason="stop", usage=USAGE, process="rewound"),
        ]
    )
    metrics = Metrics()
    outcome = asyncio.run(pipeline(backend, ledger, metrics=metrics).run(submission(n=2), PRINCIPAL, request_id="r"))
    assert outcome.headers["x-claude-proxy-process"] == "rewound,rewound"  # one per choice
    text = metrics.render()
    assert 'claude_proxy_process_paths_total{process="rewound"} 2' in text
    assert 'claude_proxy_process_duration_seconds_count{process="rewound"} 2' in text


def test_a_stream_names_its_process_path_when_its_first_event_arrives(ledger: UsageLedger) -> None:
    backend = ScriptedBackend([Started(TokenUsage(input_tokens=10), process="warm"), TextDelta("Hi")], hold=True)
    metrics = Metrics()

    async def read_one_and_leave() -> dict[str, str]:
        outcome = await pipeline(backend, ledger, metrics=metrics).run(
            submission(stream=True), PRINCIPAL, request_id="r"
        )
        assert outcome.events is not None
        await outcome.events.aclose()
        return outcome.headers

    assert asyncio.run(read_one_and_leave())["x-claude-proxy-process"] == "warm"
    text = metrics.render()
    # Counted, but a choice that never ended has no duration.
    assert 'claude_proxy_process_paths_total{process="warm"} 1' in text
    assert "claude_proxy_process_duration_seconds_count" not in text


def test_a_backend_that_names_no_process_sends_no_header(ledger: UsageLedger) -> None:
    outcome = asyncio.run(pipeline(ScriptedBackend(answer()), ledger).run(submission(), PRINCIPAL, request_id="r"))
    assert "x-claude-proxy-process" not in outcome.headers


def test_a_batch_priority_reaches_the_job(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer())
    asyncio.run(pipeline(backend, ledger).run(submission(), PRINCIPAL, request_id="r", priority=Priority.BATCH))
    assert backend.jobs[0].priority == Priority.BATCH


def test_a_failure_before_any_output_is_raised_and_recorded_with_its_status(ledger: UsageLedger) -> None:
    backend = ScriptedBackend([], fail=RateLimited("upstream 429", retry_after=3))
    with pytest.raises(RateLimited):
        asyncio.run(pipeline(backend, ledger).run(submission(stream=True), PRINCIPAL, request_id="r"))
    assert [row["status"] for row in rows(ledger)] == [429]
    assert backend.closed == 1


def test_a_stream_read_to_its_end_settles_200_after_the_last_event(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer("Hi there"))

    async def read() -> list[Any]:
        outcome = await pipeline(backend, ledger).run(submission(stream=True), PRINCIPAL, request_id="r")
        assert outcome.events is not None
        seen = []
        async for event in outcome.events:
            seen.append(event)
            assert rows(ledger) == []  # nothing is settled while the caller still reads
        return seen

    seen = asyncio.run(read())
    assert [type(event) for event in seen] == [ChoiceText, ChoiceDone, RunEnded]
    assert seen[-1].usages == [USAGE]
    assert [row["status"] for row in rows(ledger)] == [200]


def test_a_failure_mid_stream_is_raised_from_the_events_and_recorded(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer()[:2], fail=UpstreamError("the stream broke"))

    async def read() -> list[Any]:
        outcome = await pipeline(backend, ledger).run(submission(stream=True), PRINCIPAL, request_id="r")
        assert outcome.events is not None
        seen = []
        with pytest.raises(UpstreamError):
            async for event in outcome.events:
                seen.append(event)
        return seen

    assert [type(event) for event in asyncio.run(read())] == [ChoiceText]
    assert [row["status"] for row in rows(ledger)] == [502]
    assert backend.closed == 1


def test_a_caller_who_stops_reading_costs_nothing_more(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer()[:2], hold=True)

    async def read_one_and_leave() -> None:
        outcome = await pipeline(backend, ledger).run(submission(stream=True), PRINCIPAL, request_id="r")
        assert outcome.events is not None
        first = await outcome.events.__anext__()
        assert isinstance(first, ChoiceText)
        await outcome.events.aclose()

    asyncio.run(read_one_and_leave())
    assert backend.closed == 1  # the backend's stream, and so its CLI process, was released
    [row] = rows(ledger)
    assert row["status"] == 499
    assert row["cost_usd"] > 0  # what the upstream produced until then is charged


def test_a_cancelled_plain_run_settles_as_client_closed(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer()[:2], hold=True)

    async def cancel_midway() -> None:
        task = asyncio.create_task(pipeline(backend, ledger).run(submission(), PRINCIPAL, request_id="r"))
        async with asyncio.timeout(5):
            await backend.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert [row["status"] for row in rows(ledger)] == [499]
    assert backend.closed == 1


def test_an_empty_budget_refuses_before_the_backend_runs(ledger: UsageLedger) -> None:
    broke = Principal(project=Project(name="broke", budget_usd=0.0), key=PRINCIPAL.key)
    backend = ScriptedBackend(answer())
    with pytest.raises(InsufficientQuota):
        asyncio.run(pipeline(backend, ledger).run(submission(), broke, request_id="r"))
    assert backend.jobs == []
    assert rows(ledger) == []


def test_the_cache_replays_a_finished_answer_and_skips_what_may_not_be_read(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer("cached"))
    cache = MemoryCache(ttl_s=60, max_entries=10)
    runner = pipeline(backend, ledger, cache=cache)

    async def three() -> list[Any]:
        first = await runner.run(submission(), PRINCIPAL, request_id="a", cache=CacheUse())
        second = await runner.run(submission(stream=True), PRINCIPAL, request_id="b", cache=CacheUse())
        assert second.events is not None
        replayed = [event async for event in second.events]
        third = await runner.run(submission(), PRINCIPAL, request_id="c", cache=CacheUse.from_header("no-cache"))
        return [first.headers["x-cache"], replayed, third.headers["x-cache"]]

    first, replayed, third = asyncio.run(three())
    assert first == "miss" and third == "miss"
    assert [type(event) for event in replayed] == [ChoiceText, ChoiceDone, RunEnded]
    assert replayed[0].text == "cached"
    assert len(backend.jobs) == 2  # the replay ran nothing
    assert [row["cost_source"] for row in rows(ledger)] == ["table", "cache", "table"]


def test_sampling_parameters_keep_cache_entries_apart(ledger: UsageLedger) -> None:
    backend = ScriptedBackend(answer())
    runner = pipeline(backend, ledger, cache=MemoryCache(ttl_s=60, max_entries=10))

    async def two() -> None:
        await runner.run(submission(sampling={"temperature": 0}), PRINCIPAL, request_id="a", cache=CacheUse())
        await runner.run(submission(sampling={"temperature": 1}), PRINCIPAL, request_id="b", cache=CacheUse())

    asyncio.run(two())
    assert len(backend.jobs) == 2


class Endless:
    """A backend whose model never stops writing; counts what it produced."""

    def __init__(self) -> None:
        self.produced = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def health(self) -> dict[str, Any]:
        return {}

    async def stream(self, job: CompletionJob) -> AsyncGenerator[BackendEvent, None]:
        yield Started(TokenUsage(input_tokens=1))
        while True:
            self.produced += 1
            yield TextDelta("x" * 1000)
            await asyncio.sleep(0)  # as a real stream does between reads


def test_a_caller_who_does_not_read_holds_back_the_backend(ledger: UsageLedger) -> None:
    backend = Endless()

    async def read_one_then_stall() -> tuple[int, int]:
        runner = pipeline(ScriptedBackend([]), ledger)
        runner._backend = backend  # the same pipeline, on the endless backend
        outcome = await runner.run(submission(stream=True), PRINCIPAL, request_id="r")
        assert outcome.events is not None
        await outcome.events.__anext__()
        # Give the backend every chance to run ahead of the caller.
        for _ in range(2000):
            await asyncio.sleep(0)
        stalled = backend.produced
        for _ in range(2000):
            await asyncio.sleep(0)
        await outcome.events.aclose()
        return stalled, backend.produced

    stalled, later = asyncio.run(read_one_then_stall())
    assert stalled == later  # it waits for the caller instead of piling answers up in memory
    assert stalled <= EVENTS_BUFFERED + 2
