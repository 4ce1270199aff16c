"""The caller's tools, offered to the model as an in-process MCP server the CLI reaches over stdin.

`initialize` names an SDK MCP server `proxy`; the CLI then sends its MCP traffic as
`control_request`/`mcp_message` lines and the model sees each tool as `mcp__proxy__<name>`.
Started with `--permission-prompt-tool stdio`, the CLI asks before it runs a tool
(`can_use_tool`). The proxy does not answer until the caller's next request brings the tool's
result: the process stays suspended on the call, and the answer (permission, then the MCP
`tools/call` result) lets the model go on exactly where it stopped. Nothing runs on the host:
a tool "runs" by returning the caller's own result text.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.claude_cli.events import ControlRequestLine
from core.types import TextBlock, ToolSpec

SERVER = "proxy"
PREFIX = f"mcp__{SERVER}__"
# Only the server's name goes on the command line; its tools travel over stdin.
MCP_CONFIG = '{"mcpServers":{"proxy":{"type":"sdk","name":"proxy"}}}'
# The CLI's own tool for response schemas; it is the CLI's to run, not the caller's.
_CLI_TOOLS = frozenset({"StructuredOutput"})


def upstream_name(name: str) -> str:
    return PREFIX + name


def caller_name(name: str) -> str | None:
    """The caller's name for a tool the model called, or None for a tool that is not the caller's."""
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


def _success(request_id: str, response: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    }


def _error(request_id: str, message: str) -> dict[str, Any]:
    return {"type": "control_response", "response": {"subtype": "error", "request_id": request_id, "error": message}}


def _mcp(
    request_id: str, message_id: Any, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id}
    if error is not None:
        body["error"] = error
    else:
        body["result"] = result or {}
    return _success(request_id, {"mcp_response": body})


class ToolBridge:
    """Answers one process's control requests. Calls without a result yet are held."""

    def __init__(self, tools: list[ToolSpec]) -> None:
        self.tools = tools
        self.results: dict[str, list[TextBlock]] = {}
        self.held: list[ControlRequestLine] = []
        self.listed = False  # the CLI asked for the tool list (it has connected to the server)

    @property
    def offers_tools(self) -> bool:
        return bool(self.tools)

    def provide(self, results: dict[str, list[TextBlock]]) -> list[dict[str, Any]]:
        """Record the caller's results; returns the answers to requests that were waiting for them."""
        self.results.update(results)
        held, self.held = self.held, []
        answers = []
        for line in held:
            answer = self.answer(line)
            if answer is not None:
                answers.append(answer)
        return answers

    def answer(self, line: ControlRequestLine) -> dict[str, Any] | None:
        """The response line for `line`, or None when it waits for a tool result."""
        request = line.request
        subtype = request.get("subtype")
        if subtype == "mcp_message" and request.get("server_name") == SERVER:
            return self._mcp_message(line)
        if subtype == "can_use_tool":
            return self._permission(line)
        return _error(line.request_id, f"the proxy does not handle `{subtype}` requests")

    def _permission(self, line: ControlRequestLine) -> dict[str, Any] | None:
        request = line.request
        tool = str(request.get("tool_name", ""))
        allow = {"behavior": "allow", "updatedInput": request.get("input") or {}}
        if tool in _CLI_TOOLS:
            return _success(line.request_id, allow)
        if caller_name(tool) is None:
            return _success(line.request_id, {"behavior": "deny", "message": "This tool is not available."})
        if request.get("tool_use_id") in self.results:
            return _success(line.request_id, allow)
        self.held.append(line)
        return None

    def _mcp_message(self, line: ControlRequestLine) -> dict[str, Any] | None:
        message = line.request.get("message") or {}
        method = message.get("method", "")
        message_id = message.get("id", 0)
        if method == "initialize":
            params = message.get("params") or {}
            return _mcp(
                line.request_id,
                message_id,
                {
                    "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": SERVER, "version": "1"},
                },
            )
        if method.startswith("notifications/"):
            return _mcp(line.request_id, message_id)
        if method == "tools/list":
            self.listed = True
            tools = [
                {"name": tool.name, "description": _listed(tool.description), "inputSchema": tool.parameters}
                for tool in self.tools
            ]
            return _mcp(line.request_id, message_id, {"tools": tools})
        if method == "tools/call":
            params = message.get("params") or {}
            tool_use_id = (params.get("_meta") or {}).get("claudecode/toolUseId")
            result = self.results.get(tool_use_id) if tool_use_id else None
            if result is None:
                self.held.append(line)
                return None
            content = [{"type": "text", "text": block.text} for block in result]
            return _mcp(line.request_id, message_id, {"content": content})
        return _mcp(line.request_id, message_id, error={"code": -32601, "message": f"unknown method {method}"})


_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


def _listed(description: str) -> str:
    """A tool's description as the CLI is given it: the CLI (2.1.328) keeps an MCP tool's
    description only up to its first blank line, so blank lines become single line breaks and
    the rest (a custom tool's grammar, a function's later paragraphs) still reaches the model."""
    return _BLANK_LINES.sub("\n", description)
