"""Stored responses expire after `responses.retention_days`: deleted at start-up and periodically
by the app's lifespan, with their input and item index; unfinished ones are kept."""

from __future__ import annotations

import asyncio
import time

import pytest

from budgets.database import open_database
from proxy.responses.retention import DAY_S, ResponseRetention
from proxy.responses.store import ResponseStore
from proxy.settings import SettingsError, load_settings
from proxy.wire.responses import InputText, MessageItem, Response
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

NOW = 1_800_000_000
DEADLINE_S = 10.0


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def _response(response_id: str, status: str = "completed") -> Response:
    return Response(id=response_id, created_at=NOW, status=status, model="gpt-4o")  # type: ignore[arg-type]


def _message(item_id: str) -> MessageItem:
    return MessageItem(id=item_id, status="completed", role="user", content=[InputText("hi")])


def _age(db, response_id: str, days: float, now: float) -> None:
    with db.conn:
        db.execute("update responses set created_at = ? where id = ?", [int(now - days * DAY_S), response_id])


def test_a_sweep_deletes_what_is_older_than_the_retention_and_nothing_else(tmp_path):
    db = open_database(tmp_path)
    try:
        store = ResponseStore(db)
        for name in ("old", "young", "running"):
            store.save("acme", _response(f"resp_{name}", "in_progress" if name == "running" else "completed"), [])
        store.save("other", _response("resp_elsewhere"), [_message("msg_elsewhere")])
        for response_id in ("resp_old", "resp_running", "resp_elsewhere"):
            _age(db, response_id, 31, NOW)
        _age(db, "resp_young", 29, NOW)
        retention = ResponseRetention(store, retention_days=30, interval_s=3600, clock=lambda: NOW)
        assert retention.sweep() == 2  # every project's, not only one
        assert store.get("acme", "resp_old") is None and store.get("other", "resp_elsewhere") is None
        assert store.item("other", "msg_elsewhere") is None
        assert [row[0] for row in db.execute("select count(*) from response_items where project = 'other'")] == [0]
        assert store.get("acme", "resp_young") is not None
        assert store.get("acme", "resp_running") is not None  # still running: kept until it ends
        assert retention.sweep() == 0
        forever = ResponseRetention(store, retention_days=0, interval_s=3600, clock=lambda: NOW + 1000 * DAY_S)
        assert forever.sweep() == 0
        assert store.get("acme", "resp_young") is not None
    finally:
        db.close()


def test_start_sweeps_at_once_and_close_stops_the_task(tmp_path):
    db = open_database(tmp_path)
    try:
        store = ResponseStore(db)
        store.save("acme", _response("resp_old"), [])
        _age(db, "resp_old", 31, time.time())

        async def run() -> None:
            retention = ResponseRetention(store, retention_days=30, interval_s=3600)
            await retention.start()
            assert store.get("acme", "resp_old") is None
            await retention.close()

        asyncio.run(run())
    finally:
        db.close()


def test_the_running_app_expires_stored_responses_periodically(make_proxy, tmp_path):
    proxy = make_proxy(None, **{"responses.retention_days": 30, "responses.sweep_interval_s": 0.05})
    old = ok(create(proxy, input="An old question"))
    young = ok(create(proxy, input="A young question"))
    db = open_database(tmp_path / "app1")
    try:
        _age(db, old["id"], 31, time.time())
    finally:
        db.close()
    deadline = time.monotonic() + DEADLINE_S
    while proxy.get(f"/v1/responses/{old['id']}").status_code != 404:
        assert time.monotonic() < deadline, "the expired response was not deleted"
    assert_error(proxy.get(f"/v1/responses/{old['id']}/input_items"), 404, code="not_found")
    followed = create(proxy, input="And then?", previous_response_id=old["id"])
    assert_error(followed, 404, code="previous_response_not_found", param="previous_response_id")
    assert ok(proxy.get(f"/v1/responses/{young['id']}"))["id"] == young["id"]


def test_retention_settings_are_checked():
    assert load_settings(None, environ={}).responses.retention_days == 30
    with pytest.raises(SettingsError, match="retention_days"):
        load_settings(None, environ={}, overrides={"responses.retention_days": -1})
    with pytest.raises(SettingsError, match="sweep_interval_s"):
        load_settings(None, environ={}, overrides={"responses.sweep_interval_s": 0})
