"""OpenAI `CreateChatCompletionRequest` as msgspec Structs.

Unknown fields are ignored (OpenAI adds fields often and SDKs send them); known fields are
type-checked by the decoder. Content parts and messages are tagged unions, so a new part or
role is one more Struct.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct


class TextPart(Struct, tag="text", tag_field="type"):
    text: str


class ImageUrl(Struct):
    url: str
    detail: str = "auto"


class ImagePart(Struct, tag="image_url", tag_field="type"):
    image_url: ImageUrl


class InputAudioPart(Struct, tag="input_audio", tag_field="type"):
    input_audio: dict[str, Any]


class FilePart(Struct, tag="file", tag_field="type"):
    file: dict[str, Any]


class RefusalPart(Struct, tag="refusal", tag_field="type"):
    refusal: str


ContentPart = TextPart | ImagePart | InputAudioPart | FilePart | RefusalPart


class FunctionCall(Struct):
    name: str
    arguments: str


class ToolCall(Struct):
    id: str
    function: FunctionCall | None = None
    type: str = "function"
    custom: dict[str, Any] | None = None  # a custom tool's call, refused with a clear message


class SystemMessage(Struct, tag="system", tag_field="role"):
    content: str | list[ContentPart]
    name: str | None = None


class DeveloperMessage(Struct, tag="developer", tag_field="role"):
    content: str | list[ContentPart]
    name: str | None = None


class UserMessage(Struct, tag="user", tag_field="role"):
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(Struct, tag="assistant", tag_field="role"):
    content: str | list[ContentPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    audio: dict[str, Any] | None = None


class ToolMessage(Struct, tag="tool", tag_field="role"):
    content: str | list[ContentPart]
    tool_call_id: str


class FunctionMessage(Struct, tag="function", tag_field="role"):
    content: str | None
    name: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class StreamOptions(Struct):
    include_usage: bool = False
    include_obfuscation: bool = False


class ChatCompletionRequest(Struct, kw_only=True):
    """The request body of `POST /v1/chat/completions`."""

    model: str
    messages: list[Message]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = 1
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    verbosity: str | None = None


chat_request_decoder = msgspec.json.Decoder(ChatCompletionRequest)
