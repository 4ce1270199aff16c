"""A stream the caller drops mid-answer: the proxy interrupts the CLI's turn over its control
channel, cuts it away with a rewind, and keeps the process for the next request, which must not
see anything of the dropped turn."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.upstream import Reply, comparable_body

pytestmark = pytest.mark.e2e

POOL = {"pool": {"size": 3, "spares": 0, "warm_max": 3, "reuse_max": 100}}
SYSTEM = {"role": "system", "content": "interrupt system"}


def _pool(server) -> dict:
    return server.health()["pool"]


def _drop_after_first_token(server, messages: list[dict]) -> str:
    """Stream a completion, read its first piece of text, and go away."""
    body = {"model": "gpt-4o", "messages": messages, "stream": True}
    with (
        httpx.Client(base_url=server.base_url, headers=server.headers, timeout=30) as client,
        client.stream("POST", "/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                return delta["content"]
    pytest.fail("the stream ended before its first token")


def _ask(server, messages: list[dict]) -> str:
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": messages},
        headers={**server.headers, "Cache-Control": "no-cache"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


def test_a_dropped_stream_leaves_its_process_to_the_next_request_exactly(make_server, upstream):
    server = make_server(POOL, name="kept")
    upstream.on("long story", Reply(chunks=["once ", "upon ", "a ", "time ", "there ", "was"], chunk_delay=0.2))
    assert _drop_after_first_token(server, [SYSTEM, {"role": "user", "content": "long story"}]) == "once "
    assert server.wait_until(lambda: _pool(server)["recovered"] == 1)
    pids, started = server.cli_pids(), _pool(server)["started_total"]

    assert _ask(server, [SYSTEM, {"role": "user", "content": "short question"}]) == "Echo: short question"
    pool = _pool(server)
    assert (pool["started_total"], pool["recover_failed"]) == (started, 0)
    assert pool["warm_hits"] + pool["reuse_hits"] == 1
    assert server.cli_pids() == pids  # the same process answered
    (seen,) = upstream.requests_matching("short question")
    assert seen.turns == [("user", "short question")]
    assert "long story" not in json.dumps(seen.body) and "interrupted" not in json.dumps(seen.body)

    # Byte for byte what a process that never saw the dropped turn sends.
    fresh = make_server({"pool": {"size": 2, "spares": 0, "warm_max": 0}}, name="fresh")
    _ask(fresh, [SYSTEM, {"role": "user", "content": "short question"}])
    (_, baseline) = upstream.requests_matching("short question")
    assert comparable_body(seen.body) == comparable_body(baseline.body)


def test_regenerating_a_dropped_answer_continues_the_conversation_on_the_same_process(make_server, upstream):
    server = make_server(POOL)
    first = [SYSTEM, {"role": "user", "content": "opening line"}]
    history = [*first, {"role": "assistant", "content": _ask(server, first)}]
    upstream.on("slow second", Reply(chunks=["alpha ", "beta ", "gamma ", "delta"], chunk_delay=0.2, times=1))
    second = [*history, {"role": "user", "content": "slow second"}]
    assert _drop_after_first_token(server, second) == "alpha "
    assert server.wait_until(lambda: _pool(server)["recovered"] == 1)
    started, hits = _pool(server)["started_total"], _pool(server)["warm_hits"]

    assert _ask(server, second) == "Echo: slow second"  # the regenerated answer
    pool = _pool(server)
    assert (pool["started_total"], pool["warm_hits"]) == (started, hits + 1)
    regenerated = upstream.requests_matching("slow second")[-1]
    assert regenerated.turns == [
        ("user", "opening line"),
        ("assistant", "Echo: opening line"),
        ("user", "slow second"),
    ]
    assert "alpha" not in json.dumps(regenerated.body) and "interrupted" not in json.dumps(regenerated.body)


def test_a_turn_stuck_on_the_upstream_is_interrupted_too(make_server, upstream):
    server = make_server(POOL)
    upstream.on("stuck answer", Reply(chunks=["first ", "never"], hang_after=1))
    assert _drop_after_first_token(server, [SYSTEM, {"role": "user", "content": "stuck answer"}]) == "first "
    assert server.wait_until(lambda: _pool(server)["recovered"] + _pool(server)["recover_failed"] == 1)
    pool = _pool(server)
    assert (pool["recovered"], pool["processes"], pool["busy"]) == (1, 1, 0)
    started = pool["started_total"]
    assert _ask(server, [SYSTEM, {"role": "user", "content": "after the stuck one"}]) == "Echo: after the stuck one"
    assert _pool(server)["started_total"] == started
    assert "stuck answer" not in json.dumps(upstream.requests_matching("after the stuck one")[0].body)
