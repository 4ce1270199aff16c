"""Runs the n choices of a request on the backend and merges their events in arrival order.

Stop sequences are cut here. Every choice runs in its own task; closing the merged iterator
(the caller disconnected, the deadline passed) cancels them, which closes each backend stream
and so kills its CLI process.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Union

import msgspec
from msgspec import Struct

from adapters.protocol import ChatBackend
from adapters.types import Completed, CompletionJob, Started, TextDelta, TokenUsage
from proxy.chat.stops import StopCutter
from proxy.errors import ProxyError, RequestTimeout
from proxy.tokens import count_tokens


class ChoiceText(Struct):
    index: int
    text: str


class ChoiceDone(Struct):
    index: int
    completed: Completed


class ChoiceFailed(Struct):
    index: int
    error: ProxyError


ChoiceEvent = Union[ChoiceText, ChoiceDone]


async def _run_choice(
    backend: ChatBackend, job: CompletionJob, index: int, stops: list[str], queue: asyncio.Queue
) -> None:
    cutter = StopCutter(stops)
    started = TokenUsage()
    produced: list[str] = []
    events = backend.stream(job)
    try:
        async for event in events:
            if isinstance(event, Started):
                started = event.usage
            elif isinstance(event, TextDelta):
                produced.append(event.text)
                text, matched = cutter.feed(event.text)
                if text:
                    await queue.put(ChoiceText(index, text))
                if matched:
                    # The upstream never reports output tokens for a run stopped early: count
                    # what it produced up to the moment the proxy stopped it.
                    usage = msgspec.structs.replace(started, output_tokens=count_tokens("".join(produced)))
                    done = Completed(finish_reason="stop", usage=usage, usage_estimated=True)
                    await queue.put(ChoiceDone(index, done))
                    return
            elif isinstance(event, Completed):
                rest = cutter.flush()
                if rest:
                    await queue.put(ChoiceText(index, rest))
                await queue.put(ChoiceDone(index, event))
                return
    except ProxyError as exc:
        await queue.put(ChoiceFailed(index, exc))
    finally:
        await events.aclose()


async def run_choices(
    backend: ChatBackend, job: CompletionJob, *, n: int, stops: list[str], timeout_s: float
) -> AsyncIterator[ChoiceEvent]:
    """Yields text and completion events of all choices; raises the first choice failure."""
    queue: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.create_task(_run_choice(backend, job, i, stops, queue)) for i in range(n)]
    deadline = time.monotonic() + timeout_s
    remaining = n
    finished = False
    try:
        while remaining:
            left = deadline - time.monotonic()
            try:
                event = await asyncio.wait_for(queue.get(), timeout=max(left, 0))
            except asyncio.TimeoutError:
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
        # Let every choice release its process before the request is over.
        await asyncio.gather(*tasks, return_exceptions=True)
