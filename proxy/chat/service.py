"""Chat completions end to end: plan, run, and render as OpenAI objects or SSE chunks."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import AsyncGenerator, AsyncIterator, Awaitable, Callable

import msgspec

from adapters.protocol import ChatBackend
from adapters.types import TokenUsage
from proxy.chat.runner import ChoiceEvent, ChoiceText, Tally, run_choices
from proxy.chat.translate import Plan
from proxy.errors import ProxyError
from proxy.sse import sse_done, sse_error, sse_event
from proxy.wire.chat_response import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    PromptTokensDetails,
    ResponseMessage,
    Usage,
)

log = logging.getLogger("claude_proxy.chat")


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def to_usage(parts: list[TokenUsage]) -> Usage:
    """OpenAI usage from what the upstream reported: prompt tokens include cache reads and writes."""
    prompt = sum(part.prompt_tokens for part in parts)
    completion = sum(part.output_tokens for part in parts)
    cached = sum(part.cache_read_tokens for part in parts)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


Finish = Callable[[Tally, int], Awaitable[None]]
"""Awaited exactly once when a request's run is over, with what it consumed and its HTTP status
(499 when the caller went away); the metering layer records and settles it. It is shielded, so
a caller who goes away cannot interrupt the settlement."""

CLIENT_CLOSED = 499


def _status(exc: BaseException) -> int:
    return exc.status if isinstance(exc, ProxyError) else CLIENT_CLOSED


class ChatService:
    """Runs planned requests on a backend. One instance per app, built by `create_app`."""

    def __init__(self, backend: ChatBackend, *, timeout_s: float) -> None:
        self.backend = backend
        self.timeout_s = timeout_s

    def _run(self, plan: Plan, tally: Tally) -> AsyncGenerator[ChoiceEvent, None]:
        return run_choices(self.backend, plan.job, stops=plan.stops, timeout_s=self.timeout_s, tally=tally)

    async def complete(self, plan: Plan, *, model: str, finish: Finish) -> ChatCompletion:
        tally = Tally(plan.n)
        texts: list[list[str]] = [[] for _ in range(plan.n)]
        events = self._run(plan, tally)
        status = 200
        try:
            async for event in events:
                if isinstance(event, ChoiceText):
                    texts[event.index].append(event.text)
        except BaseException as exc:
            status = _status(exc)
            raise
        finally:
            await events.aclose()
            await asyncio.shield(finish(tally, status))
        choices = [
            Choice(
                index=i,
                message=ResponseMessage(content="".join(texts[i])),
                finish_reason=choice.completed.finish_reason if choice.completed else "stop",
            )
            for i, choice in enumerate(tally.choices)
        ]
        return ChatCompletion(
            id=completion_id(),
            created=int(time.time()),
            model=model,
            choices=choices,
            usage=to_usage(tally.usages()),
        )

    async def open_stream(self, plan: Plan, *, model: str, finish: Finish) -> AsyncIterator[bytes]:
        """Starts the run and waits for its first event, so that failures before any output
        (queue full, upstream 429, unknown CLI) still become plain HTTP errors; then returns the
        SSE byte stream."""
        tally = Tally(plan.n)
        events = self._run(plan, tally)
        try:
            first = await events.__anext__()
        except BaseException as exc:
            await events.aclose()
            await asyncio.shield(finish(tally, _status(exc)))
            raise
        return self._sse(plan, model, first, events, tally, finish)

    async def _sse(
        self,
        plan: Plan,
        model: str,
        first: ChoiceEvent,
        events: AsyncGenerator[ChoiceEvent, None],
        tally: Tally,
        finish: Finish,
    ) -> AsyncIterator[bytes]:
        chunk_id = completion_id()
        created = int(time.time())
        # OpenAI sends `usage: null` on every chunk when include_usage is set, no key otherwise.
        usage: None | msgspec.UnsetType = None if plan.include_usage else msgspec.UNSET

        def chunk(choices: list[ChunkChoice], final_usage: Usage | None = None) -> bytes:
            return sse_event(
                ChatCompletionChunk(
                    id=chunk_id, created=created, model=model, choices=choices, usage=final_usage or usage
                )
            )

        status = CLIENT_CLOSED
        try:
            for index in range(plan.n):
                yield chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content="", refusal=None))])
            async for event in _prepend(first, events):
                if isinstance(event, ChoiceText):
                    yield chunk([ChunkChoice(index=event.index, delta=Delta(content=event.text))])
                else:
                    done = ChunkChoice(index=event.index, delta=Delta(), finish_reason=event.completed.finish_reason)
                    yield chunk([done])
            status = 200
            if plan.include_usage:
                yield chunk([], final_usage=to_usage(tally.usages()))
        except ProxyError as exc:
            # Headers are gone: the error travels as a last data object, as OpenAI does.
            status = exc.status
            log.warning("stream failed after it started: %s", exc.message)
            yield sse_error(exc)
        finally:
            await events.aclose()
            await asyncio.shield(finish(tally, status))
        yield sse_done()


async def _prepend(first: ChoiceEvent, rest: AsyncIterator[ChoiceEvent]) -> AsyncIterator[ChoiceEvent]:
    yield first
    async for event in rest:
        yield event
