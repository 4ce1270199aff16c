"""Stored Responses through the real app in-process: retrieve, delete, input items, `store:
false`, projects kept apart, and `previous_response_id` continuing a stored conversation."""

from __future__ import annotations

import pytest

from budgets.keys import Project
from core.types import TextBlock, ToolCallArguments, ToolCallStarted, ToolResultBlock, ToolUseBlock, Turn
from tests.support import openapi
from tests.support.fake_backend import FakeBackend, reply, tool_call
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import WEATHER, create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


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
