"""ToolBridge: the proxy's side of the CLI's MCP and permission requests."""

from __future__ import annotations

from adapters.claude_cli.events import ControlRequestLine, parse_line
from adapters.claude_cli.tool_bridge import ToolBridge, caller_name, upstream_name
from core.types import TextBlock, ToolSpec

SPEC = ToolSpec(
    name="get_weather", description="Weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}}
)


def _mcp(request_id: str, message: dict) -> ControlRequestLine:
    return ControlRequestLine(request_id, {"subtype": "mcp_message", "server_name": "proxy", "message": message})


def _permission(request_id: str, tool: str, tool_use_id: str) -> ControlRequestLine:
    request = {"subtype": "can_use_tool", "tool_name": tool, "input": {"city": "Paris"}, "tool_use_id": tool_use_id}
    return ControlRequestLine(request_id, request)


def _response(answer: dict) -> dict:
    assert answer["type"] == "control_response"
    return answer["response"]


def test_names_round_trip():
    assert upstream_name("f") == "mcp__proxy__f"
    assert caller_name("mcp__proxy__f") == "f"
    assert caller_name("StructuredOutput") is None


def test_control_requests_parse_as_such():
    line = parse_line(b'{"type":"control_request","request_id":"r1","request":{"subtype":"can_use_tool"}}')
    assert isinstance(line, ControlRequestLine) and line.request_id == "r1"


def test_mcp_handshake_and_tool_list():
    bridge = ToolBridge([SPEC])
    init = _response(
        bridge.answer(_mcp("a", {"method": "initialize", "id": 0, "params": {"protocolVersion": "2025-11-25"}}))
    )
    assert init["request_id"] == "a"
    result = init["response"]["mcp_response"]["result"]
    assert result["protocolVersion"] == "2025-11-25" and result["capabilities"] == {"tools": {}}
    note = _response(bridge.answer(_mcp("b", {"method": "notifications/initialized", "jsonrpc": "2.0"})))
    assert note["subtype"] == "success"
    listing = _response(bridge.answer(_mcp("c", {"method": "tools/list", "id": 1})))["response"]["mcp_response"]
    assert listing == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"tools": [{"name": "get_weather", "description": "Weather", "inputSchema": SPEC.parameters}]},
    }
    unknown = _response(bridge.answer(_mcp("d", {"method": "resources/list", "id": 2})))["response"]["mcp_response"]
    assert unknown["error"]["code"] == -32601


def test_listed_descriptions_have_no_blank_line_for_the_cli_to_cut_at():
    spec = ToolSpec(name="apply_patch", description="Edit files.\n\nGrammar:\n  \n\nstart: /x/", parameters={})
    listing = _response(ToolBridge([spec]).answer(_mcp("c", {"method": "tools/list", "id": 1})))
    [tool] = listing["response"]["mcp_response"]["result"]["tools"]
    assert tool["description"] == "Edit files.\nGrammar:\nstart: /x/"


def test_a_call_waits_for_the_callers_result():
    bridge = ToolBridge([SPEC])
    assert bridge.answer(_permission("p1", "mcp__proxy__get_weather", "toolu_1")) is None
    assert len(bridge.held) == 1
    (answer,) = bridge.provide({"toolu_1": [TextBlock("sunny")]})
    assert _response(answer) == {
        "subtype": "success",
        "request_id": "p1",
        "response": {"behavior": "allow", "updatedInput": {"city": "Paris"}},
    }
    call = {
        "method": "tools/call",
        "id": 5,
        "params": {"name": "get_weather", "_meta": {"claudecode/toolUseId": "toolu_1"}},
    }
    result = _response(bridge.answer(_mcp("c1", call)))["response"]["mcp_response"]
    assert result == {"jsonrpc": "2.0", "id": 5, "result": {"content": [{"type": "text", "text": "sunny"}]}}
    assert bridge.held == []


def test_a_call_with_no_result_yet_is_held_not_answered():
    bridge = ToolBridge([SPEC])
    call = {"method": "tools/call", "id": 5, "params": {"_meta": {"claudecode/toolUseId": "toolu_9"}}}
    assert bridge.answer(_mcp("c1", call)) is None
    assert bridge.provide({"toolu_other": []}) == []
    assert len(bridge.held) == 1


def test_other_tools_are_denied_and_the_clis_own_schema_tool_allowed():
    bridge = ToolBridge([SPEC])
    denied = _response(bridge.answer(_permission("p", "Bash", "toolu_x")))
    assert denied["response"]["behavior"] == "deny"
    allowed = _response(bridge.answer(_permission("q", "StructuredOutput", "toolu_y")))
    assert allowed["response"]["behavior"] == "allow"


def test_unknown_request_kinds_get_an_error():
    bridge = ToolBridge([])
    answer = _response(bridge.answer(ControlRequestLine("h", {"subtype": "hook_callback"})))
    assert answer["subtype"] == "error" and "hook_callback" in answer["error"]
