"""Spares made ready ahead of requests for a set-up used lately: the next new conversation of it
takes one, and the upstream receives what a fresh process sends."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.support.upstream import Reply, comparable_body

pytestmark = pytest.mark.e2e

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a fact up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]
OTHER_TOOLS = [
    {
        "type": "function",
        "function": {"name": "search", "description": "Search", "parameters": {"type": "object", "properties": {}}},
    }
]
SYSTEM = {"role": "system", "content": "ready system"}


def _ask(server, text: str, tools: list | None = None) -> str:
    response = httpx.post(
        server.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [SYSTEM, {"role": "user", "content": text}], "tools": tools or TOOLS},
        headers=server.headers,
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


def test_a_spare_made_ready_for_a_recent_set_up_serves_it_exactly(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 2, "spare_setups": 1, "warm_max": 4}}, name="ready")
    assert server.wait_until(lambda: server.health()["pool"]["spares"] == 2)
    # While this request runs, the spare it took is replaced by one made ready for its set-up.
    upstream.on("slow first", Reply(chunks=["a ", "b ", "c ", "d ", "e"], chunk_delay=0.4))
    first = threading.Thread(target=_ask, args=(server, "slow first"))
    first.start()
    try:
        assert server.wait_until(lambda: server.health()["pool"]["primed"] == 1, timeout=30)
    finally:
        first.join()
    new = server.health()["pool"]["new_hits"]

    # Another tool set of the same project and model: the first process, which offered `lookup`,
    # cannot take it (see `OfferedTools`); the spare, made ready without tools, can.
    assert _ask(server, "ready second", OTHER_TOOLS) == "Echo: ready second"
    pool = server.health()["pool"]
    assert (pool["primed_hits"], pool["new_hits"]) == (1, new)  # no process started for it
    (seen,) = upstream.requests_matching("ready second")
    assert "slow first" not in json.dumps(seen.body)

    fresh = make_server({"pool": {"size": 2, "spares": 0, "warm_max": 0}}, name="fresh")
    _ask(fresh, "ready second", OTHER_TOOLS)
    (_, baseline) = upstream.requests_matching("ready second")
    assert comparable_body(seen.body) == comparable_body(baseline.body)
