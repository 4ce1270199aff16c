"""`GET /v1/responses/{id}?stream=true`: a stored response streamed again, through the real app
in-process with a scripted backend; every event validated against OpenAI's OpenAPI document."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import RateLimited
from core.types import Started, TextDelta, TokenUsage
from proxy.responses.replay import replay
from proxy.wire.responses import Response
from tests.support import openapi
from tests.support.fake_backend import FakeBackend, reply, tool_call
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import WEATHER, create, ok, sse

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

CUSTOM = {"type": "custom", "name": "apply_patch", "description": "Patch files"}


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def replayed(proxy, response_id: str, query: str = "") -> list[dict]:
    response = proxy.get(f"/v1/responses/{response_id}?stream=true{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse(response.text) if not query else _events(response.text)


def _events(text: str) -> list[dict]:
    import json

    events = [json.loads(block.split("\ndata: ", 1)[1]) for block in text.split("\n\n") if block.strip()]
    for event in events:
        openapi.validate(event, "ResponseStreamEvent")
    return events


def test_a_streamed_response_replays_as_it_was_sent(make_proxy):
    proxy = make_proxy()
    live = sse(create(proxy, stream=True).text)
    final = live[-1]["response"]
    events = replayed(proxy, final["id"])
    # The store keeps the text, not its pieces: one delta where the live stream sent two.
    assert [e["type"] for e in events] == [e["type"] for e in live if e["sequence_number"] != 5]
    assert events[-1]["response"] == final
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert events[2]["item"]["id"] == live[2]["item"]["id"] == final["output"][0]["id"]
    assert events[4]["delta"] == "Hello world"
    assert events[-2]["item"] == final["output"][0]


def test_calls_replay_with_their_arguments_and_inputs(make_proxy):
    proxy = make_proxy(
        FakeBackend().then(
            tool_call("call_1", "get_weather", '{"city": "Oslo"}'),
            tool_call("call_2", "apply_patch", '{"input": "*** Begin Patch"}'),
        )
    )
    first = ok(create(proxy, tools=[WEATHER]))
    events = replayed(proxy, first["id"])
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["arguments"] == ""
    assert events[4]["arguments"] == '{"city": "Oslo"}' and events[4]["name"] == "get_weather"
    assert events[-1]["response"] == first
    second = ok(create(proxy, tools=[CUSTOM]))
    events = replayed(proxy, second["id"])
    assert [e["type"] for e in events][2:5] == [
        "response.output_item.added",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
    ]
    assert events[3]["input"] == "*** Begin Patch"


def test_incomplete_and_failed_responses_end_as_they_ended(make_proxy):
    proxy = make_proxy(
        FakeBackend().then(
            reply("Cut", finish_reason="length"),
            [Started(TokenUsage(input_tokens=3)), TextDelta("par"), RateLimited("slow", retry_after=1)],
        )
    )
    incomplete = ok(create(proxy, max_output_tokens=16))
    events = replayed(proxy, incomplete["id"])
    assert events[-1]["type"] == "response.incomplete" and events[-1]["response"] == incomplete
    failed = sse(create(proxy, stream=True).text)[-1]["response"]
    events = replayed(proxy, failed["id"])
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow"}


def test_starting_after_skips_the_events_up_to_it(make_proxy):
    proxy = make_proxy()
    body = ok(create(proxy))
    events = replayed(proxy, body["id"], "&starting_after=3")
    assert [e["sequence_number"] for e in events] == [4, 5, 6, 7, 8]
    assert events[-1]["type"] == "response.completed"
    assert replayed(proxy, body["id"], "&starting_after=100") == []
    assert_error(
        proxy.get(f"/v1/responses/{body['id']}?stream=true&starting_after=x"),
        400,
        code="invalid_type",
        param="starting_after",
    )
    # Without stream the parameter changes nothing.
    assert ok(proxy.get(f"/v1/responses/{body['id']}?starting_after=x")) == body


def test_unknown_or_unstored_responses_are_404(make_proxy):
    proxy = make_proxy()
    assert_error(proxy.get("/v1/responses/resp_nope?stream=true"), 404, code="not_found")
    unstored = ok(create(proxy, store=False))
    assert_error(proxy.get(f"/v1/responses/{unstored['id']}?stream=true"), 404, code="not_found")


def test_a_background_response_is_followed_until_it_ends(make_proxy):
    proxy = make_proxy()
    queued = ok(create(proxy, background=True))
    events = replayed(proxy, queued["id"])
    assert events[0]["response"]["status"] == "queued" and events[0]["response"]["background"] is True
    assert [e["type"] for e in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello world"


def _collect(response: Response, look_up, wait_s: float = 5) -> list[bytes]:
    async def run() -> list[bytes]:
        return [frame async for frame in replay(response, starting_after=None, look_up=look_up, wait_s=wait_s)]

    return asyncio.run(run())


def test_cancelled_deleted_or_timed_out_responses_end_without_a_closing_event():
    cancelled = Response(id="resp_c", created_at=0, status="cancelled", model="m", background=True)
    frames = _collect(cancelled, lambda: cancelled)
    assert [f.split(b"\n")[0] for f in frames] == [
        b"event: response.created",
        b"event: response.queued",
        b"event: response.in_progress",
    ]
    running = Response(id="resp_r", created_at=0, status="in_progress", model="m", background=True)
    assert len(_collect(running, lambda: None)) == 3  # deleted while followed
    assert len(_collect(running, lambda: running, wait_s=0.3)) == 3  # still running at the deadline
