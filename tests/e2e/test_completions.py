"""Legacy text completions, `POST /v1/completions`, with the official SDK."""

from __future__ import annotations

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


def test_completion_round_trip(client, upstream, server):
    raw = client.completions.with_raw_response.create(model="gpt-3.5-turbo", prompt="legacy hello", max_tokens=20)
    body = raw.http_response.json()
    openapi.validate(body, "CreateCompletionResponse")
    assert body["object"] == "text_completion" and body["model"] == "gpt-3.5-turbo"
    assert body["choices"][0]["text"] == "Echo: legacy hello"
    assert body["usage"]["completion_tokens"] == 7
    (seen,) = upstream.requests_matching("legacy hello")
    assert seen.body["model"] == "claude-haiku-5-5" and seen.body["max_tokens"] == 20
    assert seen.turns == [("user", "legacy hello")]


def test_prompt_list_and_n_index_choices_per_prompt(client, upstream):
    result = client.completions.create(model="gpt-4o", prompt=["first p", "second p"], n=2)
    assert [c.index for c in result.choices] == [0, 1, 2, 3]
    assert [c.text for c in result.choices] == ["Echo: first p"] * 2 + ["Echo: second p"] * 2
    assert result.usage.completion_tokens == 28


def test_stop_and_streaming(client, upstream):
    upstream.on("legacy stream", Reply(chunks=["alpha ", "beta\n", "Q: next"], chunk_delay=0.05))
    stream = client.completions.create(
        model="gpt-4o", prompt="legacy stream", stop=["\nQ:"], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "alpha beta"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert all(c.object == "text_completion" for c in chunks)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"echo": True}, "echo"),
        ({"suffix": "x"}, "suffix"),
        ({"logprobs": 2}, "logprobs"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"prompt": []}, "prompt"),
    ],
)
def test_unsupported_parameters_are_400(server, extra, param):
    response = httpx.post(
        server.base_url + "/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "prompt": "x", **extra},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    openapi.validate(response.json(), "ErrorResponse")


def test_streamed_chunks_have_the_completion_shape(server, upstream):
    with httpx.stream(
        "POST",
        server.base_url + "/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "prompt": "shape check", "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    openapi.validate(chunks[-1], "CreateCompletionResponse")
    assert "".join(c["choices"][0]["text"] for c in chunks) == "Echo: shape check"
