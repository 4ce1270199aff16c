"""Pipeline results as OpenAI chat completion objects and SSE chunks."""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator

import msgspec

from core.errors import ProxyError
from core.types import ThinkingDelta, TokenUsage, ToolCallStarted
from proxy.pipeline import (
    ChoiceResult,
    ChoiceText,
    ChoiceThinking,
    ChoiceTool,
    Outcome,
    RunEnded,
    RunResult,
    StreamEvent,
)
from proxy.sse import sse_done, sse_error, sse_event
from proxy.wire.chat_response import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
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
    reasoning = sum(part.reasoning_tokens for part in parts)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
    )


def chat_completion(result: RunResult, *, model: str) -> ChatCompletion:
    """A finished run as a `chat.completion` object."""
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[
            Choice(index=i, message=_message(choice), finish_reason=choice.finish_reason)  # type: ignore[arg-type]  # one of OpenAI's reasons
            for i, choice in enumerate(result.choices)
        ],
        usage=to_usage(result.usages),
    )


def _message(choice: ChoiceResult) -> ResponseMessage:
    reasoning = choice.reasoning or msgspec.UNSET
    if not choice.tool_calls:
        return ResponseMessage(content=choice.text, reasoning_content=reasoning)
    calls = [
        ToolCall(id=call.id, function=FunctionCall(name=call.name, arguments=call.arguments))
        for call in choice.tool_calls
    ]
    return ResponseMessage(content=choice.text or None, tool_calls=calls, reasoning_content=reasoning)


class ChunkWriter:
    """Encodes the chunks of one stream: same id and creation time on every chunk."""

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        # OpenAI sends `usage: null` on every chunk when include_usage is set, no key otherwise.
        self._usage: msgspec.UnsetType | None = None if include_usage else msgspec.UNSET
        self._thought: defaultdict[int, bool] = defaultdict(bool)  # a choice's thinking began

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

    def thinking(self, event: ChoiceThinking) -> bytes:
        """A piece of thinking as `delta.reasoning_content`; signatures and redacted blocks
        are not for a chat caller (an empty byte string)."""
        part = event.part
        if not isinstance(part, ThinkingDelta):
            return b""
        # Separate thinking blocks the way the finished message joins them.
        text = ("\n\n" + part.text) if part.first and self._thought[event.index] else part.text
        self._thought[event.index] = True
        return self._chunk([ChunkChoice(index=event.index, delta=Delta(reasoning_content=text))])

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
        return self._chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=reason)])  # type: ignore[arg-type]  # one of OpenAI's reasons

    def usage(self, parts: list[TokenUsage]) -> bytes:
        return self._chunk([], usage=to_usage(parts))


async def sse_stream(outcome: Outcome, writer: type[ChunkWriter] = ChunkWriter) -> AsyncIterator[bytes]:
    """A streamed outcome as SSE bytes, its chunks written by `writer` (chat chunks by
    default). A failure after the first chunk travels as a last data object, as OpenAI does."""
    plan = outcome.plan
    events: AsyncGenerator[StreamEvent, None] | None = outcome.events
    if events is None:
        raise ValueError("sse_stream needs a streamed outcome")
    chunks = writer(plan.selection.choice.requested, include_usage=plan.include_usage)
    try:
        for index in range(plan.n):
            if opening := chunks.role(index):
                yield opening
        async for event in events:
            if isinstance(event, ChoiceText):
                yield chunks.text(event.index, event.text)
            elif isinstance(event, ChoiceTool):
                yield chunks.tool(event)
            elif isinstance(event, ChoiceThinking):
                if piece := chunks.thinking(event):
                    yield piece
            elif isinstance(event, RunEnded):
                if plan.include_usage:
                    yield chunks.usage(event.usages)
            else:
                yield chunks.finish(event.index, event.completed.finish_reason)
    except ProxyError as exc:
        # Headers are gone: the error travels as a last data object, as OpenAI does.
        log.warning("stream failed after it started: %s", exc.message)
        yield sse_error(exc)
    finally:
        await events.aclose()
    yield sse_done()
