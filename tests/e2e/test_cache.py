"""The opt-in response cache, in process memory and shared through Redis."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.support import openapi

pytestmark = pytest.mark.e2e


def _post(server, content: str, *, key: str | None = None, headers: dict | None = None, **extra) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key or server.api_key}", **(headers or {})},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra},
        timeout=60,
    )


def _usage(server, key: str | None = None) -> dict:
    return httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key or server.api_key}"}).json()


def test_memory_cache_replays_without_the_cli(make_server, upstream):
    server = make_server({"cache": {"enabled": True}, "pool": {"spares": 0}})
    first = _post(server, "cache me")
    assert first.headers["x-cache"] == "miss"
    cost_before = _usage(server)["total_cost_usd"]
    assert cost_before > 0
    second = _post(server, "cache me")
    assert second.headers["x-cache"] == "hit"
    openapi.validate(second.json(), "CreateChatCompletionResponse")
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    assert second.json()["id"] != first.json()["id"]
    assert len(upstream.requests_matching("cache me")) == 1
    usage = _usage(server)
    assert usage["requests"] == 2
    assert usage["total_cost_usd"] == pytest.approx(cost_before)  # the hit cost nothing
    assert usage["prompt_tokens"] == first.json()["usage"]["prompt_tokens"] * 2


def test_cache_is_per_project_and_per_request(make_server, upstream):
    server = make_server({"cache": {"enabled": True}, "pool": {"spares": 0}})
    other = server.create_key("other-project")
    _post(server, "shared question")
    assert _post(server, "shared question", key=other).headers["x-cache"] == "miss"
    assert _post(server, "shared question", max_tokens=50).headers["x-cache"] == "miss"
    assert _post(server, "shared question!").headers["x-cache"] == "miss"
    assert len(upstream.requests_matching("shared question")) == 4


def test_no_cache_header_skips_the_lookup(make_server, upstream):
    server = make_server({"cache": {"enabled": True}, "pool": {"spares": 0}})
    _post(server, "fresh please")
    again = _post(server, "fresh please", headers={"Cache-Control": "no-cache"})
    assert again.headers["x-cache"] == "miss"
    assert len(upstream.requests_matching("fresh please")) == 2


def test_streaming_callers_get_the_cached_answer_as_chunks(make_server, upstream):
    server = make_server({"cache": {"enabled": True}, "pool": {"spares": 0}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    original = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "stream cached"}])
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "stream cached"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        assert response.headers["x-cache"] == "hit"
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    for chunk in chunks:
        openapi.validate(chunk, "CreateChatCompletionStreamResponse")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == original.choices[0].message.content
    assert chunks[-1]["usage"]["total_tokens"] == original.usage.total_tokens
    assert len(upstream.requests_matching("stream cached")) == 1


def test_a_hit_is_served_by_another_server_through_redis(make_server, upstream, tmp_path, redis_config):
    shared = {
        "storage": {"path": str(tmp_path / "shared-data")},
        "cache": {"enabled": True},
        "pool": {"spares": 0},
        **redis_config,
    }
    first = make_server(shared, name="a")
    second = make_server(shared, name="b")
    key = first.create_key("cache-across")
    miss = _post(first, "across servers", key=key)
    hit = _post(second, "across servers", key=key)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    assert hit.json()["choices"][0]["message"]["content"] == "Echo: across servers"
    assert len(upstream.requests_matching("across servers")) == 1
