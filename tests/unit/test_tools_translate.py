"""Function calling in build_plan: tools, tool_choice, tool calls and results, checked as OpenAI does."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import InvalidRequest
from core.types import ModelChoice, TextBlock, ToolResultBlock, ToolSpec, ToolUseBlock, Turn
from proxy.chat.tools import upstream_id
from proxy.pipeline import Plan
from proxy.wire.chat_request import chat_request_decoder
from tests.support.planning import build_plan

ROUTE = ModelChoice(requested="gpt-4o", claude_model="sonnet")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}
CALLS = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "toolu_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
]


def plan(**body: Any) -> Plan:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return build_plan(chat_request_decoder.decode(json.dumps(body).encode()), ROUTE)


def refused(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        plan(**body)
    assert info.value.status == 400
    return info.value


def test_tools_become_specs_and_auto_is_the_default():
    job = plan(tools=[WEATHER, TIME]).job
    assert job.tools == [
        ToolSpec(name="get_weather", description="Weather for a city", parameters=WEATHER["function"]["parameters"]),
        ToolSpec(name="get_time", description="", parameters={"type": "object", "properties": {}}),
    ]
    assert job.tool_choice == "auto"
    assert job.system == ""


def test_calls_and_results_become_tool_turns_and_the_results_are_the_new_input():
    job = plan(tools=[WEATHER], messages=CALLS).job
    assert job.history == [
        Turn("user", [TextBlock("Weather in Paris and Rome?")]),
        Turn(
            "assistant",
            [
                TextBlock("Checking."),
                ToolUseBlock(id="toolu_1", name="get_weather", input={"city": "Paris"}),
                ToolUseBlock(id="toolu_2", name="get_weather", input={"city": "Rome"}),
            ],
        ),
    ]
    assert job.prompt == [
        ToolResultBlock(tool_use_id="toolu_1", content=[TextBlock("sunny")]),
        ToolResultBlock(tool_use_id="toolu_2", content=[TextBlock("rain")]),
    ]
    assert job.continues_tool_calls()


def test_a_user_message_after_the_results_joins_their_turn():
    job = plan(tools=[WEATHER], messages=[*CALLS, {"role": "user", "content": "Thanks, and tomorrow?"}]).job
    assert job.prompt[-1] == TextBlock("Thanks, and tomorrow?")
    assert isinstance(job.prompt[0], ToolResultBlock)


def test_ids_the_upstream_cannot_take_are_mapped_the_same_way_on_both_sides():
    messages = json.loads(json.dumps(CALLS))
    messages[1]["tool_calls"][0]["id"] = "call:1/odd"
    messages[2]["tool_call_id"] = "call:1/odd"
    job = plan(tools=[WEATHER], messages=messages).job
    mapped = upstream_id("call:1/odd")
    assert mapped != "call:1/odd" and mapped.startswith("call_")
    assert job.history[1].content[1].id == mapped
    assert job.prompt[0].tool_use_id == mapped


def test_a_missing_tool_result_is_refused_like_openai():
    err = refused(tools=[WEATHER], messages=[*CALLS[:3], {"role": "user", "content": "go on"}])
    assert "toolu_2" in err.message and "did not have response messages" in err.message


def test_a_tool_result_without_a_call_is_refused():
    err = refused(messages=[{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "x", "content": "1"}])
    assert err.param == "messages[1].tool_call_id"


def test_arguments_must_be_a_json_object():
    messages = json.loads(json.dumps(CALLS))
    messages[1]["tool_calls"][1]["function"]["arguments"] = "[1, 2]"
    assert refused(tools=[WEATHER], messages=messages).param == "messages[1].tool_calls[1].function.arguments"


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "custom", "custom": {"name": "x"}}], "tools[0].type"),
        ([{"type": "function", "function": {"name": "has space"}}], "tools[0].function.name"),
        ([{"type": "function"}], "tools[0].function"),
        ([WEATHER, WEATHER], "tools[1].function.name"),
        ([{"type": "function", "function": {"name": "f", "parameters": "no"}}], "tools[0].function.parameters"),
    ],
)
def test_malformed_tools(tools, param):
    assert refused(tools=tools).param == param


def test_tool_choice_without_tools():
    assert refused(tool_choice="auto").param == "tool_choice"


def test_required_instructs_and_is_enforced():
    job = plan(tools=[WEATHER, TIME], tool_choice="required").job
    assert job.tool_choice == "required"
    assert "must call at least one tool" in job.system
    assert len(job.tools) == 2


def test_a_named_function_offers_only_that_tool():
    job = plan(tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}}).job
    assert [tool.name for tool in job.tools] == ["get_time"]
    assert job.tool_choice == "required"
    assert "`get_time`" in job.system


def test_a_named_function_must_exist():
    assert (
        refused(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}).param == "tool_choice"
    )


def test_none_hides_tools_unless_earlier_calls_need_their_definitions():
    assert plan(tools=[WEATHER, TIME], tool_choice="none").job.tools == []
    job = plan(tools=[WEATHER, TIME], tool_choice="none", messages=CALLS).job
    assert [tool.name for tool in job.tools] == ["get_weather"]
    assert job.tool_choice == "none"


def test_parallel_tool_calls_false():
    job = plan(tools=[WEATHER], parallel_tool_calls=False).job
    assert job.parallel_tool_calls is False
    assert "at most one tool" in job.system


def test_tools_with_a_json_response_format_are_refused():
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert refused(tools=[WEATHER], response_format=schema).param == "response_format"
