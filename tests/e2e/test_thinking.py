"""Thinking end to end on chat completions: the caller's reasoning effort reaches the upstream
through the CLI, and the model's thinking comes back as `reasoning_content`."""

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


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def _thinks(tag: str, **extra) -> Reply:
    return Reply(
        text=f"{tag} answer", thinking=f"{tag} pondering deeply", signature=f"sig-{tag}", thinking_tokens=5, **extra
    )


def test_reasoning_comes_back_as_reasoning_content_with_its_token_count(server, upstream):
    upstream.on("th-plain", _thinks("th-plain", redacted_thinking=1, output_tokens=40))
    raw = _client(server).chat.completions.with_raw_response.create(
        model="o3", messages=[{"role": "user", "content": "th-plain"}]
    )
    body = raw.http_response.json()
    openapi.validate(body, "CreateChatCompletionResponse")
    message = body["choices"][0]["message"]
    assert message["content"] == "th-plain answer"
    # Redacted thinking is counted by the upstream, never shown.
    assert message["reasoning_content"] == "th-plain pondering deeply"
    assert body["usage"]["completion_tokens"] == 40
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5
    (seen,) = upstream.requests_matching("th-plain")
    # Without reasoning_effort the CLI's default stands: adaptive thinking at medium effort.
    assert seen.body["thinking"]["type"] == "adaptive"
    assert seen.body["output_config"] == {"effort": "medium"}


def test_streamed_reasoning_comes_before_the_content(server, upstream):
    upstream.on("th-stream", _thinks("th-stream"))
    stream = _client(server).chat.completions.create(
        model="o3",
        messages=[{"role": "user", "content": "th-stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    order: list[str] = []
    reasoning = content = ""
    usage = None
    for chunk in stream:
        openapi.validate(openapi.sdk_json(chunk), "CreateChatCompletionStreamResponse")
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.model_dump()
        if delta.get("reasoning_content"):
            reasoning += delta["reasoning_content"]
            order.append("reasoning")
        if delta.get("content"):
            content += delta["content"]
            order.append("content")
    assert reasoning == "th-stream pondering deeply"
    assert content == "th-stream answer"
    assert order.index("content") > max(i for i, kind in enumerate(order) if kind == "reasoning")
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens == 5


@pytest.mark.parametrize(
    ("effort", "upstream_effort", "thinks"),
    [("low", "low", True), ("high", "high", True), ("xhigh", "xhigh", True), ("none", "low", False)],
)
def test_reasoning_effort_sets_the_upstream_effort(server, upstream, effort, upstream_effort, thinks):
    marker = f"th-effort-{effort}"
    _client(server).chat.completions.create(
        model="o3", messages=[{"role": "user", "content": marker}], reasoning_effort=effort
    )
    (seen,) = upstream.requests_matching(marker)
    assert seen.body["output_config"] == {"effort": upstream_effort}
    assert ("thinking" in seen.body) is thinks


def test_an_unknown_reasoning_effort_is_a_400(server, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        _client(server).chat.completions.create(
            model="o3", messages=[{"role": "user", "content": "th-bad"}], reasoning_effort="enormous"
        )
    assert info.value.body["param"] == "reasoning_effort"
    assert upstream.requests_matching("th-bad") == []


def test_a_warm_process_takes_the_next_requests_effort(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 2}})
    client = _client(server)
    messages = [{"role": "user", "content": "th-warm one"}]
    first = client.chat.completions.create(model="o3", messages=messages, reasoning_effort="high")
    messages += [{"role": "assistant", "content": first.choices[0].message.content}]
    messages += [{"role": "user", "content": "th-warm two"}]
    hits = server.health()["pool"]["warm_hits"]
    client.chat.completions.create(model="o3", messages=messages)
    assert server.health()["pool"]["warm_hits"] == hits + 1
    (one,) = upstream.requests_matching("th-warm one")
    (two,) = upstream.requests_matching("th-warm two")
    assert one.body["output_config"] == {"effort": "high"}
    assert two.body["output_config"] == {"effort": "medium"}  # back to the CLI's default


def test_a_tool_loop_keeps_the_signed_thinking_in_the_warm_process(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 2}})
    call = {"name": "mcp__proxy__get_weather", "input": {"city": "Paris"}}
    upstream.on("th-tools weather", _thinks("th-tools", chunks=[], tool_use=call, times=1))
    upstream.on("th-tools-sunny", Reply(text="Sunny."))
    client = _client(server)
    messages: list[dict] = [{"role": "user", "content": "th-tools weather?"}]
    first = client.chat.completions.create(model="o3", messages=messages, tools=[WEATHER], reasoning_effort="low")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert message.model_dump()["reasoning_content"] == "th-tools pondering deeply"
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "th-tools-sunny"})
    hits = server.health()["pool"]["warm_hits"]
    second = client.chat.completions.create(model="o3", messages=messages, tools=[WEATHER], reasoning_effort="low")
    assert second.choices[0].message.content == "Sunny."
    assert server.health()["pool"]["warm_hits"] == hits + 1
    (continued,) = upstream.requests_matching("th-tools-sunny")
    assistant = [m for m in continued.body["messages"] if m["role"] == "assistant"][-1]
    # The upstream gets the thinking block back intact, signature and all, before the call.
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "th-tools pondering deeply",
        "signature": "sig-th-tools",
    }
    assert [block["type"] for block in assistant["content"]] == ["thinking", "tool_use"]
    assert json.dumps(continued.body["output_config"]) == '{"effort": "low"}'


def test_a_cold_tool_loop_without_the_thinking_goes_on_without_thinking(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 0}})
    call = {"name": "mcp__proxy__get_weather", "input": {"city": "Rome"}}
    upstream.on("th-cold weather", _thinks("th-cold", chunks=[], tool_use=call, times=1))
    upstream.on("th-cold-rain", Reply(text="Rain."))
    client = _client(server)
    messages: list[dict] = [{"role": "user", "content": "th-cold weather?"}]
    first = client.chat.completions.create(model="o3", messages=messages, tools=[WEATHER])
    message = first.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "th-cold-rain"})
    second = client.chat.completions.create(model="o3", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Rain."
    assert server.health()["pool"]["warm_hits"] == 0
    (continued,) = upstream.requests_matching("th-cold-rain")
    assistant = [m for m in continued.body["messages"] if m["role"] == "assistant"][-1]
    # A chat caller does not send the signed thinking back: Anthropic refuses tool calls without
    # it while thinking is on, so the resumed turn runs without thinking.
    assert [block["type"] for block in assistant["content"]] == ["tool_use"]
    assert "thinking" not in continued.body, continued.body.get("thinking")


def test_thinking_and_the_effort_cross_the_redis_queue(make_server, make_worker, redis_config, upstream):
    make_worker({**redis_config, "pool": {"size": 1, "spares": 1}}, name="thinker")
    gateway = make_server({**redis_config, "pool": {"size": 0}}, name="gateway")
    upstream.on("th-queue", _thinks("th-queue"))
    stream = _client(gateway).chat.completions.create(
        model="o3", messages=[{"role": "user", "content": "th-queue"}], reasoning_effort="high", stream=True
    )
    reasoning = "".join(
        chunk.choices[0].delta.model_dump().get("reasoning_content") or "" for chunk in stream if chunk.choices
    )
    assert reasoning == "th-queue pondering deeply"
    (seen,) = upstream.requests_matching("th-queue")
    assert seen.body["output_config"] == {"effort": "high"}
