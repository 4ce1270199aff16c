"""Streamed Responses through the real app in-process: OpenAI's event sequence, every event
validated against the OpenAPI document, failures and length finishes as their closing events."""

from __future__ import annotations

import pytest

from core.errors import RateLimited
from core.types import Started, TextDelta, TokenUsage
from tests.support import openapi
from tests.support.fake_backend import USAGE, FakeBackend, reply, tool_call
from tests.unit import test_app_routes
from tests.unit.test_app_routes import PROMPT_TOKENS
from tests.unit.test_responses_routes import WEATHER, create, ok, sse

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


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
