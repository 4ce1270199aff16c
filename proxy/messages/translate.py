"""A Messages API request as a pipeline `Submission`.

Turns, tool calls and tool results become the same neutral turns as chat messages
(`proxy.chat.tools.ToolTurns`), so a tool loop continues a suspended CLI process exactly as a
chat one does. A `role: "system"` message inside `messages` (Claude Code sends one) stays at
its place: a block of its own, marked as system text, in the user turn it sits in or before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from core.errors import InvalidRequest
from core.types import (
    Block,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolSpec,
    Turn,
)
from proxy.chat.images import fetch_image_urls, image_block
from proxy.chat.tools import ToolSetup, ToolTurns, choose_tools, function_spec
from proxy.chat.translate import MAX_IMAGE_BYTES
from proxy.documents import Documents
from proxy.messages.documents import document_blocks, document_text
from proxy.messages.thinking import thinking_effort
from proxy.pipeline import Submission
from proxy.selection import text_features
from proxy.settings import ImageSettings
from proxy.wire.messages import (
    ContentBlockParam,
    ImageParam,
    MessageParam,
    MessagesRequest,
    RedactedThinkingParam,
    TextParam,
    ThinkingParam,
    ToolResultParam,
    ToolResultPart,
    ToolUseParam,
)

# Tools the model finds by searching (`defer_loading`) are all offered up front here, so a
# tool-search tool has nothing to do and is left out rather than refused.
_DROPPED_TOOL_PREFIXES = ("tool_search_tool_",)
_encode = msgspec.json.Encoder()


def _invalid(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def system_note(text: str) -> TextBlock:
    """A system message met inside `messages`, as the model sees it at that place."""
    return TextBlock(f"<system-reminder>\n{text}\n</system-reminder>")


def validate(request: MessagesRequest, *, counting: bool) -> None:
    """Anthropic's own bounds; sampling parameters are checked, then ignored (the CLI has no way
    to pass them on)."""
    if not counting:
        if request.max_tokens is None:
            raise _invalid("max_tokens: Field required", "max_tokens")
        if request.max_tokens < 1:
            raise _invalid("max_tokens: must be greater than or equal to 1", "max_tokens")
    if not request.messages:
        raise _invalid("messages: at least one message is required", "messages")
    if request.temperature is not None and not 0 <= request.temperature <= 1:
        raise _invalid("temperature: must be between 0 and 1", "temperature")
    if request.top_p is not None and not 0 <= request.top_p <= 1:
        raise _invalid("top_p: must be between 0 and 1", "top_p")
    if request.top_k is not None and request.top_k < 0:
        raise _invalid("top_k: must be greater than or equal to 0", "top_k")
    if request.mcp_servers:
        raise _invalid("mcp_servers: the MCP connector is not supported by this proxy", "mcp_servers")
    thinking = request.thinking or {}
    if thinking.get("type") == "enabled" and request.max_tokens is not None:
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise _invalid("thinking.budget_tokens: must be at least 1024", "thinking.budget_tokens")
        if budget >= request.max_tokens:
            raise _invalid("max_tokens: must be greater than thinking.budget_tokens", "max_tokens")


def _system_text(system: str | list[TextParam] | None) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(block.text for block in system if block.text)


def _tool_setup(request: MessagesRequest, used: set[str]) -> ToolSetup:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(request.tools or []):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            if isinstance(kind, str) and kind.startswith(_DROPPED_TOOL_PREFIXES):
                continue
            raise InvalidRequest(
                f"tools.{i}: server tools such as '{kind}' are not supported by this proxy; "
                "only client tools (name, description, input_schema) reach the model.",
                param=f"tools.{i}.type",
                code="unsupported_parameter",
            )
        if "input_schema" not in tool:
            raise _invalid(f"tools.{i}.input_schema: Field required", f"tools.{i}.input_schema")
        specs.append(
            function_spec(
                tool.get("name"), tool.get("description"), tool["input_schema"], param=f"tools.{i}", known=specs
            )
        )
    choice = request.tool_choice
    if choice is None:
        return choose_tools(specs, mode=None, parallel=None, used=used)
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if not specs and kind in ("auto", "none"):
        return choose_tools(specs, mode=None, parallel=None, used=used)
    if kind == "auto":
        return choose_tools(specs, mode="auto", parallel=parallel, used=used)
    if kind == "none":
        return choose_tools(specs, mode="none", parallel=parallel, used=used)
    if kind == "any":
        return choose_tools(specs, mode="required", parallel=parallel, used=used)
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _invalid("tool_choice.name: Field required", "tool_choice.name")
        return choose_tools(specs, mode="required", function=choice["name"], parallel=parallel, used=used)
    raise _invalid("tool_choice.type: must be one of 'auto', 'any', 'tool' or 'none'", "tool_choice.type")


def image_urls(request: MessagesRequest) -> list[tuple[str, str]]:
    """(url, param) of every URL image of a turn, for fetching when the operator allows (an
    image in a tool result reaches the model as a note only: it is not fetched)."""
    return [
        (str(block.source.get("url")), f"messages.{i}.content.{j}.source.url")
        for i, message in enumerate(request.messages)
        if not isinstance(message.content, str)
        for j, block in enumerate(message.content)
        if isinstance(block, ImageParam) and block.source.get("type") == "url"
    ]


class _Conversation:
    """Neutral turns from Anthropic messages, checked as Anthropic checks them."""

    def __init__(self, fetched: Mapping[str, str], max_image_bytes: int) -> None:
        self.turns: list[Turn] = []
        self.tools = ToolTurns()
        self.texts: list[str] = []
        self.user_turns = 0
        self.latest = ""
        self._held_system: list[Block] = []  # system notes waiting for the next user turn
        self._fetched = fetched
        self._max_image_bytes = max_image_bytes
        self._documents = Documents()  # counts the request's documents against Anthropic's limits

    def _add(self, role: Literal["user", "assistant"], blocks: list[Block]) -> None:
        if role == "user" and self._held_system:
            blocks, self._held_system = [*self._held_system, *blocks], []
        if not blocks:
            return
        if self.turns and self.turns[-1].role == role:
            self.turns[-1].content.extend(blocks)  # Anthropic merges consecutive same-role messages
        else:
            self.turns.append(Turn(role=role, content=blocks))

    def add(self, message: MessageParam, i: int) -> None:
        param = f"messages.{i}.content"
        parts: list[ContentBlockParam] = (
            [TextParam(text=message.content)] if isinstance(message.content, str) else message.content
        )
        if message.role == "system":
            text = "\n\n".join(self._text_only(parts, param))
            if text:
                note = system_note(text)
                if self.turns and self.turns[-1].role == "user":
                    self.turns[-1].content.append(note)
                else:
                    self._held_system.append(note)
            return
        if message.role == "assistant":
            self._check_answered(i)
        blocks = [block for j, part in enumerate(parts) for block in self._block(part, message.role, f"{param}.{j}")]
        if message.role == "user":
            self.user_turns += 1
            self.latest = "".join(block.text for block in blocks if isinstance(block, TextBlock))
            self.texts.append(self.latest)
            # Tool results come first in a turn, as the upstream wants them.
            blocks.sort(key=lambda block: not isinstance(block, ToolResultBlock))
        self._add(message.role, blocks)

    def _text_only(self, parts: list[ContentBlockParam], param: str) -> list[str]:
        texts = []
        for j, part in enumerate(parts):
            if not isinstance(part, TextParam):
                raise _invalid(f"{param}.{j}: system messages take text blocks only", f"{param}.{j}")
            if part.text:
                texts.append(part.text)
        return texts

    def _block(self, part: ContentBlockParam, role: str, param: str) -> list[Block]:
        if isinstance(part, TextParam):
            return [TextBlock(part.text)] if part.text else []
        if isinstance(part, (ThinkingParam, RedactedThinkingParam)):
            if role != "assistant":
                raise _invalid(f"{param}: thinking blocks belong in assistant messages", param)
            # Signed thinking goes back to the upstream with the calls or text that follow it.
            if isinstance(part, RedactedThinkingParam):
                return [RedactedThinkingBlock(part.data)]
            return [ThinkingBlock(part.thinking, part.signature)]
        if isinstance(part, ToolUseParam):
            if role != "assistant":
                raise _invalid(f"{param}: tool_use blocks belong in assistant messages", param)
            return [
                self.tools.call(
                    part.id,
                    part.name,
                    _encode.encode(part.input).decode(),
                    name_param=f"{param}.name",
                    arguments_param=f"{param}.input",
                )
            ]
        if isinstance(part, ToolResultParam):
            if role != "user":
                raise _invalid(f"{param}: tool_result blocks belong in user messages", param)
            text = self._result_text(part, param)
            block = self.tools.answer(part.tool_use_id, text)
            if block is None:
                raise _invalid(
                    f"{param}: unexpected `tool_use_id` found in `tool_result` blocks: {part.tool_use_id}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    f"{param}.tool_use_id",
                )
            return [block]
        if isinstance(part, ImageParam):
            if role != "user":
                raise _invalid(f"{param}: only user messages may carry images", param)
            return [self._image(part, param)]
        if role != "user":
            raise _invalid(f"{param}: only user messages may carry documents", param)
        return document_blocks(part, param, self._documents)

    def _image(self, part: ImageParam, param: str) -> Block:
        source = part.source
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
            return image_block(url, f"{param}.source", max_bytes=self._max_image_bytes)
        if source.get("type") == "url":
            url = str(source.get("url"))
            return image_block(self._fetched.get(url, url), f"{param}.source.url", max_bytes=self._max_image_bytes)
        raise InvalidRequest(
            f"{param}.source: images by file id are not supported; send base64 data.",
            param=f"{param}.source",
            code="unsupported_parameter",
        )

    def _result_text(self, part: ToolResultParam, param: str) -> str:
        content = part.content
        if content is None:
            text = ""
        elif isinstance(content, str):
            text = content
        else:
            text = "\n".join(_result_part_text(piece, f"{param}.content.{k}") for k, piece in enumerate(content))
        # The CLI's tool results carry text only: an error result says so in its text.
        return f"Error: {text}" if part.is_error else text

    def _check_answered(self, i: int) -> None:
        if self.tools.pending:
            missing = ", ".join(self.tools.unanswered())
            raise _invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}. "
                "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                f"messages.{i}",
            )

    def finish(self, count: int) -> None:
        """After the last of `count` messages."""
        self._check_answered(count)
        if self._held_system:
            self._add("user", [])


def _result_part_text(part: ToolResultPart, param: str) -> str:
    if isinstance(part, TextParam):
        return part.text
    if isinstance(part, ImageParam):
        # Tool results reach the model as text through the tool bridge.
        return "[an image the tool returned is not passed on by this proxy]"
    return document_text(part, param)


async def messages_submission(request: MessagesRequest, images: ImageSettings, *, counting: bool = False) -> Submission:
    """The submission for a Messages request, its URL images fetched when the operator allows."""
    validate(request, counting=counting)
    fetched = await fetch_image_urls(image_urls(request), images)
    return to_submission(request, fetched=fetched, max_image_bytes=images.max_bytes)


def to_submission(
    request: MessagesRequest, *, fetched: Mapping[str, str] | None = None, max_image_bytes: int = MAX_IMAGE_BYTES
) -> Submission:
    """Splits the messages into earlier turns and the new user input; raises 400 for what
    Anthropic refuses or this backend cannot do honestly."""
    conversation = _Conversation(fetched or {}, max_image_bytes)
    for i, message in enumerate(request.messages):
        conversation.add(message, i)
    conversation.finish(len(request.messages))
    setup = _tool_setup(request, conversation.tools.used)
    system = [text for text in (_system_text(request.system), setup.instruction) if text]
    turns = conversation.turns
    if not turns or turns[-1].role != "user":
        raise _invalid(
            "messages: the last message must be a user message with content "
            "(a prefilled assistant turn is not supported by this proxy)",
            "messages",
        )
    return Submission(
        model=request.model,
        system="\n\n".join(system),
        history=turns[:-1],
        prompt=turns[-1].content,
        max_output_tokens=request.max_tokens,
        tools=setup.specs,
        tool_choice=setup.choice,
        parallel_tool_calls=not (request.tool_choice or {}).get("disable_parallel_tool_use", False),
        stops=list(request.stop_sequences or []),
        stream=request.stream,
        effort=thinking_effort(request),
        sampling={
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": request.top_k,
            "thinking": request.thinking,
        },
        features=lambda: text_features(
            texts=conversation.texts,
            latest=conversation.latest,
            turns=conversation.user_turns,
            tools=bool(setup.specs),
            schema=False,
        ),
    )
