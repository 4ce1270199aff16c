"""Idle processes reused for unrelated requests of the same project and set-up, emptied first by
the CLI's `rewind_conversation`: nothing of one conversation may reach another."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.support.upstream import Recorded, Reply, comparable_body

pytestmark = pytest.mark.e2e

POOL = {"pool": {"size": 4, "spares": 1, "warm_max": 3, "reuse_max": 100}}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a fact up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
}


def _client(server, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key or server.api_key, max_retries=0)


def _ask(client: openai.OpenAI, text: str, system: str = "reuse system", **extra) -> str:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    return client.chat.completions.create(model="gpt-4o", messages=messages, **extra).choices[0].message.content


def _pool(server) -> dict:
    return server.health()["pool"]


def _request(upstream, needle: str) -> Recorded:
    (seen,) = upstream.requests_matching(needle)
    return seen


def test_an_emptied_process_answers_the_next_request_exactly_as_a_fresh_one(make_server, upstream):
    server = make_server(POOL, name="reuse")
    fresh = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 0}}, name="fresh")
    client = _client(server)

    assert _ask(client, "secret alpha question") == "Echo: secret alpha question"
    started = _pool(server)["started_total"]
    assert _ask(client, "plain beta question") == "Echo: plain beta question"
    pool = _pool(server)
    assert pool["reuse_hits"] == 1
    assert pool["started_total"] == started  # no process was started for it

    reused = _request(upstream, "plain beta question")
    assert reused.turns == [("user", "plain beta question")]
    assert "alpha" not in json.dumps(reused.body)  # nothing of the first conversation
    assert _ask(_client(fresh), "plain beta question") == "Echo: plain beta question"
    (_, baseline) = upstream.requests_matching("plain beta question")
    assert comparable_body(reused.body) == comparable_body(baseline.body)


@pytest.mark.parametrize(
    "workload",
    [
        {},
        {"tools": [LOOKUP], "tool_choice": "auto"},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}},
    ],
    ids=["plain", "tools", "structured"],
)
def test_for_each_workload_the_upstream_gets_what_a_fresh_process_sends(make_server, upstream, workload):
    server = make_server(POOL, name="reuse")
    fresh = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 0}}, name="fresh")
    if "response_format" in workload:
        upstream.on("equivalent", Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": "Ada"}}))
    client = _client(server)
    _ask(client, "equivalent first", system="one prompt", **workload)
    _ask(client, "equivalent second", system="another prompt", **workload)
    assert _pool(server)["reuse_hits"] == 1
    reused = upstream.requests_matching("equivalent second")
    _ask(_client(fresh), "equivalent second", system="another prompt", **workload)
    baseline = upstream.requests_matching("equivalent second")[len(reused) :]
    assert "equivalent first" not in json.dumps([r.body for r in reused])
    assert [comparable_body(r.body) for r in reused] == [comparable_body(r.body) for r in baseline]


def test_a_reused_process_keeps_its_new_conversation_warm(make_server, upstream):
    server = make_server(POOL)
    client = _client(server)
    _ask(client, "first conversation")
    messages = [{"role": "system", "content": "reuse system"}, {"role": "user", "content": "second conversation"}]
    messages.append(
        {
            "role": "assistant",
            "content": client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content,
        }
    )
    messages.append({"role": "user", "content": "second conversation, next turn"})
    client.chat.completions.create(model="gpt-4o", messages=messages)
    pool = _pool(server)
    assert (pool["reuse_hits"], pool["warm_hits"]) == (1, 1)
    assert _request(upstream, "second conversation, next turn").turns == [
        ("user", "second conversation"),
        ("assistant", "Echo: second conversation"),
        ("user", "second conversation, next turn"),
    ]


def test_other_projects_and_models_never_share_a_process(make_server, upstream):
    server = make_server(POOL)
    client = _client(server)
    _ask(client, "owner question")
    _ask(_client(server, server.create_key("stranger")), "stranger question")
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "reuse system"}, {"role": "user", "content": "other model question"}],
    )
    assert _pool(server)["reuse_hits"] == 0
    assert "owner" not in json.dumps(_request(upstream, "stranger question").body)


def test_a_reused_process_switches_to_the_new_system_prompt_exactly(make_server, upstream):
    server = make_server(POOL, name="reuse")
    fresh = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 0}}, name="fresh")
    client = _client(server)
    _ask(client, "first prompt question", system="context: the sky is green")
    assert (
        _ask(client, "switched prompt question", system="context: the sea is red") == "Echo: switched prompt question"
    )
    assert _pool(server)["reuse_hits"] == 1
    reused = _request(upstream, "switched prompt question")
    assert reused.system_text.endswith("context: the sea is red")
    assert "green" not in json.dumps(reused.body)
    _ask(_client(fresh), "switched prompt question", system="context: the sea is red")
    (_, baseline) = upstream.requests_matching("switched prompt question")
    assert comparable_body(reused.body) == comparable_body(baseline.body)

    # No system prompt: the CLI cannot switch a prompt to empty, so such requests keep apart.
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "no system question"}])
    assert _pool(server)["reuse_hits"] == 1
    assert "context" not in _request(upstream, "no system question").system_text


def test_the_output_limit_of_an_earlier_request_does_not_stick(make_server, upstream):
    server = make_server(POOL)
    client = _client(server)
    _ask(client, "unlimited first")
    _ask(client, "limited second", max_tokens=50)
    _ask(client, "unlimited third")
    assert _pool(server)["reuse_hits"] == 2
    default = _request(upstream, "unlimited first").body["max_tokens"]
    assert _request(upstream, "limited second").body["max_tokens"] == 50
    assert _request(upstream, "unlimited third").body["max_tokens"] == default != 50


def test_structured_output_processes_are_reused(make_server, upstream):
    server = make_server(POOL)
    client = _client(server)
    schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for name in ("Ada", "Grace"):
        upstream.on(f"extract {name}", Reply(chunks=[], tool_use={"name": "StructuredOutput", "input": {"name": name}}))
        assert json.loads(_ask(client, f"extract {name}", response_format=schema)) == {"name": name}
    assert _pool(server)["reuse_hits"] == 1
    second = _request(upstream, "extract Grace")
    assert second.turns[0] == ("user", "extract Grace")
    assert "Ada" not in json.dumps(second.body)


def test_a_process_waiting_on_tool_calls_is_not_reused_until_its_turn_ends(make_server, upstream):
    server = make_server(POOL)
    client = _client(server)
    upstream.on("needs lookup", Reply(chunks=[], tool_use={"name": "mcp__proxy__lookup", "input": {"q": "x"}}, times=1))
    messages = [{"role": "system", "content": "tool system"}, {"role": "user", "content": "needs lookup"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[LOOKUP]).choices[0].message
    assert first.tool_calls
    # Same profile while the first process is suspended on the call: it must not be taken.
    _ask(client, "unrelated while waiting", system="tool system", tools=[LOOKUP])
    assert _pool(server)["reuse_hits"] == 0
    messages += [
        first.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "42"},
    ]
    assert client.chat.completions.create(model="gpt-4o", messages=messages, tools=[LOOKUP]).choices[0].message.content
    assert _pool(server)["warm_hits"] == 1
    upstream.reset()
    _ask(client, "after the loop", system="tool system", tools=[LOOKUP])
    _ask(client, "after the loop again", system="tool system", tools=[LOOKUP])
    assert _pool(server)["reuse_hits"] == 2
    for request in upstream.requests:
        assert len(request.turns) == 1 and "lookup" not in json.dumps(request.body["messages"])


def test_a_process_is_closed_after_reuse_max_conversations(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 0, "warm_max": 3, "reuse_max": 2}})
    client = _client(server)
    for i in range(3):
        _ask(client, f"recycled {i}")
    pool = _pool(server)
    assert pool["reuse_hits"] == 1  # the second conversation; the third needed a new process
    assert pool["started_total"] == 2


def test_concurrent_reuse_keeps_conversations_apart(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 0, "warm_max": 4, "reuse_max": 100}})
    client = _client(server)
    upstream.on("parallel", Reply(chunk_delay=0.01))
    with ThreadPoolExecutor(max_workers=4) as executor:
        answers = list(executor.map(lambda i: _ask(client, f"parallel {i:02d}"), range(24)))
    assert answers == [f"Echo: parallel {i:02d}" for i in range(24)]
    pool = _pool(server)
    assert pool["reuse_hits"] >= 24 - 8 and pool["started_total"] <= 8
    for request in upstream.requests_matching("parallel"):
        assert len(request.turns) == 1


def test_each_reused_request_is_charged_its_own_cost(make_server, upstream):
    server = make_server(POOL)
    key = server.create_key("costs")
    costs = []
    for i in range(3):
        before = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()[
            "total_cost_usd"
        ]
        _ask(_client(server, key), f"costly {i}")
        after = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()[
            "total_cost_usd"
        ]
        costs.append(after - before)
    assert _pool(server)["reuse_hits"] == 2
    assert costs[0] > 0
    assert costs == pytest.approx([costs[0]] * 3)  # the CLI's running total is not charged again


def test_a_kept_process_gives_way_to_a_missing_spare_only_once_idle(make_server, upstream):
    server = make_server({"pool": {"size": 1, "spares": 1, "warm_max": 1, "reuse_max": 100}})
    client = _client(server)
    _ask(client, "takes the spare")
    _ask(client, "right after")  # the pool is full: the process just kept serves it, no new start
    pool = _pool(server)
    assert (pool["reuse_hits"], pool["started_total"]) == (1, 1)
    # Idle for a while, it is replaced by a spare, which serves any set-up.
    assert server.wait_until(lambda: (_pool(server)["spares"], _pool(server)["warm"]) == (1, 0))
    assert _pool(server)["started_total"] == 2


def test_a_process_over_the_memory_limit_is_not_kept(make_server, upstream):
    server = make_server({"pool": {"size": 2, "spares": 1, "warm_max": 2, "max_process_mb": 1}})
    client = _client(server)
    _ask(client, "too big to keep")
    _ask(client, "too big to keep, again")
    pool = _pool(server)
    assert (pool["reuse_hits"], pool["warm"]) == (0, 0)


SEARCH = {"type": "function", "function": {**LOOKUP["function"], "name": "search", "description": "Search the web"}}


def test_a_kept_process_changes_tool_sets_through_none_exactly_as_fresh_ones(make_server, upstream):
    """Tools once sent stay offered while the tool server is registered (`OfferedTools`): a
    process goes from one tool set to another only through a request without tools, which
    removes the server; one without tools takes any set. Every upstream body is what a fresh
    process sends, and nothing of an earlier tool set is offered again. One process in all, so
    every reuse is of the same process."""
    server = make_server({"pool": {"size": 1, "spares": 0, "warm_max": 1, "reuse_max": 100}}, name="reuse")
    fresh = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 0}}, name="fresh")
    steps = [
        ("switch lookup first", {"tools": [LOOKUP]}),
        ("switch search directly", {"tools": [SEARCH]}),  # cannot take the lookup process
        ("switch plain", {}),
        ("switch lookup after plain", {"tools": [LOOKUP]}),
        ("switch lookup again", {"tools": [LOOKUP]}),
    ]

    def ask(client: openai.OpenAI, text: str, extra: dict) -> str:
        messages = [{"role": "system", "content": "tool system"}, {"role": "user", "content": text}]
        response = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages, **extra)
        assert response.parse().choices[0].message.content == f"Echo: {text}"
        return response.headers["x-claude-proxy-process"]

    client = _client(server)
    paths = [ask(client, text, extra) for text, extra in steps]
    assert paths == ["new", "new", "reused", "reused", "reused"]
    offered = {text: [t["name"] for t in _request(upstream, text).body.get("tools", [])] for text, _ in steps}
    assert offered == {
        "switch lookup first": ["mcp__proxy__lookup"],
        "switch search directly": ["mcp__proxy__search"],
        "switch plain": [],
        "switch lookup after plain": ["mcp__proxy__lookup"],
        "switch lookup again": ["mcp__proxy__lookup"],
    }
    for text, extra in steps[2:]:
        reused = _request(upstream, text)
        ask(_client(fresh), text, extra)
        (_, baseline) = upstream.requests_matching(text)
        assert comparable_body(reused.body) == comparable_body(baseline.body)
