"""Chat completions end to end: plan, run, and render as OpenAI objects or SSE chunks."""

from __future__ import annotations

import logging
import secrets
import time
from typing import AsyncGenerator, AsyncIterator

import msgspec

from adapters.protocol import ChatBackend
from adapters.types import Completed, TokenUsage
from proxy.chat.runner import ChoiceDone, ChoiceEvent, ChoiceText, run_choices
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


class ChatService:
    """Runs planned requests on a backend. One instance per app, built by `create_app`."""

    def __init__(self, backend: ChatBackend, *, timeout_s: float) -> None:
        self.backend = backend
        self.timeout_s = timeout_s

    async def complete(self, plan: Plan, *, model: str) -> ChatCompletion:
        texts: list[list[str]] = [[] for _ in range(plan.n)]
        finished: list[Completed | None] = [None] * plan.n
        events = run_choices(self.backend, plan.job, n=plan.n, stops=plan.stops, timeout_s=self.timeout_s)
        try:
            async for event in events:
                if isinstance(event, ChoiceText):
                    texts[event.index].append(event.text)
                elif isinstance(event, ChoiceDone):
                    finished[event.index] = event.completed
        finally:
            await events.aclose()
        done = [item for item in finished if item is not None]
        choices = [
            Choice(
                index=i,
                message=ResponseMessage(content="".join(texts[i])),
                finish_reason=finished[i].finish_reason if finished[i] else "stop",
            )
            for i in range(plan.n)
        ]
        return ChatCompletion(
            id=completion_id(),
            created=int(time.time()),
            model=model,
            choices=choices,
            usage=to_usage([item.usage for item in done]),
        )

    async def open_stream(self, plan: Plan, *, model: str) -> AsyncIterator[bytes]:
        """Starts the run and waits for its first event, so that failures before any output
        (queue full, upstream 429, unknown CLI) still become plain HTTP errors; then returns the
        SSE byte stream."""
        events = run_choices(self.backend, plan.job, n=plan.n, stops=plan.stops, timeout_s=self.timeout_s)
        try:
            first = await events.__anext__()
        except BaseException:
            await events.aclose()
            raise
        return self._sse(plan, model, first, events)

    async def _sse(
        self, plan: Plan, model: str, first: ChoiceEvent, events: AsyncGenerator[ChoiceEvent, None]
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

        usages: list[TokenUsage] = []
        try:
            for index in range(plan.n):
                yield chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content="", refusal=None))])
            async for event in _prepend(first, events):
                if isinstance(event, ChoiceText):
                    yield chunk([ChunkChoice(index=event.index, delta=Delta(content=event.text))])
                else:
                    usages.append(event.completed.usage)
                    done = ChunkChoice(index=event.index, delta=Delta(), finish_reason=event.completed.finish_reason)
                    yield chunk([done])
            if plan.include_usage:
                yield chunk([], final_usage=to_usage(usages))
        except ProxyError as exc:
            # Headers are gone: the error travels as a last data object, as OpenAI does.
            log.warning("stream failed after it started: %s", exc.message)
            yield sse_error(exc)
        finally:
            await events.aclose()
        yield sse_done()


async def _prepend(first: ChoiceEvent, rest: AsyncIterator[ChoiceEvent]) -> AsyncIterator[ChoiceEvent]:
    yield first
    async for event in rest:
        yield event
