"""OpenAI chat completion responses and stream chunks as msgspec Structs.

Required fields stay on the wire even when null (`refusal`, `logprobs`, a chunk's
`finish_reason`); fields OpenAI leaves out when unused are `UNSET` and omitted.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class PromptTokensDetails(Struct):
    cached_tokens: int = 0
    audio_tokens: int = 0


class CompletionTokensDetails(Struct):
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = msgspec.field(default_factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = msgspec.field(default_factory=CompletionTokensDetails)


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class ResponseMessage(Struct):
    content: str | None
    refusal: str | None = None
    role: Literal["assistant"] = "assistant"
    annotations: list[dict] = []
    # OpenAI leaves the key out when the model called no tool.
    tool_calls: list[ToolCall] | UnsetType = UNSET
    # The model's thinking, where chat front ends look for it; left out when it did not think.
    reasoning_content: str | UnsetType = UNSET


class Choice(Struct):
    index: int
    message: ResponseMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    object: Literal["chat.completion"] = "chat.completion"
    service_tier: str = "default"
    system_fingerprint: str | None = None


class FunctionCallDelta(Struct):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallDelta(Struct):
    """The first delta of a call carries its id, type and name; later ones pieces of arguments."""

    index: int
    function: FunctionCallDelta
    id: str | UnsetType = UNSET
    type: Literal["function"] | UnsetType = UNSET


class Delta(Struct):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType | None = UNSET
    refusal: str | UnsetType | None = UNSET
    tool_calls: list[ToolCallDelta] | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET


class ChunkChoice(Struct):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    service_tier: str = "default"
    system_fingerprint: str | None = None
    # OpenAI sends `usage: null` on every chunk when include_usage is set, and no key otherwise.
    usage: Usage | UnsetType | None = UNSET


encoder = msgspec.json.Encoder()
