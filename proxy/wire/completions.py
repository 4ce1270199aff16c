"""OpenAI's legacy `POST /v1/completions` (text completions), as msgspec Structs."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import Struct

from proxy.wire.chat_request import StreamOptions
from proxy.wire.chat_response import Usage


class CompletionRequest(Struct, kw_only=True):
    model: str
    prompt: str | list[str | int | list[int]]
    max_tokens: int | None = None
    n: int | None = 1
    best_of: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    echo: bool | None = False
    suffix: str | None = None
    logprobs: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None


class TextChoice(Struct):
    text: str
    index: int
    finish_reason: Literal["stop", "length", "content_filter"] | None
    logprobs: None = None


class TextCompletion(Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[TextChoice]
    object: Literal["text_completion"] = "text_completion"
    system_fingerprint: str | None = None
    usage: Usage | msgspec.UnsetType | None = msgspec.UNSET


completion_request_decoder = msgspec.json.Decoder(CompletionRequest)
