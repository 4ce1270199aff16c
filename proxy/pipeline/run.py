"""Runs the n choices of a request on the backend and merges their events in arrival order.

Stop sequences are cut here. Every choice runs in its own task; closing the merged iterator
(the caller disconnected, the deadline passed) cancels them, which closes each backend stream
and so kills its CLI process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import msgspec
from msgspec import Struct

from adapters.protocol import ChatBackend
from budgets.ledger import DEFAULT_ACCOUNT
from core.errors import ProxyError, RequestTimeout, UpstreamError
from core.tokens import count_tokens
from core.types import (
    Completed,
    CompletionJob,
    RedactedThinking,
    RedactedThinkingBlock,
    Retracted,
    Started,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ThinkingEvent,
    ThinkingSigned,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
)
from proxy.pipeline.stops import StopCutter

EVENTS_BUFFERED = 32  # per request, between its choices and its caller


class ChoiceText(Struct):
    index: int
    text: str


class ChoiceTool(Struct):
    """A tool call starting (`part` is ToolCallStarted) or a piece of its arguments."""

    index: int
    part: ToolCallStarted | ToolCallArguments


class ChoiceThinking(Struct):
    """A piece of the model's thinking (`part`), before the answer's text."""

    index: int
    part: ThinkingEvent


class ChoiceDone(Struct):
    index: int
    completed: Completed
    stop_sequence: str | None = None  # the caller's stop sequence that ended the text, if one did


class ChoiceFailed(Struct):
    index: int
    error: ProxyError


class RunEnded(Struct):
    """Every choice finished; `usages` holds what each consumed."""

    usages: list[TokenUsage]


ChoiceEvent = ChoiceText | ChoiceThinking | ChoiceTool | ChoiceDone


class ChoiceTally:
    """What one choice consumed so far; read after the run, also when it was cut off."""

    __slots__ = (
        "completed",
        "emitted",
        "process",
        "produced",
        "seconds",
        "started",
        "stop_sequence",
        "thinking",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.started: TokenUsage | None = None
        self.process: str | None = None  # how the backend found its process, when it says
        self.seconds: float | None = None  # from the choice's start to its end, when it ended
        self.produced: list[str] = []  # everything the model wrote
        self.emitted: list[str] = []  # what the caller was given (stop sequences cut)
        self.completed: Completed | None = None
        self.tool_calls: list[tuple[str, str, list[str]]] = []  # (id, name, argument pieces)
        self.stop_sequence: str | None = None
        self.thinking: list[ThinkingBlock | RedactedThinkingBlock] = []  # as the upstream sent them

    def think(self, part: ThinkingEvent) -> None:
        add_thinking(self.thinking, part)

    @property
    def reasoning(self) -> str:
        return readable_thinking(self.thinking)

    def usage(self) -> TokenUsage:
        if self.completed is not None:
            return self.completed.usage
        if self.started is None:
            return TokenUsage()
        # Cut off before the upstream reported its count: estimate what it generated.
        return msgspec.structs.replace(self.started, output_tokens=count_tokens("".join(self.produced)))


def add_thinking(blocks: list[ThinkingBlock | RedactedThinkingBlock], part: ThinkingEvent) -> None:
    """Adds a piece of thinking to the blocks it belongs to."""
    if isinstance(part, RedactedThinking):
        blocks.append(RedactedThinkingBlock(part.data))
        return
    last = blocks[-1] if blocks else None
    if not isinstance(last, ThinkingBlock) or (isinstance(part, ThinkingDelta) and part.first):
        last = ThinkingBlock(thinking="", signature="")
        blocks.append(last)
    if isinstance(part, ThinkingSigned):
        last.signature += part.signature
    else:
        last.thinking += part.text


def readable_thinking(blocks: list[ThinkingBlock | RedactedThinkingBlock]) -> str:
    """The thinking a caller may read, blocks joined by a blank line; redacted ones left out."""
    return "\n\n".join(block.thinking for block in blocks if isinstance(block, ThinkingBlock))


class Tally:
    """Per-choice consumption of one request, for the ledger and the budget."""

    def __init__(self, n: int) -> None:
        self.choices = [ChoiceTally() for _ in range(n)]

    def usages(self) -> list[TokenUsage]:
        return [choice.usage() for choice in self.choices]

    def cli_cost(self) -> float | None:
        """The CLI's own total, when every choice ran to its result line."""
        costs = [c.completed.cost_usd if c.completed else None for c in self.choices]
        known = [cost for cost in costs if cost is not None]
        return sum(known) if len(known) == len(costs) else None

    def processes(self) -> list[str]:
        """How the backend found each choice's process, in choice order, for those it said."""
        return [c.process for c in self.choices if c.process is not None]

    def account(self) -> str:
        """The account that served the request: the last choice that says (choices that ended
        before the backend's result line do not), else `default`."""
        served = [c.completed.account for c in self.choices if c.completed is not None]
        return served[-1] if served else DEFAULT_ACCOUNT


async def _run_choice(
    backend: ChatBackend,
    job: CompletionJob,
    index: int,
    stops: list[str],
    queue: asyncio.Queue[ChoiceEvent | ChoiceFailed],
    tally: ChoiceTally,
    streamed: bool,
) -> None:
    cutter = StopCutter(stops)
    began = time.perf_counter()
    events = backend.stream(job)
    try:
        async for event in events:
            if isinstance(event, Started):
                tally.started = event.usage
                tally.process = event.process or tally.process
            elif isinstance(event, TextDelta):
                tally.produced.append(event.text)
                text, matched = cutter.feed(event.text)
                if text:
                    tally.emitted.append(text)
                    await queue.put(ChoiceText(index, text))
                if matched:
                    # The upstream never reports output tokens for a run stopped early: count
                    # what it produced up to the moment the proxy stopped it.
                    done = Completed(finish_reason="stop", usage=tally.usage(), usage_estimated=True)
                    tally.completed = done
                    tally.seconds = time.perf_counter() - began
                    tally.stop_sequence = cutter.matched_stop
                    await queue.put(ChoiceDone(index, done, cutter.matched_stop))
                    return
            elif isinstance(event, ThinkingDelta | ThinkingSigned | RedactedThinking):
                tally.think(event)
                await queue.put(ChoiceThinking(index, event))
            elif isinstance(event, ToolCallStarted):
                tally.tool_calls.append((event.id, event.name, []))
                await queue.put(ChoiceTool(index, event))
            elif isinstance(event, ToolCallArguments):
                tally.tool_calls[event.index][2].append(event.arguments)
                await queue.put(ChoiceTool(index, event))
            elif isinstance(event, Retracted):
                if streamed and (tally.emitted or tally.tool_calls):
                    # What the caller was sent cannot be taken back; claiming it complete would
                    # hand over a wrong answer.
                    raise UpstreamError(
                        "the Anthropic API's answer broke off mid-stream and its retry differs from what was"
                        " already streamed; retry the request"
                    )
                # The answer comes again from its start: what this choice gave so far is void.
                tally.produced, tally.emitted, tally.tool_calls, tally.thinking = [], [], [], []
                cutter = StopCutter(stops)
            elif isinstance(event, Completed):
                tally.completed = event
                tally.seconds = time.perf_counter() - began
                tally.process = event.process or tally.process
                rest = cutter.flush()
                if rest:
                    tally.emitted.append(rest)
                    await queue.put(ChoiceText(index, rest))
                await queue.put(ChoiceDone(index, event))
                return
    except ProxyError as exc:
        await queue.put(ChoiceFailed(index, exc))
    finally:
        await events.aclose()


async def run_choices(
    backend: ChatBackend,
    job: CompletionJob,
    *,
    stops: list[str],
    timeout_s: float,
    tally: Tally,
    streamed: bool = False,
) -> AsyncGenerator[ChoiceEvent, None]:
    """Yields text and completion events of all choices; raises the first choice failure. When
    a backend retracts what it gave, a plain run starts that choice over; a `streamed` run, whose
    caller has the retracted part already, fails instead."""
    # Bounded: a caller who reads slowly (or not at all) stops the choices' tasks from reading
    # their CLI's output, so its answer waits in the CLI and the pipe, not in this process.
    queue: asyncio.Queue[ChoiceEvent | ChoiceFailed] = asyncio.Queue(maxsize=EVENTS_BUFFERED)
    n = len(tally.choices)
    tasks = [
        asyncio.create_task(_run_choice(backend, job, i, stops, queue, choice, streamed))
        for i, choice in enumerate(tally.choices)
    ]
    deadline = time.monotonic() + timeout_s
    remaining = n
    finished = False
    try:
        while remaining:
            left = deadline - time.monotonic()
            try:
                # Not `wait_for`: on Python 3.11 it drops a cancellation that arrives as an
                # event is taken, and the run would go on after its caller left.
                async with asyncio.timeout(max(left, 0)):
                    event = await queue.get()
            except TimeoutError:
                raise RequestTimeout(f"the completion did not finish within {timeout_s:g}s") from None
            if isinstance(event, ChoiceFailed):
                raise event.error
            if isinstance(event, ChoiceDone):
                remaining -= 1
            yield event
        finished = True
    finally:
        if not finished:
            for task in tasks:
                task.cancel()
        # Let every choice release what it holds before the request is over; shielded so that a
        # second cancellation of this request does not interrupt the choices' own clean-up.
        await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
