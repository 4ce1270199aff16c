"""Warm conversations: the process that answered a turn answers the next one, with the same turns upstream."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.server import ADMIN_KEY

pytestmark = pytest.mark.e2e


def _ask(client: openai.OpenAI, messages: list[dict]) -> str:
    return client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content


def _pool(server) -> dict:
    return server.health()["pool"]


def _conversation(client, tag: str, turns: int) -> list[dict]:
    messages = [{"role": "system", "content": f"system {tag}"}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"{tag} turn {i}"})
        messages.append({"role": "assistant", "content": _ask(client, messages)})
    return messages


def test_next_turns_reuse_the_process_and_send_the_same_turns(make_server, upstream):
    warm = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 2}}, name="warm")
    cold = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 0}}, name="cold")
    warm_client = openai.OpenAI(base_url=warm.base_url, api_key=warm.api_key, max_retries=0)
    cold_client = openai.OpenAI(base_url=cold.base_url, api_key=cold.api_key, max_retries=0)

    started_before = _pool(warm)["started_total"]
    warm_messages = _conversation(warm_client, "warmconv", 4)
    warm_pool = _pool(warm)
    assert warm_pool["warm_hits"] == 3  # every turn after the first
    # Only the spare refills: no process was started to replay a conversation.
    assert warm_pool["started_total"] - started_before <= 2

    warm_seen = [r.turns for r in upstream.requests if any("warmconv" in t for _, t in r.turns)]
    upstream.reset()
    cold_messages = _conversation(cold_client, "warmconv", 4)
    cold_seen = [r.turns for r in upstream.requests if any("warmconv" in t for _, t in r.turns)]
    assert _pool(cold)["warm_hits"] == 0
    assert warm_messages == cold_messages
    assert warm_seen == cold_seen  # turn by turn, the upstream saw the same conversation
    assert warm_seen[-1] == [
        ("user", "warmconv turn 0"),
        ("assistant", "Echo: warmconv turn 0"),
        ("user", "warmconv turn 1"),
        ("assistant", "Echo: warmconv turn 1"),
        ("user", "warmconv turn 2"),
        ("assistant", "Echo: warmconv turn 2"),
        ("user", "warmconv turn 3"),
    ]
    assert all(r.system_text.endswith("system warmconv") for r in upstream.requests)


def test_edited_history_or_another_project_starts_cold(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 2}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    first = [{"role": "user", "content": "edit me"}]
    reply = _ask(client, first)
    edited = [*first, {"role": "assistant", "content": reply + " (edited)"}, {"role": "user", "content": "next"}]
    _ask(client, edited)
    assert _pool(server)["warm_hits"] == 0
    (seen,) = upstream.requests_matching("next")
    assert seen.turns[1] == ("assistant", "Echo: edit me (edited)")  # the edit reached the model

    stranger = openai.OpenAI(base_url=server.base_url, api_key=server.create_key("stranger"), max_retries=0)
    _ask(client, [{"role": "user", "content": "shared start"}])
    resumed = [
        {"role": "user", "content": "shared start"},
        {"role": "assistant", "content": "Echo: shared start"},
        {"role": "user", "content": "whose process?"},
    ]
    _ask(stranger, resumed)
    assert _pool(server)["warm_hits"] == 0  # never shared between projects
    _ask(client, resumed)
    assert _pool(server)["warm_hits"] == 1


def test_idle_warm_processes_are_closed(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 0, "warm_max": 2, "warm_idle_s": 0.5}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    _ask(client, [{"role": "user", "content": "going idle"}])
    assert _pool(server)["warm"] == 1  # parked when the answer was complete, idle for under 0.5 s
    assert server.wait_until(lambda: _pool(server)["warm"] == 0, timeout=5)
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=5)


def test_a_regenerated_or_edited_turn_rewinds_the_process_that_went_past_it(make_server, upstream):
    kept = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 4}}, name="kept")
    cold = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 0}}, name="cold")
    messages = _conversation(openai.OpenAI(base_url=kept.base_url, api_key=kept.api_key, max_retries=0), "regen", 3)
    # Regenerate the last answer, then edit the second question: both resend an earlier point
    # of the conversation the kept process went past.
    regenerate = messages[:-1]
    edited = [*messages[:3], {"role": "user", "content": "regen turn 1, edited"}]
    seen = {}
    for name, server in (("kept", kept), ("cold", cold)):
        client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
        upstream.reset()
        assert _ask(client, regenerate) == "Echo: regen turn 2"
        assert _ask(client, edited) == "Echo: regen turn 1, edited"
        seen[name] = [r.turns for r in upstream.requests]
    assert _pool(kept)["rewind_hits"] == 2
    assert _pool(cold)["rewind_hits"] == 0
    assert seen["kept"] == seen["cold"]  # turn by turn, what the cold exact path sends
    assert seen["kept"][1] == [
        ("user", "regen turn 0"),
        ("assistant", "Echo: regen turn 0"),
        ("user", "regen turn 1, edited"),
    ]
    # The rewound process holds the edited conversation now: its next turn is a warm hit.
    client = openai.OpenAI(base_url=kept.base_url, api_key=kept.api_key, max_retries=0)
    hits = _pool(kept)["warm_hits"]
    _ask(
        client,
        [
            *edited,
            {"role": "assistant", "content": "Echo: regen turn 1, edited"},
            {"role": "user", "content": "after the edit"},
        ],
    )
    assert _pool(kept)["warm_hits"] == hits + 1


def test_a_conversation_resumed_from_history_can_be_rewound_to_its_start(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 4}})
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    history = [
        {"role": "user", "content": "resumed q0"},
        {"role": "assistant", "content": "resumed a0"},
        {"role": "user", "content": "resumed q1"},
    ]
    _ask(client, history)  # no kept process holds it: a new process resumes it from a session file
    upstream.reset()
    assert _ask(client, [*history[:2], {"role": "user", "content": "resumed q1, again"}]) == "Echo: resumed q1, again"
    assert _pool(server)["rewind_hits"] == 1
    assert upstream.requests[-1].turns == [
        ("user", "resumed q0"),
        ("assistant", "resumed a0"),
        ("user", "resumed q1, again"),
    ]


def test_each_answer_says_how_its_process_was_found(make_server, upstream):
    server = make_server({"pool": {"size": 4, "spares": 1, "warm_max": 2}}, name="paths")
    client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    messages = [{"role": "user", "content": "paths turn 0"}]
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
    assert first.headers["x-claude-proxy-process"] in ("spare", "new")
    messages += [
        {"role": "assistant", "content": first.parse().choices[0].message.content},
        {"role": "user", "content": "paths turn 1"},
    ]
    # A stream says it too, in its headers, before its first chunk.
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=messages, stream=True
    ) as second:
        assert second.headers["x-claude-proxy-process"] == "warm"
        text = "".join(chunk.choices[0].delta.content or "" for chunk in second.parse() if chunk.choices)
    assert text == "Echo: paths turn 1"
    assert _pool(server)["warm_hits"] == 1
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).text
    assert 'claude_proxy_process_paths_total{process="warm"} 1' in metrics
