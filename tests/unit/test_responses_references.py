"""`item_reference` input items, through the real app in-process with a scripted backend: a
reference becomes the stored item it names (of the caller's project only), everywhere the
item itself would be."""

from __future__ import annotations

import time

import pytest
import sqlite_utils

from budgets.keys import Project
from core.types import TextBlock, ToolResultBlock, ToolUseBlock, Turn
from proxy.responses.store import ResponseStore
from proxy.wire.responses import MessageItem, Response
from tests.support.fake_backend import FakeBackend, reply, tool_call
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import WEATHER, create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def ref(item_id: str) -> dict:
    return {"type": "item_reference", "id": item_id}


def other_project(proxy) -> dict[str, str]:
    from budgets.database import open_database
    from budgets.keys import KeyStore

    db = open_database(proxy.client.app.state["settings"].storage.path)
    keys = KeyStore(db)
    keys.upsert_project(Project(name="other"))
    secret, _ = keys.create_key("other")
    db.close()
    return {"Authorization": f"Bearer {secret}"}


def test_references_to_input_and_output_items_become_those_items(make_proxy):
    proxy = make_proxy(FakeBackend().then(tool_call("call_w", "get_weather", '{"city": "Oslo"}'), reply("Cold.")))
    first = ok(create(proxy, input="Weather in Oslo?", tools=[WEATHER]))
    question_id = proxy.get(f"/v1/responses/{first['id']}/input_items").json()["data"][0]["id"]
    [call] = first["output"]
    second = ok(
        create(
            proxy,
            input=[
                ref(question_id),
                ref(call["id"]),
                {"type": "function_call_output", "call_id": "call_w", "output": "-3"},
            ],
            tools=[WEATHER],
        )
    )
    assert second["status"] == "completed"
    job = proxy.backend.jobs[1]
    assert job.history == [
        Turn("user", [TextBlock("Weather in Oslo?")]),
        Turn("assistant", [ToolUseBlock(id="call_w", name="get_weather", input={"city": "Oslo"})]),
    ]
    assert job.prompt == [ToolResultBlock(tool_use_id="call_w", content=[TextBlock("-3")])]
    # The stored input holds the items themselves, under their own ids.
    listed = proxy.get(f"/v1/responses/{second['id']}/input_items?order=asc").json()["data"]
    assert [(i["type"], i["id"]) for i in listed[:2]] == [("message", question_id), ("function_call", call["id"])]
    assert listed[1] == call


def test_count_input_tokens_resolves_references(make_proxy):
    proxy = make_proxy()
    first = ok(create(proxy, input="x" * 400))
    item_id = proxy.get(f"/v1/responses/{first['id']}/input_items").json()["data"][0]["id"]
    long = proxy.post("/v1/responses/input_tokens", {"model": "gpt-4o-mini", "input": [ref(item_id)]}).json()
    short = proxy.post("/v1/responses/input_tokens", {"model": "gpt-4o-mini", "input": "x"}).json()
    assert long["input_tokens"] > short["input_tokens"]
    assert_error(
        proxy.post("/v1/responses/input_tokens", {"model": "gpt-4o-mini", "input": [ref("msg_nope")]}),
        404,
        code="not_found",
        param="input",
    )


def test_unknown_unstored_deleted_and_other_projects_items_do_not_resolve(make_proxy):
    proxy = make_proxy()
    unstored = ok(create(proxy, store=False))
    stored = ok(create(proxy))
    message_id = stored["output"][0]["id"]
    other = other_project(proxy)
    response = proxy.client.post(
        "/v1/responses", json={"model": "gpt-4o-mini", "input": [ref(message_id)]}, headers=other
    )
    assert_error(response, 404, code="not_found", param="input")
    assert message_id in response.json()["error"]["message"]
    assert_error(create(proxy, input=[ref(unstored["output"][0]["id"])]), 404, code="not_found", param="input")
    proxy.client.delete(f"/v1/responses/{stored['id']}", headers=proxy.headers)
    assert_error(create(proxy, input=[ref(message_id)]), 404, code="not_found", param="input")
    assert len(proxy.backend.jobs) == 2


def test_background_output_items_can_be_referenced(make_proxy):
    proxy = make_proxy()
    queued = ok(create(proxy, background=True))
    for _ in range(200):
        done = ok(proxy.get(f"/v1/responses/{queued['id']}"))
        if done["status"] == "completed":
            break
        time.sleep(0.01)
    assert done["status"] == "completed"
    ok(create(proxy, input=[ref(done["output"][0]["id"]), {"role": "user", "content": "more"}]))
    assert proxy.backend.jobs[-1].history == [Turn("assistant", [TextBlock("Hello world")])]


def test_items_stored_before_the_index_existed_are_found(tmp_path):
    db = sqlite_utils.Database(tmp_path / "old.db")
    db["responses"].create(
        {
            "id": str,
            "project": str,
            "previous_response_id": str,
            "created_at": int,
            "response": str,
            "input_items": str,
        },
        pk="id",
    )
    store = ResponseStore(db)
    item = MessageItem(id="msg_old", status="completed", role="user", content="hi")
    store.save("acme", Response(id="resp_old", created_at=0, status="completed", model="m"), [item])
    db.execute("drop table response_items")
    reopened = ResponseStore(db)
    assert reopened.item("acme", "msg_old") == item
    assert reopened.item("other", "msg_old") is None
