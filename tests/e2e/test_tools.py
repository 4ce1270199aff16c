"""Function calling end to end: the caller's tools reach the model, its calls come back as
OpenAI tool_calls, and the caller's results go on the same conversation (warm or cold)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TWO_CALLS = [
    {"name": "mcp__proxy__get_weather", "input": {"city": "Paris"}},
    {"name": "mcp__proxy__get_weather", "input": {"city": "Rome"}},
]


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def _results(message, answers: dict[str, str]) -> list[dict]:
    """The assistant message as the SDK user resends it, then one tool message per call."""
    out = [message.model_dump(exclude_none=True)]
    for call in message.tool_calls:
        city = json.loads(call.function.arguments)["city"]
        out.append({"role": "tool", "tool_call_id": call.id, "content": answers[city]})
    return out


def _agent_round_trip(server, upstream, tag: str) -> tuple[list[dict], list[dict]]:
    """Ask, get two parallel calls, answer them; returns (messages, upstream message lists)."""
    upstream.on(f"{tag} weather", Reply(chunks=["Let me check."], tool_uses=TWO_CALLS, times=1))
    upstream.on(f"{tag}-sun-paris", Reply(text=f"{tag}: sunny in Paris, rain in Rome."))
    client = _client(server)
    messages = [
        {"role": "system", "content": f"You are a weather bot {tag}."},
        {"role": "user", "content": f"{tag} weather?"},
    ]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER], max_tokens=321)
    assert first.choices[0].finish_reason == "tool_calls"
    messages += _results(first.choices[0].message, {"Paris": f"{tag}-sun-paris", "Rome": f"{tag}-rain-rome"})
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER], max_tokens=321)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == f"{tag}: sunny in Paris, rain in Rome."
    assert second.choices[0].message.tool_calls is None
    (continued,) = upstream.requests_matching(f"{tag}-sun-paris")
    assert continued.body["max_tokens"] == 321  # the new request's limit, warm or cold
    return messages, continued.body


def test_tool_calls_come_back_as_openai_tool_calls(server, upstream):
    upstream.on("tc-basic weather", Reply(chunks=["Let me check."], tool_uses=TWO_CALLS))
    result = _client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "tc-basic weather?"}], tools=[WEATHER]
    )
    body = openapi.sdk_json(result)
    openapi.validate(body, "CreateChatCompletionResponse")
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}),
        ("function", "get_weather", {"city": "Rome"}),
    ]
    assert calls[0].id != calls[1].id
    assert result.usage.completion_tokens == 7
    (seen,) = upstream.requests_matching("tc-basic weather")
    # Only the caller's tool is offered: no Bash, no file tools, nothing of Claude Code's own.
    assert [(t["name"], t["description"], t["input_schema"]) for t in seen.body["tools"]] == [
        ("mcp__proxy__get_weather", "Current weather for a city", WEATHER["function"]["parameters"])
    ]


def test_results_continue_the_suspended_process_exactly(make_server, upstream):
    server = make_server({"pool": {"size": 3, "spares": 1, "warm_max": 2}})
    hits = server.health()["pool"]["warm_hits"]
    started = server.health()["pool"]["started_total"]
    _messages, body = _agent_round_trip(server, upstream, "tc-warm")
    pool = server.health()["pool"]
    assert pool["warm_hits"] == hits + 1
    assert pool["started_total"] - started <= 2  # spares only: nothing was replayed
    turns = [m for m in body["messages"] if m["role"] != "system"]
    assert turns[-2]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_scripted_0", "name": "mcp__proxy__get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_scripted_1", "name": "mcp__proxy__get_weather", "input": {"city": "Rome"}},
    ]
    results = [{k: v for k, v in block.items() if k != "cache_control"} for block in turns[-1]["content"]]
    assert results == [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_scripted_0",
            "content": [{"type": "text", "text": "tc-warm-sun-paris"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "toolu_scripted_1",
            "content": [{"type": "text", "text": "tc-warm-rain-rome"}],
        },
    ]
    assert "You are a weather bot tc-warm." in upstream.requests[-1].system_text


def test_results_without_a_warm_process_replay_the_calls_cold(make_server, upstream):
    server = make_server({"pool": {"size": 3, "spares": 1, "warm_max": 0}})
    _messages, body = _agent_round_trip(server, upstream, "tc-cold")
    assert server.health()["pool"]["warm_hits"] == 0
    turns = [m for m in body["messages"] if m["role"] != "system"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert [b["name"] for b in turns[1]["content"][1:]] == ["mcp__proxy__get_weather"] * 2
    kinds = [(b["type"], b.get("tool_use_id")) for b in turns[2]["content"]]
    # The same results as the warm path, and the CLI's own note that the turn goes on.
    assert kinds[:2] == [("tool_result", "toolu_scripted_0"), ("tool_result", "toolu_scripted_1")]
    assert [b["text"] for b in turns[2]["content"][2:]] == ["Continue from where you left off."]
    seen = upstream.requests_matching("tc-cold-sun-paris")[0]
    assert seen.system_text.endswith("You are a weather bot tc-cold.")
    assert "Claude Code" not in seen.system_text
    assert [t["name"] for t in seen.body["tools"]] == ["mcp__proxy__get_weather"]


def test_streamed_tool_calls_carry_index_id_and_argument_pieces(server, upstream):
    upstream.on("tc-stream weather", Reply(chunks=["On it."], tool_uses=TWO_CALLS))
    stream = _client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "tc-stream weather?"}], tools=[WEATHER], stream=True
    )
    calls: dict[int, dict] = {}
    finish = None
    text = ""
    for chunk in stream:
        openapi.validate(openapi.sdk_json(chunk), "CreateChatCompletionStreamResponse")
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            if delta.id:
                call["id"], call["name"] = delta.id, delta.function.name
            call["arguments"] += delta.function.arguments or ""
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert text == "On it."
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert all(c["id"] for c in calls.values())


def test_required_tool_choice_refuses_prose(server, upstream):
    upstream.on("tc-required", Reply(text="I would rather chat."))
    with pytest.raises(openai.APIStatusError) as info:
        _client(server).chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "tc-required"}],
            tools=[WEATHER],
            tool_choice="required",
        )
    assert info.value.status_code == 502
    assert info.value.body["code"] == "tool_choice_not_followed"
    (seen,) = upstream.requests_matching("tc-required")
    assert "must call at least one tool" in seen.system_text


def test_named_tool_choice_offers_that_tool(server, upstream):
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
    upstream.on("tc-named", Reply(chunks=[], tool_use={"name": "mcp__proxy__get_time", "input": {}}))
    result = _client(server).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "tc-named"}],
        tools=[WEATHER, other],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    (call,) = result.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_time", "{}")
    assert result.choices[0].message.content is None
    (seen,) = upstream.requests_matching("tc-named")
    assert [t["name"] for t in seen.body["tools"]] == ["mcp__proxy__get_time"]


def test_none_tool_choice_hides_the_tools(server, upstream):
    result = _client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "tc-none"}], tools=[WEATHER], tool_choice="none"
    )
    assert result.choices[0].message.content == "Echo: tc-none"
    (seen,) = upstream.requests_matching("tc-none")
    assert seen.body["tools"] == []


def test_a_missing_tool_result_is_a_400(server):
    with pytest.raises(openai.BadRequestError) as info:
        _client(server).chat.completions.create(
            model="gpt-4o",
            tools=[WEATHER],
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
                {"role": "user", "content": "well?"},
            ],
        )
    assert "c1" in info.value.body["message"]


def test_results_with_a_new_user_message_go_cold_with_both(server, upstream):
    upstream.on(
        "tc-mixed weather", Reply(chunks=[], tool_use={"name": "mcp__proxy__get_weather", "input": {"city": "Paris"}})
    )
    client = _client(server)
    messages = [{"role": "user", "content": "tc-mixed weather?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    (call,) = first.choices[0].message.tool_calls
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "tc-mixed-sunny"},
        {"role": "user", "content": "tc-mixed and tomorrow?"},
    ]
    answer = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop"
    (seen,) = upstream.requests_matching("tc-mixed-sunny")
    last = seen.body["messages"][-1]["content"]
    assert [b["type"] for b in last] == ["tool_result", "text", "text"]
    assert last[1]["text"].strip() == "tc-mixed and tomorrow?"  # the CLI puts a newline before its note


def test_parallel_tool_calls_false_ends_at_the_first_call(server, upstream):
    upstream.on("tc-single", Reply(chunks=[], tool_uses=TWO_CALLS))
    result = _client(server).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "tc-single"}], tools=[WEATHER], parallel_tool_calls=False
    )
    (call,) = result.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert result.choices[0].finish_reason == "tool_calls"
    assert result.usage.completion_tokens > 0  # estimated: the upstream had not counted it yet
    (seen,) = upstream.requests_matching("tc-single")
    assert "at most one tool" in seen.system_text
