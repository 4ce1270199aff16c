"""OpenAI function calling in neutral terms: the offered tools, the tool choice, and the
assistant tool calls and tool results of earlier turns, checked as OpenAI checks them."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import msgspec
from msgspec import Struct

from core.errors import InvalidRequest
from core.types import TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock
from proxy.wire.chat_request import ChatCompletionRequest, TextPart, ToolCall, ToolMessage

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# The Anthropic API takes tool ids of this shape only; others are mapped, the same way each time.
_UPSTREAM_ID = re.compile(r"[a-zA-Z0-9_-]{1,200}")
_decode = msgspec.json.Decoder()


def upstream_id(call_id: str) -> str:
    if _UPSTREAM_ID.fullmatch(call_id):
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:24]


class ToolTurns:
    """Walks the conversation: every assistant tool call must be answered by a tool result
    before the conversation goes on, and every tool result must answer one. Surface-neutral:
    chat messages and Responses items both go through `call` and `answer`."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}  # upstream id -> the caller's id, in call order
        self.used: set[str] = set()

    def call(self, call_id: str, name: str, arguments: str, *, name_param: str, arguments_param: str) -> ToolUseBlock:
        """One earlier call of the model, as the tool_use block the upstream saw."""
        if not _NAME.fullmatch(name):
            raise InvalidRequest("Invalid function name.", param=name_param)
        try:
            decoded = _decode.decode(arguments or "{}")
        except msgspec.DecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            raise InvalidRequest(
                "Tool call arguments must be a JSON object encoded as a string.", param=arguments_param
            )
        upstream = upstream_id(call_id)
        self.pending[upstream] = call_id
        self.used.add(name)
        return ToolUseBlock(id=upstream, name=name, input=decoded)

    def answer(self, call_id: str, text: str) -> ToolResultBlock | None:
        """The tool_result block answering `call_id`; None when no pending call has that id."""
        upstream = upstream_id(call_id)
        if upstream not in self.pending:
            return None
        del self.pending[upstream]
        return ToolResultBlock(tool_use_id=upstream, content=[TextBlock(text)] if text else [])

    def unanswered(self) -> list[str]:
        """The caller's ids of calls still waiting for a result (and forgets them)."""
        missing = list(self.pending.values())
        self.pending.clear()
        return missing

    def calls(self, tool_calls: list[ToolCall], i: int) -> list[ToolUseBlock]:
        blocks = []
        for j, call in enumerate(tool_calls):
            param = f"messages[{i}].tool_calls[{j}]"
            if call.type != "function":
                raise InvalidRequest(
                    f"Only function tool calls are supported, got '{call.type}'.",
                    param=f"{param}.type",
                    code="unsupported_parameter",
                )
            if call.function is None:
                raise InvalidRequest(f"Missing required parameter: '{param}.function'.", param=f"{param}.function")
            blocks.append(
                self.call(
                    call.id,
                    call.function.name,
                    call.function.arguments,
                    name_param=f"{param}.function.name",
                    arguments_param=f"{param}.function.arguments",
                )
            )
        return blocks

    def result(self, message: ToolMessage, i: int) -> ToolResultBlock:
        block = self.answer(message.tool_call_id, _tool_text(message.content, f"messages[{i}].content"))
        if block is None:
            raise InvalidRequest(
                "Invalid parameter: messages with role 'tool' must be a response to a preceding message "
                f"with 'tool_calls' (no pending call has the id '{message.tool_call_id}').",
                param=f"messages[{i}].tool_call_id",
            )
        return block

    def check_answered(self, i: int) -> None:
        """Called at each non-tool message and at the end."""
        if self.pending:
            missing = ", ".join(self.unanswered())
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {missing}",
                param=f"messages[{i}]" if i else "messages",
            )


def _tool_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for k, part in enumerate(content):
        if not isinstance(part, TextPart):
            raise InvalidRequest("Tool messages take text content only.", param=f"{param}[{k}]")
        texts.append(part.text)
    return "".join(texts)


class ToolSetup(Struct, kw_only=True):
    specs: list[ToolSpec]
    choice: Literal["auto", "required", "none"]
    instruction: str = ""


def function_spec(name: Any, description: Any, parameters: Any, *, param: str, known: list[ToolSpec]) -> ToolSpec:
    """One function tool, checked as OpenAI checks it; `param` is where its fields live."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(
            "Invalid 'name': a function name is 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes.",
            param=f"{param}.name",
        )
    if any(spec.name == name for spec in known):
        raise InvalidRequest(f"Duplicate function name '{name}'.", param=f"{param}.name")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise InvalidRequest("'parameters' must be a JSON schema object.", param=f"{param}.parameters")
    description = description or ""
    if not isinstance(description, str):
        raise InvalidRequest("'description' must be a string.", param=f"{param}.description")
    return ToolSpec(name=name, description=description, parameters=parameters)


def _specs(tools: list[dict[str, Any]]) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InvalidRequest(
                f"Only tools of type 'function' are supported, got {kind!r}.",
                param=f"tools[{i}].type",
                code="unsupported_parameter" if kind else None,
            )
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest("Missing required parameter: 'function'.", param=f"tools[{i}].function")
        specs.append(
            function_spec(
                function.get("name"),
                function.get("description"),
                function.get("parameters"),
                param=f"tools[{i}].function",
                known=specs,
            )
        )
    return specs


def tool_setup(request: ChatCompletionRequest, *, used: set[str]) -> ToolSetup:
    """Which tools the model is offered, what it must do with them, and the instruction that
    tells it so (the CLI has no tool_choice: the proxy instructs, then checks the answer)."""
    specs = _specs(request.tools or [])
    choice = request.tool_choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return choose_tools(specs, mode="required", function=name, parallel=request.parallel_tool_calls, used=used)
    if choice is None or choice in ("auto", "none", "required"):
        return choose_tools(specs, mode=choice, parallel=request.parallel_tool_calls, used=used)  # type: ignore[arg-type]  # one of the three
    if not specs:
        choose_tools(specs, mode="auto", parallel=None, used=used)  # the "only with tools" error first, as OpenAI
    raise InvalidRequest(
        "Invalid 'tool_choice': use 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}.",
        param="tool_choice",
    )


def choose_tools(
    specs: list[ToolSpec],
    *,
    mode: Literal["auto", "required", "none"] | None,
    function: Any = None,
    parallel: bool | None,
    used: set[str],
) -> ToolSetup:
    """What the model is offered and told, for a tool choice of any surface: `mode` None when
    the caller gave none, `function` the name of a function the answer must call."""
    if mode is not None and not specs:
        raise InvalidRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    one_at_a_time = " Call at most one tool." if parallel is False else ""
    if function is not None:
        if not any(spec.name == function for spec in specs):
            raise InvalidRequest(f"Invalid 'tool_choice': no tool named {function!r} was given.", param="tool_choice")
        offered = [spec for spec in specs if spec.name == function or spec.name in used]
        return ToolSetup(
            specs=offered,
            choice="required",
            instruction=f"You must call the tool `{function}` in this answer." + one_at_a_time,
        )
    if mode is None or mode == "auto":
        return ToolSetup(specs=specs, choice="auto" if specs else "none", instruction=one_at_a_time.strip())
    if mode == "none":
        # Earlier calls still need their tools' definitions; otherwise the model sees none.
        offered = [spec for spec in specs if spec.name in used]
        note = "Do not call any tool now; answer in text." if offered else ""
        return ToolSetup(specs=offered, choice="none", instruction=note)
    return ToolSetup(
        specs=specs,
        choice="required",
        instruction="You must call at least one tool in this answer." + one_at_a_time,
    )
