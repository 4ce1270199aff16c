"""Chat completions end to end: plan, run, and render as OpenAI objects or SSE chunks."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import AsyncGenerator, AsyncIterator, Awaitable, Callable

import msgspec

from adapters.protocol import ChatBackend
from core.types import TokenUsage, ToolCallStarted
from proxy.chat.runner import ChoiceEvent, ChoiceTally, ChoiceText, ChoiceTool, Tally, run_choices
from proxy.chat.translate import Plan
from proxy.cache import CachedAnswer
from core.errors import ProxyError
from proxy.sse import sse_done, sse_error, sse_event
from proxy.wire.chat_response import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    PromptTokensDetails,
    ResponseMessage,
    ToolCall,
    ToolCallDelta,
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
                message=_message("".join(texts[i]), choice),
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

    async def open_stream(
        self, plan: Plan, *, model: str, finish: Finish, writer: type["ChunkWriter"] | None = None
    ) -> AsyncIterator[bytes]:
        """Starts the run and waits for its first event, so that failures before any output
        (queue full, upstream 429, unknown CLI) still become plain HTTP errors; then returns the
        SSE byte stream, its chunks written by `writer` (chat chunks by default)."""
        tally = Tally(plan.n)
        events = self._run(plan, tally)
        try:
            first = await events.__anext__()
        except BaseException as exc:
            await events.aclose()
            await asyncio.shield(finish(tally, _status(exc)))
            raise
        chunks = (writer or ChunkWriter)(model, include_usage=plan.include_usage)
        return self._sse(plan, chunks, first, events, tally, finish)

    async def _sse(
        self,
        plan: Plan,
        chunks: "ChunkWriter",
        first: ChoiceEvent,
        events: AsyncGenerator[ChoiceEvent, None],
        tally: Tally,
        finish: Finish,
    ) -> AsyncIterator[bytes]:
        status = CLIENT_CLOSED
        try:
            for index in range(plan.n):
                if opening := chunks.role(index):
                    yield opening
            async for event in _prepend(first, events):
                if isinstance(event, ChoiceText):
                    yield chunks.text(event.index, event.text)
                elif isinstance(event, ChoiceTool):
                    yield chunks.tool(event)
                else:
                    yield chunks.finish(event.index, event.completed.finish_reason)
            status = 200
            if plan.include_usage:
                yield chunks.usage(tally.usages())
        except ProxyError as exc:
            # Headers are gone: the error travels as a last data object, as OpenAI does.
            status = exc.status
            log.warning("stream failed after it started: %s", exc.message)
            yield sse_error(exc)
        finally:
            await events.aclose()
            await asyncio.shield(finish(tally, status))
        yield sse_done()


def _message(text: str, choice: ChoiceTally) -> ResponseMessage:
    if not choice.tool_calls:
        return ResponseMessage(content=text)
    calls = [
        ToolCall(id=call_id, function=FunctionCall(name=name, arguments="".join(pieces)))
        for call_id, name, pieces in choice.tool_calls
    ]
    return ResponseMessage(content=text or None, tool_calls=calls)


def replay_completion(answer: CachedAnswer, *, model: str) -> ChatCompletion:
    """A stored answer as a new chat.completion object."""
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            Choice(index=i, message=ResponseMessage(content=choice.text), finish_reason=choice.finish_reason)
            for i, choice in enumerate(answer.choices)
        ],
        usage=to_usage(answer.usage),
    )


async def replay_stream(answer: CachedAnswer, plan: Plan, *, model: str) -> AsyncIterator[bytes]:
    """A stored answer as the chunks a live stream would have sent, all at once."""
    chunks = ChunkWriter(model, include_usage=plan.include_usage)
    for index in range(len(answer.choices)):
        yield chunks.role(index)
    for index, choice in enumerate(answer.choices):
        if choice.text:
            yield chunks.text(index, choice.text)
        yield chunks.finish(index, choice.finish_reason)
    if plan.include_usage:
        yield chunks.usage(answer.usage)
    yield sse_done()


class ChunkWriter:
    """Encodes the chunks of one stream: same id and creation time on every chunk."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        # OpenAI sends `usage: null` on every chunk when include_usage is set, no key otherwise.
        self._usage: None | msgspec.UnsetType = None if include_usage else msgspec.UNSET

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
        return sse_event(
            ChatCompletionChunk(
                id=self.id, created=self.created, model=self.model, choices=choices, usage=usage or self._usage
            )
        )

    def role(self, index: int) -> bytes:
        return self._chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content="", refusal=None))])

    def text(self, index: int, text: str) -> bytes:
        return self._chunk([ChunkChoice(index=index, delta=Delta(content=text))])

    def tool(self, event: ChoiceTool) -> bytes:
        part = event.part
        if isinstance(part, ToolCallStarted):
            delta = ToolCallDelta(
                index=part.index, id=part.id, type="function", function=FunctionCallDelta(name=part.name, arguments="")
            )
        else:
            delta = ToolCallDelta(index=part.index, function=FunctionCallDelta(arguments=part.arguments))
        return self._chunk([ChunkChoice(index=event.index, delta=Delta(tool_calls=[delta]))])

    def finish(self, index: int, reason: str) -> bytes:
        return self._chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=reason)])  # type: ignore[arg-type]

    def usage(self, parts: list[TokenUsage]) -> bytes:
        return self._chunk([], usage=to_usage(parts))


async def _prepend(first: ChoiceEvent, rest: AsyncIterator[ChoiceEvent]) -> AsyncIterator[ChoiceEvent]:
    yield first
    async for event in rest:
        yield event
