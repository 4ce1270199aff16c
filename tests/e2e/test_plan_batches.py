"""Plan-aware batches, end to end: the real CLI in subscription (OAuth) mode reports a plan
window above `plan.batch_max_utilization`; a batch waits (and says why) until the window
resets a few seconds later, while chat completions still pass."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.server import RunningServer
from tests.support.upstream import Reply, plan_headers

pytestmark = pytest.mark.e2e

OAUTH_TOKEN = "oauth-token-for-plan-batches-51c2"
RESET_IN_S = 8  # the first answer, the upload and the checks below fit well within it


@pytest.fixture()
def oauth_server(make_server: Callable[..., RunningServer]) -> RunningServer:
    """A server whose CLI logs in with an OAuth token (no API key, not bare), as on a Claude plan."""
    return make_server(
        {
            "claude": {"bare": False},
            "pool": {"size": 2, "spares": 0},
            "batches": {"poll_s": 0.2},
            "plan": {"batch_max_utilization": 0.8},
        },
        name="oauth",
        oauth_token=OAUTH_TOKEN,
    )


def _batch(server: RunningServer, content: str) -> tuple[openai.OpenAI, str]:
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    line = {
        "custom_id": "held-line",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
    }
    source = client.files.create(file=io.BytesIO((json.dumps(line) + "\n").encode()), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    return client, batch.id


def _poll(get, done, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"still not done: {value}"
        time.sleep(0.05)


def test_a_batch_waits_above_the_threshold_and_finishes_after_the_reset(oauth_server, upstream):
    reset = int(time.time()) + RESET_IN_S
    full = plan_headers(
        status="allowed_warning",
        five_hour=(0.92, reset, "allowed_warning"),
        seven_day=(0.4, reset + 86400, "allowed"),
    )
    upstream.on("plan-nearly-full", Reply(text="noted", plan_headers=full))
    # After the reset the plan reports little use again.
    fresh = plan_headers(five_hour=(0.05, reset + 5 * 3600, "allowed"), seven_day=(0.4, reset + 86400, "allowed"))
    upstream.on("held batch line", Reply(text="batch answer", plan_headers=fresh))
    assert oauth_server.chat("plan-nearly-full").status_code == 200

    client, batch_id = _batch(oauth_server, "held batch line")
    raw = oauth_server.base_url + f"/batches/{batch_id}"
    waiting = _poll(lambda: httpx.get(raw, headers=oauth_server.headers).json(), lambda b: "waiting" in b)
    assert waiting["status"] == "in_progress"
    assert waiting["waiting"]["reason"] == "plan_utilization"
    assert waiting["waiting"]["resumes_at"] == reset
    assert "plan.batch_max_utilization" in waiting["waiting"]["message"]
    assert (client.batches.retrieve(batch_id).model_extra or {})["waiting"] == waiting["waiting"]

    # Interactive requests pass while the batch waits, and its line has not reached the upstream.
    for n in range(2):
        answer = oauth_server.chat(f"interactive while held {n}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == f"Echo: interactive while held {n}"
    assert time.time() < reset, "the chats took longer than the wait under test"
    assert upstream.requests_matching("held batch line") == []
    openapi.validate(waiting, "Batch")  # after the timed part: loading the document takes a while

    done = _poll(lambda: client.batches.retrieve(batch_id), lambda b: b.status == "completed", timeout=60)
    assert done.completed_at is not None and done.completed_at >= reset
    assert "waiting" not in (done.model_extra or {})
    assert len(upstream.requests_matching("held batch line")) == 1
    [result] = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert result["response"]["body"]["choices"][0]["message"]["content"] == "batch answer"
    assert OAUTH_TOKEN not in oauth_server.log_path.read_text()
