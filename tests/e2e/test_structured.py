"""response_format json_schema and json_object, through the CLI's StructuredOutput tool."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


def test_json_schema_answer_is_the_validated_json(client, upstream):
    upstream.on(
        "extract person",
        Reply(chunks=["Sure, "], tool_use={"name": "StructuredOutput", "input": {"name": "Jane", "age": 31}}),
    )
    result = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "extract person: Jane is 31"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
    )
    openapi.validate(json.loads(result.model_dump_json()), "CreateChatCompletionResponse")
    assert json.loads(result.choices[0].message.content) == {"name": "Jane", "age": 31}
    assert result.choices[0].finish_reason == "stop"
    (seen,) = upstream.requests_matching("extract person")
    (tool,) = seen.body["tools"]
    assert tool["name"] == "StructuredOutput" and tool["input_schema"] == PERSON  # no built-in tools


def test_sdk_parse_with_a_pydantic_model(client, upstream):
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    upstream.on("parse me", Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": "Li", "age": 7}}))
    parsed = client.beta.chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "parse me"}], response_format=Person
    )
    assert parsed.choices[0].message.parsed == Person(name="Li", age=7)


def test_json_object_returns_an_object(client, upstream):
    upstream.on("any object", Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"ok": True}}))
    result = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "any object"}], response_format={"type": "json_object"}
    )
    assert json.loads(result.choices[0].message.content) == {"ok": True}


def test_streamed_structured_output_is_one_json_chunk(server, upstream):
    upstream.on(
        "stream json",
        Reply(chunks=["thinking "], tool_use={"name": "StructuredOutput", "input": {"name": "A", "age": 1}}),
    )
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "stream json"}],
            "stream": True,
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
        },
        timeout=30,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    for chunk in chunks:
        openapi.validate(chunk, "CreateChatCompletionStreamResponse")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert json.loads(text) == {"name": "A", "age": 1}


def test_output_that_never_matches_is_an_error_not_fake_json(server, upstream):
    # The CLI rejects input that does not match the schema and asks again; the model never complies.
    upstream.on(
        "bad json", Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": "A", "age": "old"}})
    )
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "bad json"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
        },
        timeout=60,
    )
    assert response.status_code == 502
    body = response.json()
    openapi.validate(body, "ErrorResponse")
    assert body["error"]["code"] == "structured_output_failed"
