"""Anthropic's Messages API (`POST /v1/messages`) as msgspec Structs: the request, the message
it answers with, and the server-sent events of a streamed one.

Unknown fields are ignored: Claude Code and the SDKs send fields this server has no use for
(`output_config`, `context_management`, `container`, ...), and a new one must not make an
old proxy fail. Content blocks are a tagged union on `type`; a block type that is not listed
is a 400 naming where it is.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

# --- request ---------------------------------------------------------------------------


class TextParam(Struct, tag="text", tag_field="type"):
    text: str
    cache_control: dict[str, Any] | None = None
    citations: Any = None


class ImageParam(Struct, tag="image", tag_field="type"):
    """`source` is `{"type": "base64", "media_type", "data"}` or `{"type": "url", "url"}`."""

    source: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class DocumentParam(Struct, tag="document", tag_field="type"):
    """`source` is a plain-text, content-block, base64 (PDF) or URL document."""

    source: dict[str, Any]
    title: str | None = None
    context: str | None = None
    cache_control: dict[str, Any] | None = None
    citations: Any = None


class SearchResultParam(Struct, tag="search_result", tag_field="type"):
    source: str
    title: str
    content: list[TextParam]
    cache_control: dict[str, Any] | None = None
    citations: Any = None


ToolResultPart = TextParam | ImageParam | DocumentParam | SearchResultParam


class ToolUseParam(Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultParam(Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[ToolResultPart] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingParam(Struct, tag="thinking", tag_field="type"):
    """Earlier thinking, as a client sends it back; its signature is the upstream's."""

    thinking: str
    signature: str = ""


class RedactedThinkingParam(Struct, tag="redacted_thinking", tag_field="type"):
    data: str


ContentBlockParam = (
    TextParam
    | ImageParam
    | DocumentParam
    | SearchResultParam
    | ToolUseParam
    | ToolResultParam
    | ThinkingParam
    | RedactedThinkingParam
)


class MessageParam(Struct):
    """A user or assistant turn, or (as Claude Code sends it) a system message at its place."""

    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlockParam]


class MessagesRequest(Struct, kw_only=True):
    """`POST /v1/messages` and `POST /v1/messages/count_tokens` (which takes no `max_tokens`)."""

    model: str
    messages: list[MessageParam]
    max_tokens: int | None = None
    system: str | list[TextParam] | None = None
    stream: bool = False
    stop_sequences: list[str] | None = None
    # Tools are checked by hand: client tools and server tools (web search, code execution)
    # differ in every field, and a server tool gets a clear refusal rather than a decode error.
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    service_tier: str | None = None
    mcp_servers: list[Any] | None = None
    output_config: dict[str, Any] | None = None


messages_request_decoder = msgspec.json.Decoder(MessagesRequest)


# --- response --------------------------------------------------------------------------


class TextOut(Struct, tag="text", tag_field="type"):
    text: str
    citations: None = None


class ToolUseOut(Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class ThinkingOut(Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class RedactedThinkingOut(Struct, tag="redacted_thinking", tag_field="type"):
    data: str


ContentBlock = TextOut | ToolUseOut | ThinkingOut | RedactedThinkingOut

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class Usage(Struct):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class Message(Struct, kw_only=True):
    id: str
    content: list[ContentBlock]
    model: str
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"


class TokenCount(Struct):
    input_tokens: int


class ErrorDetail(Struct):
    type: str
    message: str


class ErrorBody(Struct):
    """Anthropic's error object, as a body and as a stream's `error` event."""

    error: ErrorDetail
    type: Literal["error"] = "error"


# --- stream events ---------------------------------------------------------------------


class MessageStart(Struct, tag="message_start", tag_field="type"):
    message: Message


class ContentBlockStart(Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: ContentBlock


class TextDeltaOut(Struct, tag="text_delta", tag_field="type"):
    text: str


class InputJsonDelta(Struct, tag="input_json_delta", tag_field="type"):
    partial_json: str


class ThinkingDeltaOut(Struct, tag="thinking_delta", tag_field="type"):
    thinking: str


class SignatureDelta(Struct, tag="signature_delta", tag_field="type"):
    signature: str


class ContentBlockDelta(Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: TextDeltaOut | InputJsonDelta | ThinkingDeltaOut | SignatureDelta


class ContentBlockStop(Struct, tag="content_block_stop", tag_field="type"):
    index: int


class MessageDeltaBody(Struct):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDeltaUsage(Struct):
    output_tokens: int
    input_tokens: int | UnsetType = UNSET
    cache_creation_input_tokens: int | UnsetType = UNSET
    cache_read_input_tokens: int | UnsetType = UNSET


class MessageDelta(Struct, tag="message_delta", tag_field="type"):
    delta: MessageDeltaBody
    usage: MessageDeltaUsage


class MessageStop(Struct, tag="message_stop", tag_field="type"):
    pass


class Ping(Struct, tag="ping", tag_field="type"):
    pass


StreamEvent = (
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop | Ping
)


# --- models (GET /v1/models with an `anthropic-version` header) ---------------------------


class ModelInfo(Struct, kw_only=True):
    id: str
    display_name: str
    created_at: str  # RFC 3339
    type: Literal["model"] = "model"
    lifecycle: Literal["active"] = "active"


class ModelPage(Struct, kw_only=True):
    data: list[ModelInfo]
    has_more: bool
    first_id: str | None
    last_id: str | None


encoder = msgspec.json.Encoder()
