"""Pipeline results as Anthropic `message` objects, and streamed runs as Anthropic's events.

A run has one choice here (the Messages API has no `n`). Text becomes `text` blocks and each
tool call a `tool_use` block under the caller's own tool name, in the order the model
produced them; the model field echoes the name the caller asked for.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec

from core.errors import ProxyError
from core.types import (
    RedactedThinking,
    RedactedThinkingBlock,
    ThinkingBlock,
    ThinkingDelta,
    ThinkingEvent,
    TokenUsage,
    ToolCallStarted,
)
from proxy.messages.errors import error_body
from proxy.pipeline import ChoiceDone, ChoiceText, ChoiceThinking, ChoiceTool, Outcome, RunResult, StreamEvent
from proxy.wire.messages import (
    ContentBlock,
    ContentBlockDelta,
    ContentBlockStart,
    ContentBlockStop,
    InputJsonDelta,
    Message,
    MessageDelta,
    MessageDeltaBody,
    MessageDeltaUsage,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinkingOut,
    SignatureDelta,
    StopReason,
    TextDeltaOut,
    TextOut,
    ThinkingDeltaOut,
    ThinkingOut,
    ToolUseOut,
    Usage,
    encoder,
)
from proxy.wire.messages import StreamEvent as Event

log = logging.getLogger("claude_proxy.messages")

# A stream that has nothing to say for this long sends a `ping`, as Anthropic does, so that
# clients and intermediaries with idle timeouts keep the connection.
PING_INTERVAL_S = 10.0

_decode = msgspec.json.Decoder()


def message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def stop_reason(finish_reason: str, stop_sequence: str | None) -> StopReason:
    if stop_sequence is not None:
        return "stop_sequence"
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason == "tool_calls":
        return "tool_use"
    return "end_turn"


def to_usage(parts: list[TokenUsage]) -> Usage:
    """Anthropic's usage: input tokens exclude cache reads and writes, which are their own."""
    return Usage(
        input_tokens=sum(part.input_tokens for part in parts),
        output_tokens=sum(part.output_tokens for part in parts),
        cache_creation_input_tokens=sum(part.cache_creation_tokens for part in parts),
        cache_read_input_tokens=sum(part.cache_read_tokens for part in parts),
    )


def _tool_input(arguments: str) -> dict[str, Any]:
    try:
        decoded = _decode.decode(arguments or "{}")
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _thinking_block(block: ThinkingBlock | RedactedThinkingBlock) -> ContentBlock:
    if isinstance(block, RedactedThinkingBlock):
        return RedactedThinkingOut(data=block.data)
    return ThinkingOut(thinking=block.thinking, signature=block.signature)


def render_message(result: RunResult, *, model: str, thinking: bool = False) -> Message:
    """A finished run as a `message` object; its thinking blocks first when `thinking`."""
    choice = result.choices[0]
    content: list[ContentBlock] = [_thinking_block(block) for block in choice.thinking] if thinking else []
    content += [TextOut(text=choice.text)] if choice.text else []
    content += [ToolUseOut(id=call.id, name=call.name, input=_tool_input(call.arguments)) for call in choice.tool_calls]
    return Message(
        id=message_id(),
        content=content,
        model=model,
        stop_reason=stop_reason(choice.finish_reason, choice.stop_sequence),
        stop_sequence=choice.stop_sequence,
        usage=to_usage(result.usages),
    )


def sse(event: Event) -> bytes:
    return b"event: " + event.__struct_config__.tag.encode() + b"\ndata: " + encoder.encode(event) + b"\n\n"  # type: ignore[union-attr]  # every event is tagged


def sse_error(error: ProxyError) -> bytes:
    return b"event: error\ndata: " + encoder.encode(error_body(error)) + b"\n\n"


class _Blocks:
    """The content blocks of one streamed message: which is open, and the next index."""

    def __init__(self, *, thinking: bool) -> None:
        self.next = 0
        self.open: str | None = None  # "thinking", "text" or "tool_use"
        self.thinking = thinking  # whether the caller sees the model's thinking

    def start(self, kind: str, block: ContentBlock) -> list[Event]:
        events = self.close()
        self.open = kind
        events.append(ContentBlockStart(index=self.next, content_block=block))
        return events

    def close(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        self.next += 1
        return [ContentBlockStop(index=self.next - 1)]

    @property
    def index(self) -> int:
        return self.next


def _thinking_events(part: ThinkingEvent, blocks: _Blocks) -> list[Event]:
    if not blocks.thinking:
        return []
    if isinstance(part, ThinkingDelta):
        opened = blocks.open == "thinking" and not part.first
        out = [] if opened else blocks.start("thinking", ThinkingOut(thinking="", signature=""))
        if part.text:
            out.append(ContentBlockDelta(index=blocks.index, delta=ThinkingDeltaOut(thinking=part.text)))
        return out
    if isinstance(part, RedactedThinking):
        return [*blocks.start("redacted_thinking", RedactedThinkingOut(data=part.data)), *blocks.close()]
    # A signature for a block that had no text is opened first.
    out = [] if blocks.open == "thinking" else blocks.start("thinking", ThinkingOut(thinking="", signature=""))
    return [*out, ContentBlockDelta(index=blocks.index, delta=SignatureDelta(signature=part.signature))]


def _events_for(event: StreamEvent, blocks: _Blocks) -> list[Event]:
    if isinstance(event, ChoiceThinking):
        return _thinking_events(event.part, blocks)
    if isinstance(event, ChoiceText):
        out = [] if blocks.open == "text" else blocks.start("text", TextOut(text=""))
        out.append(ContentBlockDelta(index=blocks.index, delta=TextDeltaOut(text=event.text)))
        return out
    if isinstance(event, ChoiceTool):
        part = event.part
        if isinstance(part, ToolCallStarted):
            return blocks.start("tool_use", ToolUseOut(id=part.id, name=part.name, input={}))
        if not part.arguments:
            return []
        return [ContentBlockDelta(index=blocks.index, delta=InputJsonDelta(partial_json=part.arguments))]
    if isinstance(event, ChoiceDone):
        usage = event.completed.usage
        return [
            *blocks.close(),
            MessageDelta(
                delta=MessageDeltaBody(
                    stop_reason=stop_reason(event.completed.finish_reason, event.stop_sequence),
                    stop_sequence=event.stop_sequence,
                ),
                usage=MessageDeltaUsage(
                    output_tokens=usage.output_tokens,
                    input_tokens=usage.input_tokens,
                    cache_creation_input_tokens=usage.cache_creation_tokens,
                    cache_read_input_tokens=usage.cache_read_tokens,
                ),
            ),
        ]
    return [MessageStop()]  # RunEnded: the last event of a run


async def with_pings(
    events: AsyncGenerator[StreamEvent, None], interval_s: float
) -> AsyncGenerator[StreamEvent | None, None]:
    """`events`, with a None each time `interval_s` passes without one; closing this closes them."""
    pending: asyncio.Future[StreamEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield None
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await events.aclose()


async def stream_message(
    outcome: Outcome, *, thinking: bool = False, ping_interval_s: float = PING_INTERVAL_S
) -> AsyncIterator[bytes]:
    """A streamed outcome as Anthropic's server-sent events, thinking blocks included when
    `thinking`. A failure after the stream began travels as an `error` event, as Anthropic
    sends one."""
    if outcome.events is None:
        raise ValueError("stream_message needs a streamed outcome")
    start = Message(
        id=message_id(),
        content=[],
        model=outcome.plan.selection.choice.requested,
        stop_reason=None,
        stop_sequence=None,
        # Counts come with message_delta: the upstream's are known only once the run ends.
        usage=Usage(input_tokens=0, output_tokens=0),
    )
    yield sse(MessageStart(message=start))
    yield sse(Ping())
    blocks = _Blocks(thinking=thinking)
    events = with_pings(outcome.events, ping_interval_s)
    try:
        async for event in events:
            if event is None:
                yield sse(Ping())
                continue
            for out in _events_for(event, blocks):
                yield sse(out)
    except ProxyError as exc:
        log.warning("messages stream failed after it started: %s", exc.message)
        yield sse_error(exc)
    finally:
        await events.aclose()
