"""Anthropic's Messages API end to end with the official `anthropic` SDK: the real server, its
pool of real Claude CLIs, the scripted upstream behind them. Each body the SDK got is checked
with the SDK's own types in strict mode, and the upstream's requests are checked too."""

from __future__ import annotations

import base64

import anthropic
import pytest
from anthropic.types import Message, MessageTokensCount

from tests.support.pdf import tiny_pdf
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _client(server, **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=server.api_key, max_retries=0, **options)


def _strict(message: Message) -> Message:
    """The SDK's own type, re-validated from the JSON in strict mode (no coercion)."""
    return Message.model_validate_json(message.model_dump_json(exclude_unset=True), strict=True)


def test_create_answers_and_the_upstream_gets_system_and_turns(server, upstream):
    upstream.on("msgs-plain", Reply(text="Bonjour from Claude.", input_tokens=40, output_tokens=6, cache_read=3))
    raw = _client(server).messages.with_raw_response.create(
        model="claude-sonnet-5-5",
        max_tokens=300,
        system=[{"type": "text", "text": "You speak French.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "msgs-plain hello"}],
        metadata={"user_id": "someone"},
        extra_body={"temperature": 0.3, "top_k": 3},  # accepted and ignored; SDK 2.x no longer names them
    )
    message = _strict(raw.parse())
    assert message.model == "claude-sonnet-5-5"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Bonjour from Claude."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (40, 6)
    assert message.usage.cache_read_input_tokens == 3
    assert raw.headers["x-claude-model"] == "claude-sonnet-5-5"
    [seen] = upstream.requests_matching("msgs-plain")
    assert seen.body["model"] == "claude-sonnet-5-5"
    assert "You speak French." in seen.system_text
    assert seen.turns[-1] == ("user", "msgs-plain hello")
    assert seen.body["max_tokens"] == 300


def test_stream_helpers_give_the_text_and_the_final_message(server, upstream):
    upstream.on("msgs-stream", Reply(chunks=["one ", "two ", "three"], output_tokens=3))
    client = _client(server)
    with client.messages.stream(
        model="haiku", max_tokens=200, messages=[{"role": "user", "content": "msgs-stream go"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = _strict(stream.get_final_message())
    assert "".join(pieces) == "one two three"
    assert final.content[0].text == "one two three"  # type: ignore[union-attr]
    assert (final.model, final.stop_reason, final.usage.output_tokens) == ("haiku", "end_turn", 3)
    assert final.usage.input_tokens == 11


def test_stop_sequences_end_the_text_with_stop_sequence(server, upstream):
    upstream.on("msgs-stop", Reply(chunks=["alpha ", "beta ", "END gamma"]))
    message = _strict(
        _client(server).messages.create(
            model="haiku",
            max_tokens=100,
            stop_sequences=["END"],
            messages=[{"role": "user", "content": "msgs-stop please"}],
        )
    )
    assert message.content[0].text == "alpha beta "  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")


def test_a_tool_loop_continues_the_suspended_run(server, upstream):
    call = {"id": "toolu_msgs_loop", "name": "mcp__proxy__get_weather", "input": {"city": "Oslo"}}
    upstream.on("msgs-loop weather", Reply(chunks=["Checking."], tool_use=call, times=1))
    upstream.on("msgs-loop-cold-oslo", Reply(text="It is cold in Oslo."))
    client = _client(server)
    messages: list = [{"role": "user", "content": "msgs-loop weather in Oslo?"}]
    first = _strict(client.messages.create(model="sonnet", max_tokens=500, tools=[WEATHER], messages=messages))
    assert first.stop_reason == "tool_use"
    text, tool = first.content
    assert text.text == "Checking."  # type: ignore[union-attr]
    assert (tool.type, tool.name, tool.input) == ("tool_use", "get_weather", {"city": "Oslo"})  # type: ignore[union-attr]
    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "msgs-loop-cold-oslo"}],  # type: ignore[union-attr]
        },
    ]
    with client.messages.stream(model="sonnet", max_tokens=500, tools=[WEATHER], messages=messages) as stream:
        final = _strict(stream.get_final_message())
    assert final.content[0].text == "It is cold in Oslo."  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    [asked] = upstream.requests_matching("msgs-loop weather")
    assert [tool["name"] for tool in asked.body["tools"]] == ["mcp__proxy__get_weather"]
    [continued] = upstream.requests_matching("msgs-loop-cold-oslo")
    assert continued.body["messages"][-2]["content"][-1]["id"] == "toolu_msgs_loop"


def test_count_tokens_runs_nothing(server, upstream):
    client = _client(server)
    counted = client.messages.count_tokens(
        model="haiku",
        system="Be brief.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": "msgs-count " + "word " * 200}],
    )
    counted = MessageTokensCount.model_validate_json(counted.model_dump_json(), strict=True)
    assert counted.input_tokens > 200
    assert upstream.requests_matching("msgs-count") == []


def test_errors_arrive_as_the_sdks_exceptions(server, upstream):
    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        anthropic.Anthropic(base_url=server.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="haiku", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert bad_key.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as no_model:
        _client(server).messages.create(model="gemini", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "gemini" in no_model.value.message
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        _client(server).messages.create(
            model="haiku",
            max_tokens=10,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "hi"}],
        )
    assert "not supported" in server_tool.value.message
    upstream.on("msgs-busy", Reply(status=429, error_type="rate_limit_error", retry_after="7"))
    with pytest.raises(anthropic.RateLimitError) as busy:
        _client(server).messages.create(
            model="haiku", max_tokens=10, messages=[{"role": "user", "content": "msgs-busy"}]
        )
    assert busy.value.body["type"] == "error"  # type: ignore[index]
    assert int(busy.value.response.headers["retry-after"]) >= 1


def test_models_list_in_anthropics_shape(server, upstream):
    page = _client(server).models.list()
    ids = [model.id for model in page.data]
    assert {"haiku", "sonnet", "opus"} <= set(ids)
    assert all(model.type == "model" and model.display_name for model in page.data)
    assert _client(server).models.retrieve("claude-opus-4-1").id == "claude-opus-4-1"


def test_a_conversation_with_system_messages_inside_stays_warm(server, upstream):
    """As Claude Code sends it: each turn resends the conversation, with a system message after
    the prompt. The process that answered a turn answers the next; the model sees the system
    text at its place, as a marked block, not in the system prompt."""
    client = _client(server)
    hits_before = server.health()["pool"]["warm_hits"]
    messages: list = []
    for turn in range(3):
        messages += [
            {"role": "user", "content": f"msgs-warm turn {turn}"},
            {"role": "system", "content": f"msgs-warm context {turn}"},
        ]
        answer = client.messages.create(model="sonnet", max_tokens=100, system="Be brief.", messages=messages)
        messages.append({"role": "assistant", "content": answer.content[0].text})  # type: ignore[union-attr]
    assert server.health()["pool"]["warm_hits"] - hits_before == 2
    last = upstream.requests_matching("msgs-warm turn 2")[-1]
    assert "msgs-warm context" not in last.system_text
    user_turns = [m for m in last.body["messages"] if m["role"] == "user"]
    assert [[block["text"] for block in m["content"]] for m in user_turns] == [
        [f"msgs-warm turn {n}", f"<system-reminder>\nmsgs-warm context {n}\n</system-reminder>"] for n in range(3)
    ]


def _thinks(tag: str, **extra) -> Reply:
    return Reply(text=f"{tag} answer", thinking=f"{tag} pondering", signature=f"sig-{tag}", **extra)


def test_thinking_blocks_stream_back_and_the_effort_reaches_the_upstream(server, upstream):
    upstream.on("msgs-think", _thinks("msgs-think", redacted_thinking=1))
    with _client(server).messages.stream(
        model="opus",
        max_tokens=4000,
        thinking={"type": "adaptive"},
        extra_body={"output_config": {"effort": "high"}},
        messages=[{"role": "user", "content": "msgs-think hard"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = _strict(stream.get_final_message())
    assert [block.type for block in final.content] == ["thinking", "redacted_thinking", "text"]
    thought = final.content[0]
    assert (thought.thinking, thought.signature) == ("msgs-think pondering", "sig-msgs-think")  # type: ignore[union-attr]
    assert "thinking" in kinds and "signature" in kinds  # the SDK's own events for the deltas
    [seen] = upstream.requests_matching("msgs-think")
    assert seen.body["output_config"] == {"effort": "high"}
    assert seen.body["thinking"]["type"] == "adaptive"


def test_a_cold_tool_loop_sends_the_signed_thinking_back_and_keeps_thinking(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 0}})
    call = {"id": "toolu_msgs_think", "name": "mcp__proxy__get_weather", "input": {"city": "Rome"}}
    upstream.on("msgs-tcold weather", _thinks("msgs-tcold", chunks=[], tool_use=call, times=1))
    upstream.on("msgs-tcold-rain", Reply(text="Rain."))
    client = _client(server)
    messages: list = [{"role": "user", "content": "msgs-tcold weather?"}]
    first = client.messages.create(
        model="opus", max_tokens=4000, thinking={"type": "adaptive"}, tools=[WEATHER], messages=messages
    )
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_msgs_think", "content": "msgs-tcold-rain"}],
        },
    ]
    second = client.messages.create(
        model="opus", max_tokens=4000, thinking={"type": "adaptive"}, tools=[WEATHER], messages=messages
    )
    assert second.content[-1].text == "Rain."  # type: ignore[union-attr]
    assert server.health()["pool"]["warm_hits"] == 0
    [continued] = upstream.requests_matching("msgs-tcold-rain")
    assistant = [m for m in continued.body["messages"] if m["role"] == "assistant"][-1]
    # Unlike a chat caller, a Messages caller sends the signed thinking back: the resumed turn
    # carries it before the call, and thinking stays on.
    assert [block["type"] for block in assistant["content"]] == ["thinking", "tool_use"]
    assert assistant["content"][0]["signature"] == "sig-msgs-tcold"
    assert "thinking" in continued.body


def test_a_pdf_document_reaches_the_upstream_as_a_document_block(server, upstream):
    pdf = base64.b64encode(tiny_pdf("Revenue grew")).decode()
    upstream.on("msgs-pdf", Reply(text="It says revenue grew."))
    message = _client(server).messages.create(
        model="sonnet",
        max_tokens=300,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "report.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    },
                    {"type": "text", "text": "msgs-pdf what does it say?"},
                ],
            }
        ],
    )
    assert message.content[0].text == "It says revenue grew."  # type: ignore[union-attr]
    [seen] = upstream.requests_matching("msgs-pdf")
    user = [m for m in seen.body["messages"] if m["role"] == "user"][-1]
    [document] = [block for block in user["content"] if block["type"] == "document"]
    assert document["source"] == {"type": "base64", "media_type": "application/pdf", "data": pdf}
    assert document["title"] == "report.pdf"
