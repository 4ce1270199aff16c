"""The Responses API end to end: official SDK → real server → real CLI → scripted upstream."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

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
TWO_CALLS = [
    {"name": "mcp__proxy__get_weather", "input": {"city": "Paris"}},
    {"name": "mcp__proxy__get_weather", "input": {"city": "Rome"}},
]


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)


@pytest.fixture()
def client(server):
    return _client(server)


def test_create_returns_a_response_object(client, upstream):
    raw = client.responses.with_raw_response.create(
        model="gpt-4o", instructions="You are terse.", input="resp-e2e-plain", max_output_tokens=300
    )
    assert raw.headers["x-claude-model"] == "sonnet"
    body = raw.http_response.json()
    openapi.validate(body, "Response")
    response = raw.parse()
    assert response.status == "completed"
    assert response.output_text == "Echo: resp-e2e-plain"
    assert response.model == "gpt-4o"
    assert response.usage.output_tokens == 7
    (seen,) = upstream.requests_matching("resp-e2e-plain")
    assert seen.body["model"] == "claude-sonnet-5-5"
    assert seen.body["max_tokens"] == 300
    assert seen.system_text.endswith("You are terse.")
    assert seen.turns == [("user", "resp-e2e-plain")]


def test_streamed_create_sends_every_event(client, upstream):
    upstream.on("resp-e2e-stream", Reply(chunks=["Hello", " there"]))
    events = list(client.responses.create(model="gpt-4o", input="resp-e2e-stream", stream=True))
    for event in events:
        openapi.validate(openapi.sdk_json(event), "ResponseStreamEvent")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "Hello there"
    assert events[-1].response.output_text == "Hello there"


def test_stream_helper_gives_the_final_response(client, upstream):
    upstream.on("resp-e2e-helper", Reply(chunks=["one", " two"]))
    with client.responses.stream(model="gpt-4o", input="resp-e2e-helper") as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "one two"
    assert final.output_text == "one two"
    assert final.status == "completed"


def test_parse_with_a_pydantic_text_format(client, upstream):
    class Person(BaseModel):
        name: str
        age: int

    upstream.on(
        "resp-e2e-parse", Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": "Li", "age": 7}})
    )
    parsed = client.responses.parse(model="gpt-4o", input="resp-e2e-parse", text_format=Person)
    assert parsed.output_parsed == Person(name="Li", age=7)
    (seen,) = upstream.requests_matching("resp-e2e-parse")
    (tool,) = seen.body["tools"]
    assert tool["name"] == "StructuredOutput"
    assert tool["input_schema"]["properties"] == {
        "name": {"title": "Name", "type": "string"},
        "age": {"title": "Age", "type": "integer"},
    }


def _ask_weather(client, upstream, tag: str):
    upstream.on(f"{tag} weather", Reply(chunks=["Let me check."], tool_uses=TWO_CALLS, times=1))
    upstream.on(f"{tag}-sun-paris", Reply(text=f"{tag}: sunny in Paris, rain in Rome."))
    first = client.responses.create(
        model="gpt-4o", instructions=f"Weather bot {tag}.", input=f"{tag} weather?", tools=[WEATHER]
    )
    openapi.validate(openapi.sdk_json(first), "Response")
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    answers = {"Paris": f"{tag}-sun-paris", "Rome": f"{tag}-rain-rome"}
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": answers[json.loads(c.arguments)["city"]]}
        for c in calls
    ]
    return first, outputs


def _check_continued(upstream, tag: str) -> None:
    (continued,) = upstream.requests_matching(f"{tag}-sun-paris")
    turns = [m for m in continued.body["messages"] if m["role"] != "system"]
    assert [b["type"] for b in turns[-2]["content"]] == ["text", "tool_use", "tool_use"]
    results = [b for b in turns[-1]["content"] if b["type"] == "tool_result"]
    assert [r["content"][0]["text"] for r in results] == [f"{tag}-sun-paris", f"{tag}-rain-rome"]


def test_function_loop_with_previous_response_id_continues_the_warm_process(make_server, upstream):
    server = make_server({"pool": {"size": 3, "spares": 1, "warm_max": 2}})
    client = _client(server)
    hits = server.health()["pool"]["warm_hits"]
    first, outputs = _ask_weather(client, upstream, "rs-prev")
    second = client.responses.create(
        model="gpt-4o",
        instructions="Weather bot rs-prev.",  # instructions are not carried over: resent, as Codex does
        previous_response_id=first.id,
        input=outputs,
        tools=[WEATHER],
    )
    assert second.output_text == "rs-prev: sunny in Paris, rain in Rome."
    assert server.health()["pool"]["warm_hits"] == hits + 1
    _check_continued(upstream, "rs-prev")


def test_stateless_function_loop_resends_the_whole_input(client, upstream):
    first, outputs = _ask_weather(client, upstream, "rs-stateless")
    items = [{"role": "user", "content": "rs-stateless weather?"}]
    items += [item.model_dump(exclude_none=True) for item in first.output]
    second = client.responses.create(
        model="gpt-4o",
        instructions="Weather bot rs-stateless.",
        input=items + outputs,
        tools=[WEATHER],
        store=False,
    )
    assert second.output_text == "rs-stateless: sunny in Paris, rain in Rome."
    _check_continued(upstream, "rs-stateless")


def test_retrieve_input_items_and_delete(client, upstream):
    created = client.responses.create(model="gpt-4o", input=[{"role": "user", "content": "resp-e2e-stored"}])
    again = client.responses.retrieve(created.id)
    assert again.output_text == created.output_text == "Echo: resp-e2e-stored"
    items = client.responses.input_items.list(created.id)
    assert [item.content[0].text for item in items.data] == ["resp-e2e-stored"]
    assert client.responses.delete(created.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_store_false_is_not_retrievable(client, upstream):
    created = client.responses.create(model="gpt-4o", input="resp-e2e-unstored", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-4o", input="x", previous_response_id=created.id)
    assert caught.value.body["code"] == "previous_response_not_found"


def test_errors(client, upstream):
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="no-such-model", input="x")
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="gpt-4o", input=[{"type": "function_call_output", "call_id": "c", "output": "x"}])
    assert bad.value.body["param"] == "input[0].call_id"
    assert upstream.requests_matching("no-such-model") == []


def test_input_tokens_count(client, upstream):
    counted = client.responses.input_tokens.count(model="gpt-4o", input="resp-e2e-count", instructions="Terse.")
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens > 0
    assert upstream.requests_matching("resp-e2e-count") == []


def test_retrieve_with_stream_replays_the_stored_response(client, upstream):
    upstream.on("resp-e2e-replay", Reply(chunks=["Re", "play"]))
    created = client.responses.create(model="gpt-4o", input="resp-e2e-replay")
    events = list(client.responses.retrieve(created.id, stream=True))
    for event in events:
        openapi.validate(openapi.sdk_json(event), "ResponseStreamEvent")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Replay"
    assert events[-1].response.id == created.id and events[-1].response.output_text == "Replay"
    later = list(client.responses.retrieve(created.id, stream=True, starting_after=len(events) - 2))
    assert [event.type for event in later] == ["response.completed"]


def test_item_references_bring_back_stored_items(client, upstream):
    first = client.responses.create(model="gpt-4o", input="resp-e2e-ref-one")
    client.responses.create(
        model="gpt-4o",
        input=[{"type": "item_reference", "id": first.output[0].id}, {"role": "user", "content": "resp-e2e-ref-two"}],
    )
    (seen,) = upstream.requests_matching("resp-e2e-ref-two")
    assert seen.turns == [("assistant", "Echo: resp-e2e-ref-one"), ("user", "resp-e2e-ref-two")]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-4o", input=[{"type": "item_reference", "id": "msg_unknown"}])
