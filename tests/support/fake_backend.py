"""A scripted `ChatBackend` for in-process route tests.

Each job the app hands over is recorded in `jobs` and answered by a script: a list of steps,
each either a backend event (yielded) or an exception (raised when reached). So
`[RateLimited(...)]` fails before any event, and `[Started(...), TextDelta("hi"), RateLimited(...)]`
fails after some text. Scripts queued with `then(...)` are used one per job, in order; once they
run out, every job gets the default script. A script may also be a callable taking the job.

The app runs on the test client's event-loop thread while the test inspects `jobs` from its own;
appending to lists is atomic under the GIL, which is all the sharing there is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from core.types import (
    BackendEvent,
    Completed,
    CompletionJob,
    Started,
    TextDelta,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
)

Step = BackendEvent | BaseException
Script = list[Step] | Callable[[CompletionJob], list[Step]]

USAGE = TokenUsage(input_tokens=11, output_tokens=7, cache_read_tokens=100, cache_creation_tokens=20)


def reply(
    *texts: str, usage: TokenUsage = USAGE, finish_reason: str = "stop", cost_usd: float | None = None
) -> list[Step]:
    """A plain answer: Started, one TextDelta per piece, Completed with `usage`."""
    started = TokenUsage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_creation_tokens=usage.cache_creation_tokens,
    )
    return [
        Started(started),
        *(TextDelta(text) for text in texts),
        Completed(finish_reason=finish_reason, usage=usage, cost_usd=cost_usd),  # type: ignore[arg-type]
    ]


def tool_call(call_id: str, name: str, *argument_pieces: str, usage: TokenUsage = USAGE) -> list[Step]:
    """An answer that calls one tool, its JSON arguments arriving in pieces."""
    return [
        Started(TokenUsage(input_tokens=usage.input_tokens)),
        ToolCallStarted(index=0, id=call_id, name=name),
        *(ToolCallArguments(index=0, arguments=piece) for piece in argument_pieces),
        Completed(finish_reason="tool_calls", usage=usage),
    ]


class FakeBackend:
    """Records every `CompletionJob` and answers it from a script."""

    def __init__(self, script: Script | None = None) -> None:
        self.default: Script = script if script is not None else reply("Hello", " world")
        self.queued: deque[Script] = deque()
        self.jobs: list[CompletionJob] = []
        self.closed_streams: list[str] = []  # request ids of streams whose generator was closed
        self.started = False
        self.stopped = False
        self.plan_accounts: list[dict[str, Any]] = []  # what `accounts()` reports

    def then(self, *scripts: Script) -> FakeBackend:
        """Queues scripts for the next jobs, one each."""
        self.queued.extend(scripts)
        return self

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.stopped = True

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": "fake"}

    def accounts(self) -> list[dict[str, Any]]:
        return list(self.plan_accounts)

    def _script_for(self, job: CompletionJob) -> Iterable[Step]:
        script = self.queued.popleft() if self.queued else self.default
        return script(job) if callable(script) else list(script)

    def stream(self, job: CompletionJob) -> AsyncIterator[BackendEvent]:
        self.jobs.append(job)
        steps = self._script_for(job)
        return self._run(job, steps)

    async def _run(self, job: CompletionJob, steps: Iterable[Step]) -> AsyncIterator[BackendEvent]:
        try:
            for step in steps:
                if isinstance(step, BaseException):
                    raise step
                yield step
        finally:
            self.closed_streams.append(job.request_id)
