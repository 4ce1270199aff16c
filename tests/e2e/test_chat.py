"""Chat completions end to end: official SDK → real server → real CLI → scripted upstream."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def test_non_streaming_round_trip_matches_openai_schema(client, server, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "ping-e2e-1"},
        ],
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-claude-model"] == "sonnet"
    body = raw.http_response.json()
    openapi.validate(body, "CreateChatCompletionResponse")
    assert body["model"] == "gpt-4o"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Echo: ping-e2e-1",
        "refusal": None,
        "annotations": [],
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["logprobs"] is None
    (seen,) = upstream.requests_matching("ping-e2e-1")
    assert seen.body["model"] == "claude-sonnet-5-5"
    assert seen.body["tools"] == []
    assert seen.system_text.endswith("You are terse.\n\nAnswer in English.")
    assert "Claude Code" not in seen.system_text  # Claude Code's own agent prompt is replaced
    assert seen.turns == [("user", "ping-e2e-1")]


@pytest.mark.parametrize(
    ("alias", "upstream_model"),
    [
        ("gpt-4o-mini", "claude-haiku-5-5"),
        ("gpt-3.5-turbo", "claude-haiku-5-5"),
        ("o3", "claude-opus-5-5"),
        ("opus", "claude-opus-5-5"),
    ],
)
def test_router_sends_each_alias_to_its_claude_model(client, upstream, alias, upstream_model):
    marker = f"route-{alias}"
    result = client.chat.completions.create(model=alias, messages=[{"role": "user", "content": marker}])
    assert result.model == alias
    (seen,) = upstream.requests_matching(marker)
    assert seen.body["model"] == upstream_model


def test_history_reaches_upstream_as_real_turns_in_order(client, upstream):
    messages = [
        {"role": "system", "content": "sys-hist"},
        {"role": "user", "content": "turn one"},
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": [{"type": "text", "text": "turn "}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "answer two"},
        {"role": "user", "content": "turn three hist"},
    ]
    result = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=321)
    assert result.choices[0].message.content == "Echo: turn three hist"
    (seen,) = upstream.requests_matching("turn three hist")
    assert seen.turns == [
        ("user", "turn one"),
        ("assistant", "answer one"),
        ("user", "turn two"),
        ("assistant", "answer two"),
        ("user", "turn three hist"),
    ]
    assert seen.body["max_tokens"] == 321
    assert seen.system_text.endswith("sys-hist")


def test_streaming_chunks_match_schema_and_deliver_usage(server, upstream):
    upstream.on(
        "stream-usage", Reply(text="alpha beta gamma", input_tokens=20, cache_read=5, cache_creation=3, output_tokens=9)
    )
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "stream-usage"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    for chunk in chunks:
        openapi.validate(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["model"] == "gpt-4o"
        assert "usage" in chunk
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "alpha beta gamma"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert len({c["id"] for c in chunks}) == 1
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 20 + 5 + 3
    assert last["usage"]["completion_tokens"] == 9
    assert last["usage"]["total_tokens"] == 37
    assert last["usage"]["prompt_tokens_details"]["cached_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_arrives_token_by_token(client, upstream):
    upstream.on("slow-tokens", Reply(chunks=["one ", "two ", "three ", "four"], chunk_delay=0.3))
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "slow-tokens"}], stream=True
    )
    import time

    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    assert [text for _, text in arrivals] == ["one ", "two ", "three ", "four"]
    # Four deltas 0.3 s apart upstream must not arrive as one burst at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.6


def test_usage_comes_from_the_cli_result(client, upstream):
    upstream.on("usage-check", Reply(input_tokens=100, output_tokens=42, cache_read=30, cache_creation=7))
    result = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "usage-check"}])
    assert result.usage.prompt_tokens == 137
    assert result.usage.completion_tokens == 42
    assert result.usage.total_tokens == 179
    assert result.usage.prompt_tokens_details.cached_tokens == 30


def test_async_client(server, upstream):
    async def run():
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        first, second = await asyncio.gather(
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async-a"}]),
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "async-b"}]),
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "async-stream"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
        return first, second, streamed

    first, second, streamed = asyncio.run(run())
    assert first.choices[0].message.content == "Echo: async-a"
    assert second.choices[0].message.content == "Echo: async-b"
    assert streamed == "Echo: async-stream"


def test_n_runs_independent_completions(client, upstream):
    result = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "two-choices"}], n=2)
    assert [c.index for c in result.choices] == [0, 1]
    assert all(c.message.content == "Echo: two-choices" for c in result.choices)
    assert len(upstream.requests_matching("two-choices")) == 2
    assert result.usage.completion_tokens == 14  # two real runs of 7 output tokens each
    openapi.validate(openapi.sdk_json(result), "CreateChatCompletionResponse")


def test_n_streaming_indexes_each_choice(client, upstream):
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "two-streams"}], n=2, stream=True
    )
    texts = {0: "", 1: ""}
    finished = set()
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert texts == {0: "Echo: two-streams", 1: "Echo: two-streams"}
    assert finished == {0, 1}


def test_stop_sequence_cuts_text_and_stops(client, upstream):
    upstream.on("stop-seq", Reply(chunks=["Thought: x\nObs", "ervation: leaked", " more"], chunk_delay=0.05))
    result = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stop-seq"}], stop=["Observation:"]
    )
    assert result.choices[0].message.content == "Thought: x\n"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stop-seq"}], stop="Observation:", stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Thought: x\n"


def test_max_tokens_ends_with_length_and_no_continuation(client, upstream):
    upstream.on("limit-me", Reply(text="cut short", stop_reason="max_tokens", output_tokens=5))
    result = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "limit-me"}], max_completion_tokens=5
    )
    assert result.choices[0].finish_reason == "length"
    assert result.choices[0].message.content == "cut short"
    assert result.usage.completion_tokens == 5
    assert upstream.requests_matching("limit-me")[0].body["max_tokens"] == 5

    # The CLI would otherwise ask the model to continue in a second upstream request, which
    # carries the same conversation. (Other requests may reach the shared upstream meanwhile.)
    def carrying_limit_me():
        return [r for r in upstream.requests if any("limit-me" in text for _, text in r.turns)]

    assert not upstream.wait_for(lambda: len(carrying_limit_me()) > 1, timeout=1.0)


def test_slash_text_reaches_the_model_as_text(client, upstream):
    result = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "/cost"}])
    assert result.choices[0].message.content == "Echo: /cost"


def test_models_endpoints(client, server):
    listing = httpx.get(server.base_url + "/models", headers=server.headers).json()
    openapi.validate(listing, "ListModelsResponse")
    ids = {m["id"] for m in listing["data"]}
    assert {"auto", "gpt-4o", "gpt-4o-mini", "o3", "gpt-5", "haiku", "sonnet", "opus"} <= ids
    one = httpx.get(server.base_url + "/models/gpt-4.1-mini", headers=server.headers)
    assert one.status_code == 200
    openapi.validate(one.json(), "Model")
    missing = httpx.get(server.base_url + "/models/gpt-nope", headers=server.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert client.models.retrieve("sonnet").id == "sonnet"


def test_health_reports_cli_and_pool_without_spending(server, upstream):
    health = server.health()
    assert health["status"] == "ok"
    assert health["cli"]["found"] is True
    assert health["cli"]["version"] == "2.1.328"
    assert health["pool"]["size"] == 4
    assert upstream.requests == []
