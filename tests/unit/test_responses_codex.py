"""What Codex sends on the Responses API, through the real app with a scripted backend:
namespace and custom tools both ways, reasoning items, the fields it adds, and the 426 that
sends it from a WebSocket to plain HTTP. Bodies and events are validated against OpenAPI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from core.types import TextBlock, ToolResultBlock, ToolUseBlock, Turn
from tests.support import openapi
from tests.support.fake_backend import FakeBackend, tool_call
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import create, ok, sse

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

# A request Codex 0.169.0 sent (instructions trimmed), captured by pointing it at a plain server.
CODEX_REQUEST = json.loads((Path(__file__).parents[1] / "support" / "codex_request.json").read_text())
NAMESPACED = [
    "multi_agent_v1__close_agent",
    "multi_agent_v1__resume_agent",
    "multi_agent_v1__send_input",
    "multi_agent_v1__spawn_agent",
    "multi_agent_v1__wait_agent",
]
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files with a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" /.+/'},
}
PATCH = "*** Begin Patch\n+hello\n*** End Patch"


@pytest.fixture()
def make_proxy(tmp_path):
    """test_app_routes' app factory: the real app, a fake backend, a key of project `acme`."""
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def codex_body(**changes):
    body = copy.deepcopy(CODEX_REQUEST)
    body.update(changes)
    return body


def test_codex_request_as_captured(make_proxy):
    proxy = make_proxy()
    body = codex_body(stream=False)
    response = proxy.post("/v1/responses", body)
    assert response.status_code == 200, response.text
    openapi.validate(response.json(), "Response")
    assert response.headers["x-claude-proxy-omitted-tools"] == "web_search"
    job = proxy.backend.jobs[0]
    names = [spec.name for spec in job.tools]
    assert names == [
        "exec_command",
        "write_stdin",
        "request_user_input",
        "view_image",
        *NAMESPACED,
        "get_goal",
        "create_goal",
        "update_goal",
    ]
    # Codex's developer messages are the system prompt; its reasoning settings change nothing.
    assert "You are a coding agent running in the Codex CLI" in job.system
    assert job.prompt[-1] == TextBlock("say hi")
    echoed = response.json()
    assert echoed["store"] is False and echoed["prompt_cache_key"] == body["prompt_cache_key"]
    assert [tool["type"] for tool in echoed["tools"]].count("namespace") == 1


def test_codex_request_streamed(make_proxy):
    proxy = make_proxy()
    response = proxy.post("/v1/responses", codex_body())
    assert response.status_code == 200, response.text
    events = sse(response.text)
    assert events[-1]["type"] == "response.completed"


def test_a_namespaced_call_goes_out_with_its_namespace_and_comes_back(make_proxy):
    arguments = '{"target": "agent-1"}'
    proxy = make_proxy(FakeBackend().then(tool_call("call_ns", "multi_agent_v1__close_agent", arguments)))
    first = ok(proxy.post("/v1/responses", codex_body(stream=False)))
    [call] = first["output"]
    assert (call["type"], call["namespace"], call["name"], call["arguments"]) == (
        "function_call",
        "multi_agent_v1",
        "close_agent",
        arguments,
    )
    # Codex's next request: the whole conversation again, the call as it got it plus its output.
    history = [*CODEX_REQUEST["input"], call, {"type": "function_call_output", "call_id": "call_ns", "output": "ok"}]
    ok(proxy.post("/v1/responses", codex_body(stream=False, input=history)))
    job = proxy.backend.jobs[1]
    assert job.history[-1] == Turn(
        "assistant", [ToolUseBlock(id="call_ns", name="multi_agent_v1__close_agent", input={"target": "agent-1"})]
    )
    assert job.prompt == [ToolResultBlock(tool_use_id="call_ns", content=[TextBlock("ok")])]
    assert job.continues_tool_calls()


def test_a_streamed_namespaced_call(make_proxy):
    proxy = make_proxy(FakeBackend().then(tool_call("call_ns", "multi_agent_v1__wait_agent", '{"ta', 'rgets": []}')))
    events = sse(proxy.post("/v1/responses", codex_body()).text)
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert done[0]["item"]["namespace"] == "multi_agent_v1" and done[0]["item"]["name"] == "wait_agent"
    assert done[0]["item"]["arguments"] == '{"targets": []}'
    assert events[-1]["response"]["output"] == [done[0]["item"]]


def test_custom_tools_take_and_give_raw_input(make_proxy):
    arguments = json.dumps({"input": PATCH})
    proxy = make_proxy(FakeBackend().then(tool_call("call_p", "apply_patch", arguments)))
    first = ok(
        create(proxy, input="Patch it", tools=[APPLY_PATCH], tool_choice={"type": "custom", "name": "apply_patch"})
    )
    [call] = first["output"]
    assert call["type"] == "custom_tool_call" and call["id"].startswith("ctc_")
    assert (call["call_id"], call["name"], call["input"]) == ("call_p", "apply_patch", PATCH)
    assert first["tool_choice"] == {"type": "custom", "name": "apply_patch"}
    [spec] = proxy.backend.jobs[0].tools
    assert spec.parameters["properties"] == {
        "input": {"type": "string", "description": "The tool's whole input, as raw text."}
    }
    assert 'start: "*** Begin Patch"' in spec.description  # the grammar is told in words
    history = [
        {"role": "user", "content": "Patch it"},
        call,
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
    ]
    ok(create(proxy, input=history, tools=[APPLY_PATCH]))
    job = proxy.backend.jobs[1]
    assert job.history[-1] == Turn("assistant", [ToolUseBlock(id="call_p", name="apply_patch", input={"input": PATCH})])
    assert job.prompt == [ToolResultBlock(tool_use_id="call_p", content=[TextBlock("Done!")])]


def test_a_streamed_custom_tool_call(make_proxy):
    arguments = json.dumps({"input": PATCH})
    proxy = make_proxy(FakeBackend().then(tool_call("call_p", "tools__apply_patch", arguments[:9], arguments[9:])))
    namespace = {"type": "namespace", "name": "tools", "description": "Editing", "tools": [APPLY_PATCH]}
    events = sse(create(proxy, input="Patch it", tools=[namespace], stream=True).text)
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" not in kinds
    [finished] = [e for e in events if e["type"] == "response.custom_tool_call_input.done"]
    assert finished["input"] == PATCH
    [item] = events[-1]["response"]["output"]
    assert item == {**item, "type": "custom_tool_call", "namespace": "tools", "name": "apply_patch", "input": PATCH}


def test_reasoning_items_and_codex_fields_are_taken_and_not_shown(make_proxy):
    proxy = make_proxy()
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-opaque"}
    body = ok(
        create(
            proxy,
            input=[
                {"role": "user", "content": "Q1"},
                reasoning,
                {"role": "assistant", "content": "A1"},
                {"role": "user", "content": "Q2"},
            ],
            include=["reasoning.encrypted_content", "reasoning.summary"],
            reasoning={"summary": "auto", "effort": "medium"},
            prompt_cache_key="k",
            client_metadata={"session_id": "s"},
            service_tier="auto",
            safety_identifier="u",
        )
    )
    assert body["output"][0]["type"] == "message"
    job = proxy.backend.jobs[0]
    assert job.history == [Turn("user", [TextBlock("Q1")]), Turn("assistant", [TextBlock("A1")])]
    items = proxy.get(f"/v1/responses/{body['id']}/input_items?order=asc").json()
    assert [item["type"] for item in items["data"]] == ["message", "reasoning", "message", "message"]


def test_get_on_responses_answers_426(make_proxy):
    proxy = make_proxy()
    response = proxy.client.get("/v1/responses", headers=proxy.headers)
    assert_error(response, 426, code="upgrade_required")
