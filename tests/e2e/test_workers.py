"""A gateway with no CLI of its own (`pool.size: 0`) and `claude-proxy worker` processes."""

from __future__ import annotations

import io
import json
import signal
import threading
import time

import httpx
import openai
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


@pytest.fixture()
def cluster(make_server, make_worker, redis_config):
    """Returns a factory: (gateway, [workers]) sharing one Redis prefix."""

    def build(workers: int = 1, *, worker_pool: int = 2, claim_idle_ms: int = 30_000, gateway: dict | None = None):
        shared = {**redis_config, "workers": {"claim_idle_ms": claim_idle_ms}}
        started = [
            make_worker({**shared, "pool": {"size": worker_pool, "spares": 1}}, name=f"w{i}") for i in range(workers)
        ]
        front = make_server({**shared, "pool": {"size": 0}, **(gateway or {})}, name="gateway")
        return front, started

    return build


def test_gateway_serves_plain_and_streamed_requests_through_a_worker(cluster, upstream):
    gateway, (_worker,) = cluster()
    assert gateway.cli_pids() == []  # the gateway runs no CLI itself
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    result = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "via worker"}, {"role": "user", "content": "remote hello"}],
        max_tokens=64,
    )
    openapi.validate(json.loads(result.model_dump_json()), "CreateChatCompletionResponse")
    assert result.choices[0].message.content == "Echo: remote hello"
    assert result.usage.completion_tokens == 7
    (seen,) = upstream.requests_matching("remote hello")
    assert seen.body["model"] == "claude-haiku-5-5" and seen.body["max_tokens"] == 64
    assert seen.system_text.endswith("via worker")

    upstream.on("remote stream", Reply(chunks=["one ", "two ", "three"], chunk_delay=0.3))
    arrivals = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "remote stream"}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    assert [text for _, text in arrivals] == ["one ", "two ", "three"]
    assert arrivals[-1][0] - arrivals[0][0] > 0.4  # token by token, not one burst
    assert httpx.get(gateway.base_url + "/usage", headers=gateway.headers).json()["requests"] == 2


def test_upstream_errors_travel_back_from_the_worker(cluster, upstream):
    gateway, _ = cluster()
    upstream.on("remote 529", Reply(status=529, error_type="overloaded_error", error_message="busy"))
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        headers=gateway.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "remote 529"}]},
        timeout=30,
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_overloaded"


def test_caller_disconnect_stops_the_cli_on_the_worker(cluster, upstream):
    gateway, (worker,) = cluster(worker_pool=1)
    upstream.on("remote hang", Reply(chunks=["first ", "never"], hang_after=1))
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        headers=gateway.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "remote hang"}], "stream": True},
        timeout=30,
    ) as response:
        busy = []
        for line in response.iter_lines():
            if "first" in line:
                busy = worker.cli_pids()
                break
    assert len(busy) == 1  # a pool of one: its spare became the serving process
    assert worker.wait_until(lambda: busy[0] not in worker.cli_pids(), timeout=10)


def test_no_worker_means_a_clear_429(make_server, redis_config, upstream):
    gateway = make_server({**redis_config, "pool": {"size": 0, "queue_timeout_s": 1}}, name="lonely")
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        headers=gateway.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "anyone?"}]},
        timeout=30,
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "no_worker"
    assert "retry-after" in response.headers


def test_interactive_request_is_retried_when_its_worker_dies_before_answering(cluster, upstream):
    gateway, (first, second) = cluster(workers=2, worker_pool=2, claim_idle_ms=1500)
    upstream.on("retry me", Reply(first_delay=3.0, times=1))  # the first attempt stalls before any output
    result = {}

    def call():
        client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0, timeout=60)
        result["reply"] = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "retry me"}]
        )

    thread = threading.Thread(target=call)
    thread.start()
    assert upstream.wait_for(lambda: len(upstream.requests_matching("retry me")) == 1, timeout=15)
    victim = _busy_worker(first, second)  # the worker whose CLI is waiting on the stalled upstream
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    thread.join(60)
    assert result["reply"].choices[0].message.content == "Echo: retry me"
    assert len(upstream.requests_matching("retry me")) == 2


def _busy_worker(*workers):
    # Each worker keeps one spare in a pool of two; a worker serving a request has one process more.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counts = [(len(w.cli_pids()), w) for w in workers]
        counts.sort(key=lambda item: item[0], reverse=True)
        if counts[0][0] > counts[-1][0]:
            return counts[0][1]
        time.sleep(0.05)
    raise AssertionError("no worker looked busy")


def test_kill_9_of_a_worker_mid_batch_records_each_line_once(cluster, upstream):
    gateway, (first, _second) = cluster(
        workers=2, worker_pool=2, claim_idle_ms=1500, gateway={"batches": {"concurrency": 4}}
    )
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    upstream.on("remote batch", Reply(chunk_delay=0.2, chunks=["p ", "q ", "r"]))
    lines = [
        {
            "custom_id": f"r-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"remote batch {i}"}]},
        }
        for i in range(12)
    ]
    source = client.files.create(
        file=("in.jsonl", io.BytesIO(("\n".join(json.dumps(line) for line in lines) + "\n").encode())), purpose="batch"
    )
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert upstream.wait_for(lambda: len(upstream.requests_matching("remote batch")) >= 3, timeout=30)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    deadline = time.monotonic() + 90
    while (done := client.batches.retrieve(batch.id)).status != "completed":
        assert time.monotonic() < deadline, done
        time.sleep(0.1)
    outputs = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert done.error_file_id is None
    assert sorted(o["custom_id"] for o in outputs) == sorted(line["custom_id"] for line in lines)
    assert all(o["response"]["body"]["choices"][0]["message"]["content"] == "p q r" for o in outputs)


def test_tool_calls_and_results_travel_through_the_queue(cluster, upstream):
    gateway, (_worker,) = cluster()
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}},
        }
    ]
    upstream.on(
        "queued tools", Reply(chunks=["Looking."], tool_use={"name": "mcp__proxy__lookup", "input": {"q": "x"}})
    )
    upstream.on("queued-result", Reply(text="Found it."))
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    messages = [{"role": "user", "content": "queued tools please"}]
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, stream=True)
    names, arguments, finish = [], "", None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if delta.function.name:
                names.append((delta.id, delta.function.name))
            arguments += delta.function.arguments or ""
        if chunk.choices:
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    ((call_id, name),) = names
    assert name == "lookup" and json.loads(arguments) == {"q": "x"}
    messages += [
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "queued-result"},
    ]
    final = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert final.choices[0].message.content == "Found it."
    assert upstream.requests_matching("queued-result")
