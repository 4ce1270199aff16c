"""The CLI's stream-json output lines as a msgspec tagged union, and the one parser for them.

Only the fields the proxy uses are declared; the CLI prints many more and adds new line types
over time, so an unknown line becomes `UnknownLine` instead of an error.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct


class OutputTokensDetails(Struct):
    thinking_tokens: int | None = None  # the part of output_tokens spent thinking


class AnthropicUsage(Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None


class MessageStartBody(Struct):
    id: str = ""
    model: str = ""
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


class MessageStart(Struct, tag="message_start", tag_field="type"):
    message: MessageStartBody


class ContentBlockStart(Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: dict[str, Any]


class TextDeltaBody(Struct, tag="text_delta", tag_field="type"):
    text: str


class InputJsonDeltaBody(Struct, tag="input_json_delta", tag_field="type"):
    partial_json: str


class ThinkingDeltaBody(Struct, tag="thinking_delta", tag_field="type"):
    thinking: str = ""


class SignatureDeltaBody(Struct, tag="signature_delta", tag_field="type"):
    signature: str = ""


class CitationsDeltaBody(Struct, tag="citations_delta", tag_field="type"):
    citation: dict[str, Any] = {}


DeltaBody = TextDeltaBody | InputJsonDeltaBody | ThinkingDeltaBody | SignatureDeltaBody | CitationsDeltaBody


class ContentBlockDelta(Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: DeltaBody


class ContentBlockStop(Struct, tag="content_block_stop", tag_field="type"):
    index: int


class MessageDeltaBody(Struct):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(Struct, tag="message_delta", tag_field="type"):
    delta: MessageDeltaBody
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


class MessageStop(Struct, tag="message_stop", tag_field="type"):
    pass


class Ping(Struct, tag="ping", tag_field="type"):
    pass


AnthropicEvent = (
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | Ping
)


class AbandonedBlocks(Struct):
    """On a `message_stop` the CLI prints when the upstream stream broke (a reset connection, an
    `error` event): the blocks of that message from `from_block_index` on are void. The CLI then
    retries: without streaming when nothing of the message survived (the retried message comes
    as one `assistant` line), or, when earlier blocks did, by streaming a continuation request
    after a synthetic user turn asking the model to resume."""

    api_message_id: str = ""
    from_block_index: int = 0


class StreamEventLine(Struct, tag="stream_event", tag_field="type"):
    event: AnthropicEvent
    parent_tool_use_id: str | None = None
    abandoned_blocks: AbandonedBlocks | None = None


class SystemLine(Struct, tag="system", tag_field="type"):
    subtype: str = ""
    session_id: str | None = None
    model: str | None = None
    tools: list[Any] | None = None
    attempt: int | None = None
    max_retries: int | None = None
    retry_delay_ms: float | None = None
    error_status: int | None = None


class AssistantLine(Struct, tag="assistant", tag_field="type"):
    message: dict[str, Any]
    error: str | None = None
    parent_tool_use_id: str | None = None


class AssistantMessage(Struct):
    """The Anthropic message an `assistant` line carries, read only when the proxy needs it (a
    retried message that came without stream events)."""

    id: str = ""
    model: str = ""
    content: list[dict[str, Any]] = []
    stop_reason: str | None = None
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


class ResultUsage(Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    output_tokens_details: OutputTokensDetails | None = None


class ModelUsage(Struct):
    """One model's counts in a result line's `modelUsage` (the CLI's own camelCase keys)."""

    inputTokens: int = 0  # noqa: N815
    outputTokens: int = 0  # noqa: N815
    cacheReadInputTokens: int = 0  # noqa: N815
    cacheCreationInputTokens: int = 0  # noqa: N815
    thinkingTokens: int = 0  # noqa: N815 - from the upstream's output_tokens_details


class ResultLine(Struct, tag="result", tag_field="type"):
    subtype: str = ""
    is_error: bool = False
    result: str | None = None
    stop_reason: str | None = None
    api_error_status: int | None = None
    api_error_type: str | None = None
    usage: ResultUsage = msgspec.field(default_factory=ResultUsage)
    total_cost_usd: float | None = None
    modelUsage: dict[str, Any] = {}  # noqa: N815 - the CLI's own key
    # What every upstream request of this turn consumed, per model, counted as the CLI bills it
    # (a broken stream that was retried counts too). `usage` then holds only the last message's.
    model_usage_since_last_result: dict[str, ModelUsage] | None = None
    duration_ms: int | None = None
    duration_api_ms: int | None = None
    session_id: str | None = None
    errors: list[str] | None = None
    structured_output: Any = None


class ControlResponseBody(Struct):
    subtype: str
    request_id: str
    error: str | None = None
    response: dict[str, Any] | None = None


class ControlResponseLine(Struct, tag="control_response", tag_field="type"):
    response: ControlResponseBody


class ControlRequestLine(Struct, tag="control_request", tag_field="type"):
    """The CLI asks its host something: MCP traffic for an SDK server, or a tool permission."""

    request_id: str
    request: dict[str, Any]


class PlanWindow(Struct):
    """One usage window of a subscription's plan (`five_hour`, `seven_day`)."""

    utilization: float | None = None  # a fraction, 1 when used up
    resetsAt: int | None = None  # noqa: N815 - unix seconds
    status: str | None = None  # allowed | allowed_warning | rejected


class RateLimitInfo(Struct):
    status: str | None = None  # the account's: allowed | allowed_warning | rejected
    resetsAt: int | None = None  # noqa: N815 - unix seconds, of the window named by rateLimitType
    rateLimitType: str | None = None  # noqa: N815 - the window that decides the status
    isUsingOverage: bool = False  # noqa: N815
    unifiedWindows: dict[str, PlanWindow] = {}  # noqa: N815


class RateLimitEventLine(Struct, tag="rate_limit_event", tag_field="type"):
    """What a subscription's (OAuth) answer said of the plan's usage windows, read by the CLI from
    the upstream's `anthropic-ratelimit-unified-*` headers. Printed before the turn's result; never
    with an API key."""

    rate_limit_info: RateLimitInfo = msgspec.field(default_factory=RateLimitInfo)


class UnknownLine(Struct):
    type: str


CliLine = (
    StreamEventLine
    | SystemLine
    | AssistantLine
    | ResultLine
    | ControlResponseLine
    | ControlRequestLine
    | RateLimitEventLine
)

_line_decoder = msgspec.json.Decoder(CliLine)


class _Head(Struct):
    type: str = ""


_head_decoder = msgspec.json.Decoder(_Head)
_MUST_PARSE = frozenset({"result", "control_response", "control_request"})


class ProtocolError(ValueError):
    """A line on the CLI's stdout that is not JSON at all."""


def parse_line(raw: bytes) -> CliLine | UnknownLine:
    """Decode one stdout line. Unknown line or event types come back as `UnknownLine`."""
    try:
        return _line_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        invalid = exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a JSON line: {raw[:200]!r}") from exc
    try:
        head = _head_decoder.decode(raw)
    except msgspec.MsgspecError as exc:
        raise ProtocolError(f"not a JSON object line: {raw[:200]!r}") from exc
    # A result or control response we cannot read would lose the outcome: that is an error.
    if head.type in _MUST_PARSE:
        raise ProtocolError(f"unreadable {head.type} line: {invalid}") from invalid
    return UnknownLine(type=head.type)


_encoder = msgspec.json.Encoder()


def encode_line(obj: Any) -> bytes:
    """One stdin line for `--input-format stream-json`."""
    return _encoder.encode(obj) + b"\n"
