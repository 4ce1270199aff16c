"""Background responses end to end with the openai SDK: create, retrieve until done, cancel."""

from __future__ import annotations

import time

import openai
import pytest

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
    server = make_server({"pool": {"spares": 0}, "server": {"request_timeout_s": 60}})
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
