"""Background responses in-process: created queued, run by the app, stored when done, cancelled
with their run (the backend's stream closed, the ledger row 499), failed on shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from budgets.database import open_database
from core.errors import RateLimited
from core.types import BackendEvent, CompletionJob, Started, TextBlock, TokenUsage
from tests.support import openapi
from tests.support.fake_backend import FakeBackend, Step
from tests.unit import test_app_routes
from tests.unit.test_app_routes import assert_error
from tests.unit.test_responses_routes import create, ok

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

DEADLINE_S = 10.0


class HangingBackend(FakeBackend):
    """Answers as FakeBackend, except that a prompt saying "hang" starts and then waits until
    its stream is closed; `hanging` is set once it does."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = threading.Event()

    async def _run(self, job: CompletionJob, steps: Iterable[Step]) -> AsyncIterator[BackendEvent]:
        if job.prompt != [TextBlock("hang")]:
            async for event in super()._run(job, steps):
                yield event
            return
        try:
            yield Started(TokenUsage(input_tokens=5))
            self.hanging.set()
            await asyncio.Event().wait()
        finally:
            self.closed_streams.append(job.request_id)


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def until(get: Callable[[], dict], done: Callable[[dict], bool]) -> dict:
    """Polls `get` until `done` holds of its answer, for at most DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        answer = get()
        if done(answer):
            return answer
    raise AssertionError(f"still not done after {DEADLINE_S}s: {answer}")


def retrieve(proxy, response_id: str) -> dict:
    response = proxy.get(f"/v1/responses/{response_id}")
    assert response.status_code == 200, response.text
    return response.json()


def cancel(proxy, response_id: str):
    return proxy.post(f"/v1/responses/{response_id}/cancel", None)


def test_a_background_response_is_queued_then_stored_completed(make_proxy):
    proxy = make_proxy()
    queued = ok(create(proxy, input="Hi there", background=True))
    assert queued["status"] in ("queued", "in_progress")
    assert queued["background"] is True and queued["output"] == [] and queued["usage"] is None
    done = until(lambda: retrieve(proxy, queued["id"]), lambda body: body["status"] == "completed")
    openapi.validate(done, "Response")
    assert done["background"] is True
    assert done["output"][0]["content"][0]["text"] == "Hello world"
    assert done["usage"]["output_tokens"] > 0
    [job] = proxy.backend.jobs
    assert job.prompt == [TextBlock("Hi there")]
    items = proxy.get(f"/v1/responses/{queued['id']}/input_items").json()["data"]
    assert [item["content"][0]["text"] for item in items] == ["Hi there"]
    assert_error(cancel(proxy, queued["id"]), 400, code=None, param="response_id")


def test_a_failed_run_is_stored_failed(make_proxy):
    proxy = make_proxy(FakeBackend([RateLimited("slow down", retry_after=1)]))
    queued = ok(create(proxy, background=True))
    failed = until(lambda: retrieve(proxy, queued["id"]), lambda body: body["status"] == "failed")
    assert failed["error"]["code"] == "rate_limit_exceeded"


def test_cancel_stops_the_run_and_the_ledger_records_it(make_proxy, tmp_path):
    backend = HangingBackend()
    proxy = make_proxy(backend)
    queued = ok(create(proxy, input="hang", background=True))
    assert backend.hanging.wait(DEADLINE_S)
    assert retrieve(proxy, queued["id"])["status"] == "in_progress"
    cancelled = cancel(proxy, queued["id"])
    assert cancelled.status_code == 200, cancelled.text
    openapi.validate(cancelled.json(), "Response")
    assert cancelled.json()["status"] == "cancelled"
    [job] = backend.jobs
    assert backend.closed_streams == [job.request_id]
    assert retrieve(proxy, queued["id"])["status"] == "cancelled"
    again = cancel(proxy, queued["id"])  # OpenAI: cancelling twice returns the cancelled response
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    db = open_database(tmp_path / "app1")
    try:
        assert [row["status"] for row in db.query("select status from usage")] == [499]
    finally:
        db.close()


def test_what_cannot_be_cancelled(make_proxy):
    proxy = make_proxy()
    plain = ok(create(proxy))
    assert_error(cancel(proxy, plain["id"]), 400, code=None, param="response_id")
    assert_error(cancel(proxy, "resp_nothing"), 404, code="not_found", param="response_id")


def test_shutdown_marks_a_running_background_response_failed(make_proxy, tmp_path):
    backend = HangingBackend()
    proxy = make_proxy(backend)
    queued = ok(create(proxy, input="hang", background=True))
    assert backend.hanging.wait(DEADLINE_S)
    proxy.client.__exit__(None, None, None)  # the lifespan closes
    assert backend.closed_streams == [backend.jobs[0].request_id]
    db = open_database(tmp_path / "app1")
    try:
        [raw] = [row["response"] for row in db.query("select response from responses where id = ?", [queued["id"]])]
    finally:
        db.close()
    assert '"status":"failed"' in raw and "shut down" in raw
