"""Neutral types between the OpenAI-facing proxy and a backend that runs Claude."""

from __future__ import annotations

from typing import Any, Literal, Union

from msgspec import Struct


class TextBlock(Struct, tag="text", tag_field="type"):
    text: str


class ImageSource(Struct):
    media_type: str
    data: str  # base64
    type: str = "base64"


class ImageBlock(Struct, tag="image", tag_field="type"):
    source: ImageSource


# Tool blocks join this union in a later issue.
Block = Union[TextBlock, ImageBlock]


class Turn(Struct):
    role: Literal["user", "assistant"]
    content: list[Block]


class Priority:
    """Pool priority: interactive requests are served before batch lines."""

    INTERACTIVE = 0
    BATCH = 1


class CompletionJob(Struct, kw_only=True):
    """One completion: the conversation so far, the new user input, and limits."""

    model: str  # a Claude model name already resolved by the router, never raw caller input
    system: str
    history: list[Turn]
    prompt: list[Block]
    max_output_tokens: int | None = None
    request_id: str = ""
    priority: int = Priority.INTERACTIVE
    # A JSON schema the answer must match: the CLI offers it as its StructuredOutput tool and
    # validates the model's output against it.
    json_schema: dict[str, Any] | None = None
    # The project the job runs for; warm processes are never shared between projects.
    owner: str | None = None


class TokenUsage(Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens


class Started(Struct, tag="started"):
    """The upstream began its answer; `usage` holds its prompt-side counts."""

    usage: TokenUsage


class TextDelta(Struct, tag="text_delta"):
    text: str


class Completed(Struct, tag="completed", kw_only=True):
    """The backend finished. `usage_estimated` marks output counts the upstream never reported."""

    finish_reason: Literal["stop", "length"]
    usage: TokenUsage
    cost_usd: float | None = None
    model: str | None = None
    usage_estimated: bool = False


BackendEvent = Union[Started, TextDelta, Completed]
