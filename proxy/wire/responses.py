"""OpenAI's Responses API as msgspec Structs: the request, its items, and the `response` object.

Items are one tagged union used three ways: as the caller sends them in `input` (ids and
statuses optional), as they are stored and listed by `input_items`, and as the model's
`output`. Unknown request fields are ignored, as for chat; known ones are type-checked.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

ItemStatus = Literal["in_progress", "completed", "incomplete"]


# --------------------------------------------------------------------------- content parts


class InputText(Struct, tag="input_text", tag_field="type"):
    text: str


class InputImage(Struct, tag="input_image", tag_field="type"):
    image_url: str | None = None
    file_id: str | None = None
    detail: str = "auto"


class InputFile(Struct, tag="input_file", tag_field="type"):
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(Struct, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class Refusal(Struct, tag="refusal", tag_field="type"):
    refusal: str


ContentPart = InputText | InputImage | InputFile | OutputText | Refusal


# --------------------------------------------------------------------------- items


class MessageItem(Struct, tag="message", tag_field="type", kw_only=True):
    """A message: the caller's (user, system, developer) or the model's (assistant)."""

    id: str | None = None
    status: ItemStatus | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class FunctionCallItem(Struct, tag="function_call", tag_field="type", kw_only=True):
    """A call the model made to one of the caller's functions; `namespace` names the group of a
    function offered inside a `namespace` tool (and is left out otherwise, as OpenAI does)."""

    id: str | None = None
    call_id: str
    namespace: str | UnsetType = UNSET
    name: str
    arguments: str
    status: ItemStatus | None = None


class FunctionCallOutputItem(Struct, tag="function_call_output", tag_field="type", kw_only=True):
    """The caller's result of a function call; `output` is text or a list of input parts."""

    id: str | None = None
    call_id: str
    output: str | list[ContentPart]
    status: ItemStatus | None = None


class CustomToolCallItem(Struct, tag="custom_tool_call", tag_field="type", kw_only=True):
    """A call the model made to one of the caller's custom (freeform) tools: `input` is the raw
    string the tool takes, not JSON arguments."""

    id: str | None = None
    call_id: str
    namespace: str | UnsetType = UNSET
    name: str
    input: str


class CustomToolCallOutputItem(Struct, tag="custom_tool_call_output", tag_field="type", kw_only=True):
    """The caller's result of a custom tool call."""

    id: str | None = None
    call_id: str
    output: str | list[ContentPart]


class SummaryText(Struct, tag="summary_text", tag_field="type"):
    text: str


class ReasoningItem(Struct, tag="reasoning", tag_field="type", kw_only=True):
    """The model's thinking: `summary` holds its text when the caller asked for a summary,
    `encrypted_content` the signed blocks when it asked for them (include
    `reasoning.encrypted_content`). A client sends it back in later turns (Codex does, with
    `store: false`); only content this server encoded reaches the model again."""

    id: str | None = None
    summary: list[Any] = []
    content: list[Any] | UnsetType = UNSET
    encrypted_content: str | UnsetType | None = UNSET
    status: ItemStatus | None = None


Item = (
    MessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | CustomToolCallItem
    | CustomToolCallOutputItem
    | ReasoningItem
)
KNOWN_ITEM_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "reasoning",
)


# --------------------------------------------------------------------------- request


class FormatText(Struct, tag="text", tag_field="type"):
    pass


class FormatJsonObject(Struct, tag="json_object", tag_field="type"):
    pass


class FormatJsonSchema(Struct, tag="json_schema", tag_field="type", kw_only=True):
    name: str
    schema: dict[str, Any]
    description: str | UnsetType = UNSET
    strict: bool | None = None


TextFormat = FormatText | FormatJsonObject | FormatJsonSchema


class TextParam(Struct):
    format: TextFormat = msgspec.field(default_factory=FormatText)
    verbosity: str | None = None


class ResponsesRequest(Struct, kw_only=True):
    """The request body of `POST /v1/responses`. `input` items are checked one by one after
    decoding, so that a missing `type` means a message (as OpenAI reads it) and errors name
    the item."""

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = None
    text: TextParam | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str | None = None
    include: list[str] | None = None
    background: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    max_tool_calls: int | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


responses_request_decoder = msgspec.json.Decoder(ResponsesRequest)


# --------------------------------------------------------------------------- the response object


class InputTokensDetails(Struct):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Struct):
    reasoning_tokens: int = 0


class ResponseUsage(Struct):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(Struct):
    code: str
    message: str


class IncompleteDetails(Struct):
    reason: Literal["max_output_tokens", "content_filter"]


class Reasoning(Struct):
    effort: str | None = None
    summary: str | None = None


class FunctionTool(Struct, tag="function", tag_field="type", kw_only=True):
    """A function tool as the response echoes it."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool = True


class CustomTool(Struct, tag="custom", tag_field="type", kw_only=True):
    """A custom (freeform input) tool as the response echoes it."""

    name: str
    description: str | None = None
    format: dict[str, Any] | UnsetType = UNSET


class NamespaceTool(Struct, tag="namespace", tag_field="type", kw_only=True):
    """A group of function and custom tools as the response echoes it."""

    name: str
    description: str = ""
    tools: list[FunctionTool | CustomTool] = []


EchoedTool = FunctionTool | CustomTool | NamespaceTool


class ToolChoiceFunction(Struct, tag="function", tag_field="type"):
    name: str


class ToolChoiceCustom(Struct, tag="custom", tag_field="type"):
    name: str


class EchoedText(Struct):
    format: TextFormat
    verbosity: str = "medium"


Status = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]


class Response(Struct, kw_only=True):
    """The `response` object, with every field OpenAI sends."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Status
    background: bool = False
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[Item] = []
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    reasoning: Reasoning = msgspec.field(default_factory=Reasoning)
    safety_identifier: str | None = None
    service_tier: str = "default"
    store: bool = True
    temperature: float | None = 1.0
    text: EchoedText = msgspec.field(default_factory=lambda: EchoedText(format=FormatText()))
    tool_choice: str | ToolChoiceFunction | ToolChoiceCustom = "auto"
    tools: list[EchoedTool] = []
    top_logprobs: int = 0
    top_p: float | None = 1.0
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = {}


class DeletedResponse(Struct):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputTokens(Struct):
    """The answer of `POST /v1/responses/input_tokens`."""

    input_tokens: int
    object: Literal["response.input_tokens"] = "response.input_tokens"


class ItemList(Struct, kw_only=True):
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: Literal["list"] = "list"


encoder = msgspec.json.Encoder()
response_decoder = msgspec.json.Decoder(Response)
items_decoder = msgspec.json.Decoder(list[Item])
