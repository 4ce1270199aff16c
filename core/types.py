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


class DocumentSource(Struct):
    """A PDF as base64 (`type` base64, media_type application/pdf), or plain text (`type` text,
    media_type text/plain, `data` the text itself)."""

    type: Literal["base64", "text"]
    media_type: str
    data: str


class DocumentBlock(Struct, tag="document", tag_field="type", kw_only=True, omit_defaults=True):
    """A document the caller attached, sent to the model as Anthropic's document block."""

    source: DocumentSource
    title: str | None = None


class ToolUseBlock(Struct, tag="tool_use", tag_field="type"):
    """A call the model made to one of the caller's tools; `name` is the caller's own name."""

    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(Struct, tag="tool_result", tag_field="type"):
    """The caller's answer to a tool call, as text."""

    tool_use_id: str
    content: list[TextBlock]


class ThinkingBlock(Struct, tag="thinking", tag_field="type"):
    """The model's thinking before an answer, with the signature the upstream checks when the
    block comes back (it must, unchanged, inside a tool loop)."""

    thinking: str
    signature: str


class RedactedThinkingBlock(Struct, tag="redacted_thinking", tag_field="type"):
    """Thinking the upstream encrypted: never shown to a caller, only passed back as it came."""

    data: str


Block = TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock

# How hard the model thinks. OpenAI's `reasoning_effort` values; the backend maps them onto
# the CLI's effort levels and thinking budget (docs/api.md, "Reasoning").
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


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
    # None: the CLI's own default (adaptive thinking at its default effort).
    effort: ReasoningEffort | None = None

    def continues_tool_calls(self) -> bool:
        """The new input answers the model's tool calls (rather than being a new user message)."""
        return any(isinstance(block, ToolResultBlock) for block in self.prompt)


class TokenUsage(Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    # The part of output_tokens spent thinking, where the upstream reports it.
    reasoning_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens


PROCESS_PATHS = ("warm", "rewound", "reused", "primed", "spare", "new")
"""How a pooled backend found the process for a run: the one kept for its conversation (`warm`),
one whose conversation went on from it, cut back (`rewound`), an idle one of its set-up, emptied
(`reused`), a spare made ready for its set-up (`primed`), a plain spare (`spare`), or one
started for it (`new`)."""


class Started(Struct, tag="started"):
    """The upstream began its answer; `usage` holds its prompt-side counts."""

    usage: TokenUsage
    # How the backend found the process running it (`PROCESS_PATHS`), when it keeps processes.
    process: str | None = None


class TextDelta(Struct, tag="text_delta"):
    text: str


class ThinkingDelta(Struct, tag="thinking_delta"):
    """The next piece of the model's thinking; a new thinking block begins with `first`."""

    text: str
    first: bool = False


class ThinkingSigned(Struct, tag="thinking_signed"):
    """The thinking block in progress is complete: its signature."""

    signature: str


class RedactedThinking(Struct, tag="redacted_thinking"):
    """A redacted thinking block: counted and passed back, never shown."""

    data: str


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
    # How the backend found the process that ran it (`PROCESS_PATHS`), when it keeps processes.
    process: str | None = None


class Retracted(Struct, tag="retracted"):
    """Everything the answer gave so far is void: the upstream's answer broke off and its retry
    differs from it. The events that follow give the answer again from its start."""


ThinkingEvent = ThinkingDelta | ThinkingSigned | RedactedThinking

BackendEvent = (
    Started
    | TextDelta
    | ThinkingDelta
    | ThinkingSigned
    | RedactedThinking
    | ToolCallStarted
    | ToolCallArguments
    | Retracted
    | Completed
)
