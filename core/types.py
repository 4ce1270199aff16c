"""Neutral types between the OpenAI-facing proxy and a backend that runs Claude."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct


class TextBlock(Struct, tag="text", tag_field="type"):
    text: str


class ImageSource(Struct):
    media_type: str
    data: str  # base64
    type: str = "base64"


class ImageBlock(Struct, tag="image", tag_field="type"):
    source: ImageSource


class ToolUseBlock(Struct, tag="tool_use", tag_field="type"):
    """A call the model made to one of the caller's tools; `name` is the caller's own name."""

    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(Struct, tag="tool_result", tag_field="type"):
    """The caller's answer to a tool call, as text."""

    tool_use_id: str
    content: list[TextBlock]


Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock


class ToolSpec(Struct, kw_only=True):
    """A function the caller offers the model: its name, description and JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})


class Turn(Struct):
    role: Literal["user", "assistant"]
    content: list[Block]


class ModelChoice(Struct, frozen=True):
    """The model a request asked for and the Claude model that serves it."""

    requested: str
    claude_model: str  # haiku, sonnet, opus or a checked claude-* id: safe for argv


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
    # The caller's tools. `tool_choice` is "auto", "required" (the answer must call one) or
    # "none" (the answer must not call one; tools are then offered only for earlier calls).
    tools: list[ToolSpec] = []
    tool_choice: Literal["auto", "required", "none"] = "auto"
    parallel_tool_calls: bool = True

    def continues_tool_calls(self) -> bool:
        """The new input answers the model's tool calls (rather than being a new user message)."""
        return any(isinstance(block, ToolResultBlock) for block in self.prompt)


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


class ToolCallStarted(Struct, tag="tool_call"):
    """The model began calling a tool; `index` counts the calls within this answer."""

    index: int
    id: str
    name: str


class ToolCallArguments(Struct, tag="tool_arguments"):
    """The next piece of a tool call's JSON arguments."""

    index: int
    arguments: str


class Completed(Struct, tag="completed", kw_only=True):
    """The backend finished. `usage_estimated` marks output counts the upstream never reported."""

    finish_reason: Literal["stop", "length", "tool_calls"]
    usage: TokenUsage
    cost_usd: float | None = None
    model: str | None = None
    usage_estimated: bool = False
    # The Claude account that served the run (`accounts` in the config; "default" without).
    account: str = "default"


class Retracted(Struct, tag="retracted"):
    """Everything the answer gave so far is void: the upstream's answer broke off and its retry
    differs from it. The events that follow give the answer again from its start."""


BackendEvent = Started | TextDelta | ToolCallStarted | ToolCallArguments | Retracted | Completed
