"""The Responses API through the real app in-process, a scripted backend behind it: bodies and
every stream event validated against OpenAI's OpenAPI document, and the jobs the backend got."""

from __future__ import annotations

import json
from typing import Any

import pytest

from budgets.keys import Project
from core.types import (
    TextBlock,
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
