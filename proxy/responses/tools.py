"""The tools of a Responses request as the model sees them, and the way back to the caller's names.

The model (through the CLI) only knows function tools with JSON-object input and flat names.
So a `namespace` tool's inner tools are offered as `<namespace>__<name>`, and a `custom` tool
(freeform string input) as a function taking one string property `input`. `ToolNames` keeps
what each offered name stands for, so that calls and earlier items go back and forth under the
caller's names: a `function_call` with `namespace`, a `custom_tool_call` with its raw `input`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import UNSET, Struct

from core.errors import InvalidRequest
from core.types import ToolSpec
from proxy.chat.tools import ToolSetup, choose_tools, function_spec
from proxy.wire.responses import (
    CustomTool,
    EchoedTool,
    FunctionTool,
    NamespaceTool,
    ResponsesRequest,
    ToolChoiceCustom,
    ToolChoiceFunction,
)

# Tools OpenAI runs itself: this server cannot, so they are left out of what the model sees
# (and named in a response header) rather than failing requests that merely offer them.
HOSTED_TOOLS = ("web_search", "file_search", "code_interpreter", "image_generation", "computer_use", "computer", "mcp")
NAMESPACE_SEPARATOR = "__"
# The model's tool-name rules (as for function names): what a namespaced name must fit too.
_MODEL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CUSTOM_INPUT = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's whole input, as raw text."}},
    "required": ["input"],
    "additionalProperties": False,
}
_decode = msgspec.json.Decoder()


def _unsupported(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="unsupported_parameter")


def hosted(kind: Any) -> bool:
    return isinstance(kind, str) and kind.startswith(HOSTED_TOOLS)


class Offered(Struct, frozen=True):
    """What one name offered to the model stands for."""

    name: str
    namespace: str | None = None
    custom: bool = False


class ToolNames:
    """Offered name <-> the caller's (namespace, name, kind). Names not offered (an earlier
    call to a tool this request no longer lists) pass through as plain functions."""

    def __init__(self) -> None:
        self.offered: dict[str, Offered] = {}

    def add(self, flat: str, offered: Offered) -> None:
        self.offered[flat] = offered

    def lookup(self, flat: str) -> Offered:
        return self.offered.get(flat) or Offered(name=flat)

    def flat(self, name: str, namespace: str | None) -> str:
        return name if not namespace else f"{namespace}{NAMESPACE_SEPARATOR}{name}"


def custom_arguments(raw_input: str) -> str:
    """A custom tool call's raw input as the JSON arguments the model saw."""
    return msgspec.json.encode({"input": raw_input}).decode()


def custom_input(arguments: str) -> str:
    """The raw input of a custom tool call the model made as JSON arguments; arguments of
    another shape are passed on as they are rather than lost."""
    try:
        decoded = _decode.decode(arguments or "{}")
    except msgspec.DecodeError:
        return arguments
    if isinstance(decoded, dict) and isinstance(decoded.get("input"), str):
        return str(decoded["input"])
    return arguments


class Tools(Struct, kw_only=True):
    specs: list[ToolSpec]
    echoed: list[EchoedTool]
    omitted: list[str]
    names: ToolNames


def _custom_description(tool: dict[str, Any]) -> str:
    # The model writes the input as a JSON string: the format the caller asked for (Codex's
    # apply_patch gives a grammar) is told in the description, as nothing else would carry it.
    description = str(tool.get("description") or "")
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and fmt.get("definition"):
        description += f"\n\nThe input must follow this {fmt.get('syntax', '')} grammar:\n{fmt['definition']}"
    return description


def _one(tool: Any, param: str, namespace: str | None, tools: Tools) -> FunctionTool | CustomTool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind not in ("function", "custom"):
        allowed = "'function' and 'custom'" if namespace else "'function', 'custom' and 'namespace'"
        raise _unsupported(f"Tools of type {kind!r} are not supported; use {allowed}.", f"{param}.type")
    name = tool.get("name")
    flat = tools.names.flat(name, namespace) if isinstance(name, str) and name else name
    if namespace is not None and isinstance(flat, str) and not _MODEL_NAME.fullmatch(flat):
        raise InvalidRequest(
            f"The namespaced tool name '{flat}' must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and "
            "dashes: shorten the namespace or the tool's name.",
            param=f"{param}.name",
        )
    if kind == "custom":
        description = _custom_description(tool)
        spec = function_spec(flat, description, _CUSTOM_INPUT, param=param, known=tools.specs)
        echoed: FunctionTool | CustomTool = CustomTool(
            name=str(name), description=tool.get("description"), format=tool.get("format") or UNSET
        )
    else:
        spec = function_spec(flat, tool.get("description"), tool.get("parameters"), param=param, known=tools.specs)
        strict = tool.get("strict")
        echoed = FunctionTool(
            name=str(name),
            description=tool.get("description"),
            parameters=spec.parameters,
            strict=strict if isinstance(strict, bool) else True,
        )
    tools.specs.append(spec)
    tools.names.add(spec.name, Offered(name=str(name), namespace=namespace, custom=kind == "custom"))
    return echoed


def offered_tools(request: ResponsesRequest) -> Tools:
    """The request's tools: specs for the model, the echo for the response, the hosted ones
    left out, and the names to map calls back with."""
    tools = Tools(specs=[], echoed=[], omitted=[], names=ToolNames())
    for i, tool in enumerate(request.tools or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if hosted(kind):
            tools.omitted.append(str(kind))
        elif kind == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not _MODEL_NAME.fullmatch(namespace):
                raise InvalidRequest(
                    "Invalid 'name': a namespace name is 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes.",
                    param=f"tools[{i}].name",
                )
            inner = tool.get("tools")
            if not isinstance(inner, list) or not inner:
                raise InvalidRequest("A namespace takes a non-empty list of 'tools'.", param=f"tools[{i}].tools")
            echoed = [_one(member, f"tools[{i}].tools[{j}]", namespace, tools) for j, member in enumerate(inner)]
            tools.echoed.append(
                NamespaceTool(name=namespace, description=str(tool.get("description") or ""), tools=echoed)
            )
        else:
            tools.echoed.append(_one(tool, f"tools[{i}]", None, tools))
    return tools


def tool_setup(
    request: ResponsesRequest, tools: Tools, used: set[str]
) -> tuple[ToolSetup, str | ToolChoiceFunction | ToolChoiceCustom]:
    """What the model is offered and told for the request's `tool_choice`, and its echo."""
    specs, omitted = tools.specs, tools.omitted
    choice = request.tool_choice
    parallel = request.parallel_tool_calls
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind in ("function", "custom"):
            name = choice.get("name")
            namespace = choice.get("namespace")
            flat = tools.names.flat(str(name), namespace if isinstance(namespace, str) else None)
            setup = choose_tools(specs, mode="required", function=flat, parallel=parallel, used=used)
            echo = ToolChoiceCustom(name=str(name)) if kind == "custom" else ToolChoiceFunction(name=str(name))
            return setup, echo
        if hosted(kind):
            raise _unsupported(
                f"tool_choice requires the hosted tool {kind!r}, which this server does not offer.", "tool_choice"
            )
        raise _unsupported(f"tool_choice of type {kind!r} is not supported.", "tool_choice.type")
    if choice not in (None, "auto", "none", "required"):
        raise InvalidRequest(
            "Invalid 'tool_choice': use 'none', 'auto', 'required' or a function.", param="tool_choice"
        )
    if not specs and omitted:
        if choice == "required":
            raise _unsupported(
                "tool_choice 'required' needs a function tool; hosted tools are not offered by this server.",
                "tool_choice",
            )
        choice = None  # only hosted tools, all left out: nothing to choose from
    setup = choose_tools(specs, mode=choice, parallel=parallel, used=used)  # type: ignore[arg-type]  # checked above
    return setup, request.tool_choice if isinstance(request.tool_choice, str) else "auto"
