"""The Responses API through the real app in-process, a scripted backend behind it: bodies and
every stream event validated against OpenAI's OpenAPI document, and the jobs the backend got."""

from __future__ import annotations

import json
from typing import Any

import pytest

from budgets.keys import Project
from core.errors import RateLimited
from core.types import (
    Started,
    TextBlock,
    TextDelta,
    TokenUsage,
    ToolCallArguments,
    ToolCallStarted,
    ToolResultBlock,
    ToolUseBlock,
    Turn,
)
from tests.support import openapi
from tests.support.fake_backend import USAGE, FakeBackend, reply, tool_call
from tests.unit import test_app_routes
from tests.unit.test_app_routes import PROMPT_TOKENS, assert_error

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.fixture()
def make_proxy(tmp_path):
    """test_app_routes' app factory: the real app, a fake backend, a key of project `acme`."""
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def create(proxy, headers: dict[str, str] | None = None, **body: Any):
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("input", "Hi")
    return proxy.post("/v1/responses", body, headers)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    openapi.validate(body, "Response")
    return body


def sse(text: str) -> list[dict]:
    """Each frame's data, checked against its `event:` name, in order."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        event = json.loads(data[len("data: ") :])
        assert event["type"] == name[len("event: ") :]
        openapi.validate(event, "ResponseStreamEvent")
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


# --------------------------------------------------------------------------- create, not streamed


def test_plain_response_object_and_the_job(make_proxy):
    proxy = make_proxy()
    body = ok(
        create(
            proxy,
            input="Hi there",
            instructions="Be brief.",
            max_output_tokens=50,
            metadata={"k": "v"},
            temperature=0.5,
            user="u1",
        )
    )
    assert body["id"].startswith("resp_")
    assert body["object"] == "response"
    assert body["status"] == "completed"
    assert body["model"] == "gpt-4o-mini"
    assert body["instructions"] == "Be brief."
    assert body["metadata"] == {"k": "v"}
    assert body["temperature"] == 0.5
    assert body["top_p"] == 1.0
    assert body["user"] == "u1"
    assert body["max_output_tokens"] == 50
    assert body["store"] is True
    assert body["error"] is None and body["incomplete_details"] is None
    assert body["tools"] == [] and body["tool_choice"] == "auto"
    assert body["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    [message] = body["output"]
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["role"] == "assistant" and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "Hello world", "annotations": [], "logprobs": []}]
    assert body["usage"] == {
        "input_tokens": PROMPT_TOKENS,
        "input_tokens_details": {"cached_tokens": USAGE.cache_read_tokens, "cache_write_tokens": 20},
        "output_tokens": USAGE.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": PROMPT_TOKENS + USAGE.output_tokens,
    }
    [job] = proxy.backend.jobs
    assert job.model == "haiku"
    assert job.system == "Be brief."
    assert job.history == []
    assert job.prompt == [TextBlock("Hi there")]
    assert job.max_output_tokens == 50
    assert job.owner == "acme"


def test_item_list_input_with_roles_parts_and_images(make_proxy):
    proxy = make_proxy()
    png = "data:image/png;base64,iVBORw0KGgo="
    ok(
        create(
            proxy,
            input=[
                {"role": "system", "content": "Sys."},
                {"role": "developer", "content": [{"type": "input_text", "text": "Dev."}]},
                {"role": "user", "content": "First"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Answer"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Look"},
                        {"type": "input_image", "image_url": png, "detail": "auto"},
                    ],
                },
            ],
            instructions="Inst.",
        )
    )
    [job] = proxy.backend.jobs
    assert job.system == "Inst.\n\nSys.\n\nDev."
    assert job.history == [Turn("user", [TextBlock("First")]), Turn("assistant", [TextBlock("Answer")])]
    assert job.prompt[0] == TextBlock("Look")
    assert job.prompt[1].source.media_type == "image/png"


def test_max_output_tokens_reached_is_incomplete(make_proxy):
    proxy = make_proxy(FakeBackend(reply("Cut", finish_reason="length")))
    body = ok(create(proxy, max_output_tokens=16))
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"


def test_json_schema_format_reaches_the_job(make_proxy):
    proxy = make_proxy(FakeBackend(reply('{"a": 1}')))
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}
    body = ok(create(proxy, text={"format": fmt}))
    assert body["text"]["format"] == fmt
    assert proxy.backend.jobs[0].json_schema == schema
    ok(create(proxy, text={"format": {"type": "json_object"}}))
    assert proxy.backend.jobs[1].json_schema == {"type": "object"}


def test_function_call_output_and_a_stateless_loop(make_proxy):
    proxy = make_proxy(FakeBackend().then(tool_call("call_abc", "get_weather", '{"city":', ' "Paris"}')))
    first = ok(create(proxy, input="Weather in Paris?", tools=[WEATHER]))
    [call] = first["output"]
    assert call["type"] == "function_call" and call["id"].startswith("fc_")
    assert (call["call_id"], call["name"], call["arguments"], call["status"]) == (
        "call_abc",
        "get_weather",
        '{"city": "Paris"}',
        "completed",
    )
    assert first["tools"] == [{**WEATHER, "strict": True}]
    job = proxy.backend.jobs[0]
    assert [spec.name for spec in job.tools] == ["get_weather"] and job.tool_choice == "auto"
    second = ok(
        create(
            proxy,
            input=[
                {"role": "user", "content": "Weather in Paris?"},
                call,
                {"type": "function_call_output", "call_id": "call_abc", "output": "sunny"},
            ],
            tools=[WEATHER],
        )
    )
    assert second["output"][0]["content"][0]["text"] == "Hello world"
    job = proxy.backend.jobs[1]
    assert job.history == [
        Turn("user", [TextBlock("Weather in Paris?")]),
        Turn("assistant", [ToolUseBlock(id="call_abc", name="get_weather", input={"city": "Paris"})]),
    ]
    assert job.prompt == [ToolResultBlock(tool_use_id="call_abc", content=[TextBlock("sunny")])]
    assert job.continues_tool_calls()


def test_tool_choice_forms(make_proxy):
    proxy = make_proxy()
    body = ok(create(proxy, tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"}))
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert proxy.backend.jobs[-1].tool_choice == "required"
    ok(create(proxy, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False))
    assert proxy.backend.jobs[-1].tool_choice == "required"
    assert not proxy.backend.jobs[-1].parallel_tool_calls
    ok(create(proxy, tools=[WEATHER], tool_choice="none"))
    assert proxy.backend.jobs[-1].tools == [] and proxy.backend.jobs[-1].tool_choice == "none"


def test_hosted_tools_are_left_out_and_named_in_a_header(make_proxy):
    proxy = make_proxy()
    response = create(proxy, tools=[{"type": "web_search"}, WEATHER, {"type": "file_search", "vector_store_ids": []}])
    body = ok(response)
    assert response.headers["x-claude-proxy-omitted-tools"] == "web_search,file_search"
    assert [t["name"] for t in body["tools"]] == ["get_weather"]
    assert [spec.name for spec in proxy.backend.jobs[-1].tools] == ["get_weather"]
    plain = create(proxy)
    assert "x-claude-proxy-omitted-tools" not in plain.headers
    assert_error(
        create(proxy, tools=[{"type": "web_search"}], tool_choice={"type": "web_search"}),
        400,
        code="unsupported_parameter",
        param="tool_choice",
    )
    assert_error(
        create(proxy, tools=[{"type": "web_search"}], tool_choice="required"),
        400,
        code="unsupported_parameter",
        param="tool_choice",
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"input": []}, 400, "empty_array", "input"),
        # reasoning items are taken (and not shown to the model): this input has no user message
        ({"input": [{"type": "reasoning", "summary": []}]}, 400, None, "input"),
        ({"input": [{"type": "local_shell_call", "call_id": "c"}]}, 400, "unsupported_parameter", "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_x"}]}, 404, "not_found", "input"),
        ({"input": [{"type": "item_reference"}]}, 400, "missing_required_parameter", "input[0].id"),
        ({"input": [{"role": "user"}]}, 400, "missing_required_parameter", "input[0].content"),
        ({"input": [{"role": "assistant", "content": "x"}]}, 400, None, "input"),
        (
            {"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]},
            400,
            None,
            "input[0].call_id",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, 400, None, None),
        ({"max_output_tokens": 3}, 400, "integer_below_min_value", "max_output_tokens"),
        ({"temperature": 3}, 400, None, "temperature"),
        ({"top_logprobs": 2}, 400, "unsupported_parameter", "top_logprobs"),
        ({"background": True, "store": False}, 400, None, "background"),
        ({"background": True, "stream": True}, 400, "unsupported_parameter", "stream"),
        ({"tools": [{"type": "local_shell"}]}, 400, "unsupported_parameter", "tools[0].type"),
        (
            {
                "tools": [
                    {"type": "namespace", "name": "n" * 40, "description": "", "tools": [dict(WEATHER, name="w" * 30)]}
                ]
            },
            400,
            None,
            "tools[0].tools[0].name",
        ),
        ({"tools": [{"type": "namespace", "name": "ns", "description": "", "tools": []}]}, 400, None, "tools[0].tools"),
        (
            {
                "tools": [
                    {"type": "namespace", "name": "ns", "tools": [{"type": "namespace", "name": "in", "tools": []}]}
                ]
            },
            400,
            "unsupported_parameter",
            "tools[0].tools[0].type",
        ),
        (
            {
                "tools": [
                    WEATHER,
                    {"type": "namespace", "name": "a", "tools": [WEATHER]},
                    dict(WEATHER, name="a__get_weather"),
                ]
            },
            400,
            None,
            "tools[2].name",
        ),
        ({"tool_choice": "required"}, 400, None, "tool_choice"),
        ({"previous_response_id": "abc"}, 400, "invalid_value", "previous_response_id"),
        ({"previous_response_id": "resp_unknown"}, 404, "previous_response_not_found", "previous_response_id"),
        ({"model": "no-such-model"}, 404, "model_not_found", None),
        ({"input": 5}, 400, None, "input"),
    ],
)
def test_bad_requests(make_proxy, body, status, code, param):
    proxy = make_proxy()
    response = create(proxy, **body)
    error = response.json().get("error", {})
    assert response.status_code == status, response.text
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert proxy.backend.jobs == []


def test_rate_limits_and_the_ledger_apply(make_proxy):
    proxy = make_proxy(project=Project(name="acme", rpm=1))
    ok(create(proxy))
    assert_error(create(proxy), 429, code="rate_limit_exceeded")
    usage = proxy.get("/v1/usage").json()
    assert json.dumps(usage).count("gpt-4o-mini") >= 1


# --------------------------------------------------------------------------- streamed


def test_streamed_text_events(make_proxy):
    proxy = make_proxy()
    response = create(proxy, stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress"
    item_id = events[2]["item"]["id"]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hello", " world"]
    assert all(e["item_id"] == item_id for e in events[3:8])
    assert events[6]["text"] == "Hello world"
    final = events[-1]["response"]
    openapi.validate(final, "Response")
    assert final["status"] == "completed"
    assert final["output"] == [events[8]["item"]]
    assert final["usage"]["total_tokens"] == PROMPT_TOKENS + USAGE.output_tokens
    stored = ok(proxy.get(f"/v1/responses/{final['id']}"))
    assert stored == final


def test_streamed_text_then_function_calls(make_proxy):
    script = [
        Started(TokenUsage(input_tokens=5)),
        TextDelta("Let me check."),
        *tool_call("call_1", "get_weather", '{"city": "Oslo"}')[1:3],
        *[step for step in tool_call("call_2", "get_weather", '{"city":', ' "Rome"}')[1:4]],
    ]
    script[-3] = type(script[-3])(index=1, id="call_2", name="get_weather")
    script[-2] = type(script[-2])(index=1, arguments='{"city":')
    script[-1] = type(script[-1])(index=1, arguments=' "Rome"}')
    script.append(tool_call("x", "y")[-1])
    proxy = make_proxy(FakeBackend(script))
    events = sse(create(proxy, stream=True, tools=[WEATHER]).text)
    types = [e["type"] for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["message", "function_call", "function_call"]
    assert [item.get("call_id") for item in final["output"]] == [None, "call_1", "call_2"]
    assert final["output"][2]["arguments"] == '{"city": "Rome"}'
    assert events[15]["arguments"] == '{"city": "Rome"}' and events[15]["output_index"] == 2


def test_stream_failure_after_start_is_response_failed(make_proxy):
    proxy = make_proxy(
        FakeBackend([Started(TokenUsage(input_tokens=3)), TextDelta("par"), RateLimited("slow", retry_after=1)])
    )
    response = create(proxy, stream=True)
    events = sse(response.text)
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "rate_limit_exceeded", "message": "slow"}


def test_streamed_length_finish_is_response_incomplete(make_proxy):
    proxy = make_proxy(FakeBackend(reply("Cut", finish_reason="length")))
    events = sse(create(proxy, stream=True).text)
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


# --------------------------------------------------------------------------- stored responses


def test_retrieve_delete_and_input_items(make_proxy):
    proxy = make_proxy()
    body = ok(create(proxy, input=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]))
    rid = body["id"]
    assert ok(proxy.get(f"/v1/responses/{rid}")) == body
    listing = proxy.get(f"/v1/responses/{rid}/input_items")
    assert listing.status_code == 200
    items = listing.json()
    openapi.validate(items, "ResponseItemList")
    assert [i["content"][0]["text"] for i in items["data"]] == ["b", "a"]  # newest first by default
    assert items["first_id"] == items["data"][0]["id"] and items["last_id"] == items["data"][1]["id"]
    assert items["has_more"] is False
    asc = proxy.get(f"/v1/responses/{rid}/input_items?order=asc&limit=1").json()
    assert [i["content"][0]["text"] for i in asc["data"]] == ["a"] and asc["has_more"] is True
    rest = proxy.get(f"/v1/responses/{rid}/input_items?order=asc&after={asc['last_id']}").json()
    assert [i["content"][0]["text"] for i in rest["data"]] == ["b"]
    deleted = proxy.client.delete(f"/v1/responses/{rid}", headers=proxy.headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": rid, "object": "response", "deleted": True}
    assert_error(proxy.get(f"/v1/responses/{rid}"), 404, code="not_found")
    assert_error(proxy.client.delete(f"/v1/responses/{rid}", headers=proxy.headers), 404, code="not_found")


def test_store_false_keeps_nothing_and_other_projects_see_nothing(make_proxy):
    proxy = make_proxy()
    unstored = ok(create(proxy, store=False))
    assert unstored["store"] is False
    assert_error(proxy.get(f"/v1/responses/{unstored['id']}"), 404, code="not_found")
    stored = ok(create(proxy))
    from budgets.database import open_database  # a second project's key on the same database
    from budgets.keys import KeyStore

    settings = proxy.client.app.state["settings"]
    db = open_database(settings.storage.path)
    keys = KeyStore(db)
    keys.upsert_project(Project(name="other"))
    secret, _ = keys.create_key("other")
    db.close()
    other = {"Authorization": f"Bearer {secret}"}
    assert proxy.client.get(f"/v1/responses/{stored['id']}", headers=other).status_code == 404
    assert proxy.client.delete(f"/v1/responses/{stored['id']}", headers=other).status_code == 404
    assert proxy.client.get(f"/v1/responses/{stored['id']}/input_items", headers=other).status_code == 404
    response = proxy.client.post(
        "/v1/responses", json={"model": "gpt-4o", "input": "x", "previous_response_id": stored["id"]}, headers=other
    )
    assert_error(response, 404, code="previous_response_not_found")


def test_previous_response_id_prepends_the_conversation(make_proxy):
    proxy = make_proxy(FakeBackend().then(reply("One"), tool_call("call_w", "get_weather", '{"city": "Oslo"}')))
    first = ok(create(proxy, input="First", instructions="Inst."))
    second = ok(create(proxy, input="Second", previous_response_id=first["id"], tools=[WEATHER]))
    assert second["previous_response_id"] == first["id"]
    third = ok(
        create(
            proxy,
            input=[{"type": "function_call_output", "call_id": "call_w", "output": "cold"}],
            previous_response_id=second["id"],
            tools=[WEATHER],
        )
    )
    assert third["status"] == "completed"
    job = proxy.backend.jobs[2]
    assert job.system == ""  # instructions are not carried over, as OpenAI does
    assert job.history == [
        Turn("user", [TextBlock("First")]),
        Turn("assistant", [TextBlock("One")]),
        Turn("user", [TextBlock("Second")]),
        Turn("assistant", [ToolUseBlock(id="call_w", name="get_weather", input={"city": "Oslo"})]),
    ]
    assert job.prompt == [ToolResultBlock(tool_use_id="call_w", content=[TextBlock("cold")])]
    # input_items lists only that request's own input
    items = proxy.get(f"/v1/responses/{third['id']}/input_items").json()["data"]
    assert [i["type"] for i in items] == ["function_call_output"]


def test_max_tool_calls_is_echoed_and_leaves_function_calls_alone(make_proxy):
    # OpenAI's max_tool_calls counts built-in (hosted) tool calls only; this server runs none,
    # so every function call the model made comes back.
    two = tool_call("call_1", "get_weather", '{"city": "Oslo"}')
    two[-1:-1] = [
        ToolCallStarted(index=1, id="call_2", name="get_weather"),
        ToolCallArguments(index=1, arguments='{"city": "Rome"}'),
    ]
    proxy = make_proxy(FakeBackend(two))
    body = ok(create(proxy, tools=[WEATHER], max_tool_calls=1))
    assert body["max_tool_calls"] == 1
    assert [item["call_id"] for item in body["output"]] == ["call_1", "call_2"]
    assert ok(create(proxy))["max_tool_calls"] is None
