"""Thinking on the Responses API end to end: `reasoning.effort` reaches the upstream, the
thinking comes back as a `reasoning` item (summary parts, encrypted content), and a stateless
client that sends the item back gets the signed block to the upstream intact, warm or cold."""

from __future__ import annotations

import json

import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def _thinks(tag: str, **extra) -> Reply:
    return Reply(thinking=f"{tag} weighing options", signature=f"sig-{tag}", thinking_tokens=4, **extra)


def test_summary_and_encrypted_content_come_back_in_a_reasoning_item(server, upstream):
    upstream.on("rr-plain", _thinks("rr-plain", text="Done.", redacted_thinking=1))
    raw = _client(server).responses.with_raw_response.create(
        model="o3",
        input="rr-plain",
        reasoning={"effort": "high", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    )
    body = raw.http_response.json()
    openapi.validate(body, "Response")
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == [{"type": "summary_text", "text": "rr-plain weighing options"}]
    assert reasoning["encrypted_content"]
    assert "sig-rr-plain" not in json.dumps(reasoning["summary"])
    assert message["content"][0]["text"] == "Done."
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == 4
    (seen,) = upstream.requests_matching("rr-plain")
    assert seen.body["output_config"] == {"effort": "high"}


def test_without_summary_or_include_the_item_shows_nothing(server, upstream):
    upstream.on("rr-bare", _thinks("rr-bare", text="Ok."))
    response = _client(server).responses.create(model="o3", input="rr-bare")
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary == [] and reasoning.encrypted_content is None
    assert response.output_text == "Ok."


def test_an_unknown_effort_is_a_400(server, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        _client(server).responses.create(model="o3", input="rr-bad", reasoning={"effort": "huge"})
    assert info.value.body["param"] == "reasoning.effort"


def test_streamed_summary_uses_the_reasoning_summary_events(server, upstream):
    upstream.on("rr-stream", _thinks("rr-stream", chunks=["All", " good"]))
    events = list(
        _client(server).responses.create(
            model="o3",
            input="rr-stream",
            stream=True,
            reasoning={"summary": "detailed"},
            include=["reasoning.encrypted_content"],
        )
    )
    for event in events:
        openapi.validate(openapi.sdk_json(event), "ResponseStreamEvent")
    kinds = [event.type for event in events]
    assert kinds[:8] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
    ]
    assert kinds.index("response.output_text.delta") > kinds.index("response.reasoning_summary_part.done")
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert deltas == "rr-stream weighing options"
    final = events[-1].response
    assert final.output[0].type == "reasoning" and final.output[0].encrypted_content
    assert final.output[0].summary[0].text == "rr-stream weighing options"
    assert final.output_text == "All good"


def _stateless_loop(server, upstream, tag: str) -> dict:
    """A Codex-like client: store false, the whole input resent with the reasoning item."""
    call = {"name": "mcp__proxy__get_weather", "input": {"city": "Oslo"}}
    upstream.on(f"{tag} weather", _thinks(tag, chunks=[], tool_use=call, times=1))
    upstream.on(f"{tag}-snow", Reply(text="Snow."))
    client = _client(server)
    asked = [{"role": "user", "content": f"{tag} weather?"}]
    options = {
        "model": "o3",
        "tools": [WEATHER],
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "reasoning": {"effort": "medium", "summary": "auto"},
    }
    first = client.responses.create(input=asked, **options)
    items = [item.model_dump(exclude_none=True) for item in first.output]
    assert [item["type"] for item in items] == ["reasoning", "function_call"]
    output = {"type": "function_call_output", "call_id": items[1]["call_id"], "output": f"{tag}-snow"}
    second = client.responses.create(input=asked + items + [output], **options)
    assert second.output_text == "Snow."
    (continued,) = upstream.requests_matching(f"{tag}-snow")
    return continued.body


def _assert_signed_block_went_back(body: dict, tag: str) -> None:
    assistant = [m for m in body["messages"] if m["role"] == "assistant"][-1]
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": f"{tag} weighing options",
        "signature": f"sig-{tag}",
    }
    assert [block["type"] for block in assistant["content"]] == ["thinking", "tool_use"]
    assert body["thinking"]["type"] == "adaptive"  # thinking stays on: the block is there


def test_a_stateless_tool_loop_continues_the_warm_process_with_its_thinking(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 2}})
    hits = server.health()["pool"]["warm_hits"]
    body = _stateless_loop(server, upstream, "rr-warm")
    assert server.health()["pool"]["warm_hits"] == hits + 1
    _assert_signed_block_went_back(body, "rr-warm")


def test_a_stateless_tool_loop_sends_the_thinking_back_cold(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 0}})
    body = _stateless_loop(server, upstream, "rr-cold")
    assert server.health()["pool"]["warm_hits"] == 0
    _assert_signed_block_went_back(body, "rr-cold")
