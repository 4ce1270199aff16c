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


class ResponseMessage(Struct):
    content: str | None
    refusal: str | None = None
    role: Literal["assistant"] = "assistant"
    annotations: list[dict] = []


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


class Delta(Struct):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET
    refusal: str | None | UnsetType = UNSET


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
    usage: Usage | None | UnsetType = UNSET


encoder = msgspec.json.Encoder()
