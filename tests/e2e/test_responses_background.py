"""Background responses end to end with the openai SDK: create, retrieve until done, cancel."""

from __future__ import annotations

import time

import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0


def _until_finished(client: openai.OpenAI, response_id: str):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        response = client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
    raise AssertionError(f"{response_id} still {response.status} after {DEADLINE_S}s")


def test_background_create_then_retrieve_until_done(server, upstream):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    created = client.responses.create(model="gpt-4o", input="resp-e2e-background", background=True)
    assert created.background is True
    assert created.status in ("queued", "in_progress")
    done = _until_finished(client, created.id)
    assert done.status == "completed"
    assert done.output_text == "Echo: resp-e2e-background"


def test_cancel_stops_the_running_cli(make_server, upstream):
    # Nothing kept (warm_max 0): the cancelled run's process is closed. Keeping a stopped turn's
    # process instead is tests/e2e/test_interrupt.py's subject.
    server = make_server({"pool": {"spares": 0, "warm_max": 0}, "server": {"request_timeout_s": 60}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    upstream.on("resp-e2e-hang", Reply(hang=True))
    created = client.responses.create(model="gpt-4o", input="resp-e2e-hang", background=True)
    assert upstream.wait_for(lambda: upstream.requests_matching("resp-e2e-hang") != [])
    assert server.cli_pids() != []
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(created.id).status == "cancelled"
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)
    assert server.wait_until(lambda: server.health()["pool"]["busy"] == 0)
    usage = client.get("/usage", cast_to=object)
    assert usage["requests"] == 1  # recorded once, as a run whose caller went away
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(client.responses.create(model="gpt-4o", input="resp-e2e-sync").id)


def test_background_stream_outlives_its_reader_and_resumes_where_it_left(make_server, upstream):
    server = make_server({})  # its own ledger: the usage below counts this test's requests only
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    upstream.on("resp-e2e-bgstream", Reply(chunks=["one ", "two ", "three ", "four"], chunk_delay=0.4))
    stream = client.responses.create(model="gpt-4o", input="resp-e2e-bgstream", background=True, stream=True)
    seen = []
    for event in stream:
        openapi.validate(openapi.sdk_json(event), "ResponseStreamEvent")
        seen.append(event)
        if event.type == "response.output_text.delta":
            break
    stream.close()  # the reader goes away in the middle of the answer
    assert seen[0].type == "response.created" and seen[0].response.status == "queued"
    assert [event.sequence_number for event in seen] == list(range(len(seen)))
    response_id = seen[0].response.id
    last = seen[-1].sequence_number
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=last))
    for event in rest:
        openapi.validate(openapi.sdk_json(event), "ResponseStreamEvent")
    assert [event.sequence_number for event in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert rest[-1].type == "response.completed"
    deltas = [event.delta for event in seen + rest if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "one two three four"
    assert rest[-1].response.output_text == "one two three four"
    assert client.responses.retrieve(response_id).status == "completed"
    # Run once, to the end: the reader going away neither cancelled nor restarted it.
    assert len(upstream.requests_matching("resp-e2e-bgstream")) == 1
    usage = client.get("/usage", cast_to=object)
    assert usage["requests"] == 1
