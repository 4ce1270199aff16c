"""Background responses created with `stream: true`, in-process: the creating request streams
the run's events live, a reader who goes away stops only its reading, and
`GET /v1/responses/{id}?stream=true&starting_after=N` resumes with the same numbering, while the
run goes on and after it has ended."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from budgets.database import open_database
from core.errors import RateLimited
from core.types import BackendEvent, Completed, CompletionJob, Started, TextDelta, TokenUsage
from tests.support import openapi
from tests.support.fake_backend import USAGE, FakeBackend, Step
from tests.unit import test_app_routes
from tests.unit.test_responses_background import DEADLINE_S, cancel, retrieve, until

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


class GatedBackend(FakeBackend):
    """Answers "Hello", then waits for `gate` before " world" and the end; `waiting` is set
    while it waits."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()

    async def _run(self, job: CompletionJob, steps: Iterable[Step]) -> AsyncIterator[BackendEvent]:
        try:
            yield Started(TokenUsage(input_tokens=5))
            yield TextDelta("Hello")
            self.waiting.set()
            while not self.gate.is_set():  # noqa: ASYNC110 - set from the test thread, not this loop
                await asyncio.sleep(0.01)
            yield TextDelta(" world")
            yield Completed(finish_reason="stop", usage=USAGE)
        finally:
            self.closed_streams.append(job.request_id)


@pytest.fixture()
def make_proxy(tmp_path):
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


def events_of(text: str) -> list[dict]:
    """Each frame's data, checked against its `event:` name and OpenAI's schema."""
    events = []
    for block in text.split("\n\n"):
        if block.strip():
            name, data = block.split("\n")
            event = json.loads(data[len("data: ") :])
            assert name == f"event: {event['type']}"
            openapi.validate(event, "ResponseStreamEvent")
            events.append(event)
    return events


def create_streamed(proxy, **body) -> list[dict]:
    body = {"model": "gpt-4o-mini", "input": "Hi", "background": True, "stream": True, **body}
    response = proxy.post("/v1/responses", body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return events_of(response.text)


def resume(proxy, response_id: str, starting_after: int | None = None) -> list[dict]:
    query = "" if starting_after is None else f"&starting_after={starting_after}"
    response = proxy.get(f"/v1/responses/{response_id}?stream=true{query}")
    assert response.status_code == 200, response.text
    return events_of(response.text)


def running_response(proxy, tmp_path) -> dict:
    """The one stored response, retrieved once it runs (its id is only in the stream the
    creating request has not handed over yet)."""
    db = open_database(tmp_path / "app1")
    try:
        [response_id] = [row["id"] for row in db.query("select id from responses")]
    finally:
        db.close()
    return until(lambda: retrieve(proxy, response_id), lambda body: body["status"] == "in_progress")


def test_the_creating_request_streams_the_run_and_its_events_are_kept(make_proxy):
    proxy = make_proxy()
    events = create_streamed(proxy)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[0]["response"]["status"] == "queued" and events[0]["response"]["background"] is True
    assert events[1]["response"]["status"] == "in_progress"
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["Hello", " world"]
    final = events[-1]
    assert final["type"] == "response.completed"
    response_id = final["response"]["id"]
    stored = retrieve(proxy, response_id)
    assert stored["status"] == "completed" and stored["output"] == final["response"]["output"]
    # Resuming after the run ended sends the very events the live stream sent, same numbers.
    assert resume(proxy, response_id) == events
    assert resume(proxy, response_id, starting_after=3) == events[4:]
    assert resume(proxy, response_id, starting_after=len(events) - 1) == []
    assert len(proxy.backend.jobs) == 1


def in_thread(work: Callable[[], list[dict]]) -> Callable[[], list[dict]]:
    """Starts `work` (a request the test client answers only once it is whole) on a thread;
    returns what gives its answer once it is done."""
    answer: list[list[dict]] = []
    thread = threading.Thread(target=lambda: answer.append(work()), daemon=True)
    thread.start()

    def result() -> list[dict]:
        thread.join(DEADLINE_S)
        assert answer, "the request did not finish"
        return answer[0]

    return result


def test_a_second_reader_resumes_the_running_stream_where_it_asks(make_proxy, tmp_path):
    # (The test client hands over a response only once it is whole, so a reader that goes away
    # midway is tested end to end, with the openai SDK, in tests/e2e.)
    backend = GatedBackend()
    proxy = make_proxy(backend)
    created = in_thread(lambda: create_streamed(proxy))
    assert backend.waiting.wait(DEADLINE_S)
    listed = running_response(proxy, tmp_path)
    # The live stream so far: created, in_progress, the message and its part, the first delta.
    resumed = in_thread(lambda: resume(proxy, listed["id"], starting_after=4))
    backend.gate.set()
    events, rest = created(), resumed()
    assert events[-1]["type"] == "response.completed"
    assert rest == events[5:]
    assert [e["delta"] for e in rest if e["type"] == "response.output_text.delta"] == [" world"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello world"
    assert len(backend.jobs) == 1
    db = open_database(tmp_path / "app1")
    try:
        assert [row["status"] for row in db.query("select status from usage")] == [200]
    finally:
        db.close()


def test_a_run_that_cannot_start_streams_response_failed(make_proxy):
    proxy = make_proxy(FakeBackend([RateLimited("slow down", retry_after=1)]))
    events = create_streamed(proxy)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]
    assert events[-1]["response"]["error"]["code"] == "rate_limit_exceeded"
    assert retrieve(proxy, events[0]["response"]["id"])["status"] == "failed"


def test_cancel_ends_the_live_stream_and_the_response_is_cancelled(make_proxy, tmp_path):
    backend = GatedBackend()
    proxy = make_proxy(backend)
    created = in_thread(lambda: create_streamed(proxy))
    assert backend.waiting.wait(DEADLINE_S)
    running = running_response(proxy, tmp_path)
    cancelled = cancel(proxy, running["id"])
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    events = created()
    # OpenAI has no stream event for a cancelled response: the stream just ends.
    assert events[-1]["type"] == "response.output_text.delta"
    assert len(backend.closed_streams) == 1
    assert retrieve(proxy, running["id"])["status"] == "cancelled"
    assert resume(proxy, running["id"]) == events
