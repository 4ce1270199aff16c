"""Upstream faults end in a clear OpenAI error, release what the request held, and the pool recovers."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.support import openapi
from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e


def _post(server, content: str, key: str | None = None, **extra) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"} if key else server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        (Reply(chunks=["half ", "of ", "it"], cut_after=1), "cut"),
        (Reply(garbage=True), "garbage"),
    ],
)
def test_broken_upstream_streams_end_in_an_error_and_the_pool_recovers(make_server, upstream, reply, label):
    server = make_server({"server": {"request_timeout_s": 20}, "pool": {"spares": 0}})
    key = server.create_key(f"faulty-{label}", budget_usd=1000.0)
    upstream.on(f"fault {label}", reply)
    response = httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"fault {label}"}]},
        timeout=60,
    )
    assert response.status_code == 502
    openapi.validate(response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == "upstream_error"
    assert len(upstream.requests_matching(f"fault {label}")) == 2  # the CLI tries once more, then gives up
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)
    usage = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"}).json()
    assert usage["reserved_usd"] == 0
    assert _post(server, "after the fault").json()["choices"][0]["message"]["content"] == "Echo: after the fault"
    assert server.health()["status"] == "ok"


def test_a_cut_stream_after_output_ends_with_an_sse_error(make_server, upstream):
    server = make_server({"server": {"request_timeout_s": 20}, "pool": {"spares": 0}})
    upstream.on("cut streaming", Reply(chunks=["partial ", "rest"], cut_after=1))
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "cut streaming"}], "stream": True},
        timeout=60,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert any('"content":"partial "' in line for line in lines)  # what came before the cut was streamed
    last = json.loads(lines[-2].removeprefix("data: "))
    openapi.validate(last, "ErrorResponse")
    assert last["error"]["code"] == "upstream_error"
    assert server.wait_until(lambda: server.cli_pids() == [], timeout=10)


def _own_key(server, tag: str) -> str:
    """A key of a project of its own: no process another test's broken stream went through (the
    CLI then skips streaming for a while) is reused for it."""
    return server.create_key(f"project-{tag}")


def _stream(server, content: str, key: str | None = None, **extra) -> tuple[list[dict], dict | None]:
    """The chunks of a streamed answer, and the error object that ended it, if one did."""
    with httpx.stream(
        "POST",
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"} if key else server.headers,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}], "stream": True, **extra},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    objects = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    if "error" in objects[-1]:
        openapi.validate(objects[-1], "ErrorResponse")
        return objects[:-1], objects[-1]["error"]
    return objects, None


def _text(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _finish_reasons(chunks: list[dict]) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]


RETRIED = "the full retried answer, word for word"
BROKEN_STREAMS = {
    # The connection resets after two text deltas: the CLI bills it (its message_start came).
    "reset": Reply(chunks=["the ", "full "], break_after=2, input_tokens=100, times=1),
    # Anthropic's own way: an `event: error` inside the 200 stream, which the CLI does not bill.
    "overloaded": Reply(
        chunks=["the ", "full "],
        break_after=2,
        break_with="error",
        error_type="overloaded_error",
        error_message="Overloaded",
        input_tokens=100,
        times=1,
    ),
}


@pytest.mark.parametrize("label", sorted(BROKEN_STREAMS))
@pytest.mark.parametrize("retry", ["extends", "differs"])
def test_a_stream_broken_mid_answer_answers_with_the_clis_retry(server, upstream, label, retry):
    tag = f"broken-{label}-{retry}"
    text = RETRIED if retry == "extends" else "an answer that starts differently"
    upstream.on(tag, Reply(text=text, input_tokens=11, output_tokens=7))
    upstream.on(tag, BROKEN_STREAMS[label])
    response = _post(server, tag, key=_own_key(server, tag))
    assert response.status_code == 200, response.text
    body = response.json()
    openapi.validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == text  # the retry, not the fragment
    assert body["choices"][0]["finish_reason"] == "stop"
    first, retried = upstream.requests_matching(tag)
    assert (first.body["stream"], retried.body["stream"]) == (True, False)  # the CLI retried without streaming
    assert retried.body["messages"] == first.body["messages"]
    # Usage counts what the CLI reports as billed: the broken attempt too, when it is.
    if label == "reset":
        assert body["usage"]["prompt_tokens"] == 111
        assert body["usage"]["completion_tokens"] > 7
    else:
        assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (11, 7)


@pytest.mark.parametrize("label", sorted(BROKEN_STREAMS))
def test_a_streamed_answer_broken_mid_way_goes_on_with_the_rest_of_the_retry(server, upstream, label):
    tag = f"broken-stream-{label}"
    upstream.on(tag, Reply(text=RETRIED))
    upstream.on(tag, BROKEN_STREAMS[label])
    chunks, error = _stream(server, tag, key=_own_key(server, tag), stream_options={"include_usage": True})
    assert error is None
    assert _text(chunks) == RETRIED  # "the full " streamed once, then only what followed it
    assert _finish_reasons(chunks) == ["stop"]
    assert len(upstream.requests_matching(tag)) == 2


def test_a_streamed_answer_whose_retry_differs_ends_in_an_error_not_a_false_stop(server, upstream):
    upstream.on("broken-differs", Reply(text="an answer that starts differently"))
    upstream.on("broken-differs", BROKEN_STREAMS["reset"])
    chunks, error = _stream(server, "broken-differs", key=_own_key(server, "broken-differs"))
    assert _text(chunks) == "the full "  # what had been sent before the break
    assert _finish_reasons(chunks) == []  # never claimed complete
    assert error is not None and error["code"] == "upstream_error"
    assert "retry" in error["message"]
    assert len(upstream.requests_matching("broken-differs")) == 2


def test_a_process_that_fell_back_to_not_streaming_still_answers(make_server, upstream):
    # After a broken stream the CLI may ask without streaming for a while: a process kept for
    # reuse then prints an answer as one assistant line, with no stream events at all.
    server = make_server({"pool": {"size": 1, "spares": 0}})
    upstream.on("fallback first", Reply(text=RETRIED))
    upstream.on("fallback first", BROKEN_STREAMS["reset"])
    assert _post(server, "fallback first").json()["choices"][0]["message"]["content"] == RETRIED
    started = server.health()["pool"]["started_total"]
    for content in ("fallback second", "fallback third"):
        response = _post(server, content)
        assert response.json()["choices"][0]["message"]["content"] == f"Echo: {content}"
    chunks, error = _stream(server, "fallback streamed")
    assert error is None and _text(chunks) == "Echo: fallback streamed"
    assert _finish_reasons(chunks) == ["stop"]
    assert server.health()["pool"]["started_total"] == started  # the same process served them all


WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
CALL = {"name": "mcp__proxy__get_weather", "input": {"city": "Paris", "unit": "celsius"}}


def _tool_messages(tag: str, message: dict) -> list[dict]:
    call = message["tool_calls"][0]
    return [
        {"role": "user", "content": f"{tag} weather?"},
        {"role": "assistant", "content": message.get("content"), "tool_calls": message["tool_calls"]},
        {"role": "tool", "tool_call_id": call["id"], "content": f"{tag}-sunny"},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_cut_mid_arguments_comes_back_whole_at_once(make_server, upstream, stream):
    server = make_server({"server": {"request_timeout_s": 60}, "pool": {"spares": 0}})
    tag = f"cut-call-{stream}"
    upstream.on(f"{tag}-sunny", Reply(text="Sunny in Paris."))
    upstream.on(f"{tag} weather", Reply(chunks=[], tool_use=CALL))
    upstream.on(
        f"{tag} weather", Reply(chunks=[], tool_use=CALL, json_pieces=3, break_after=1, break_in_tool=True, times=1)
    )
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"{tag} weather?"}], "tools": [WEATHER]}
    started = time.monotonic()
    if stream:
        chunks, error = _stream(server, f"{tag} weather?", tools=[WEATHER])
        assert error is None
        assert _finish_reasons(chunks) == ["tool_calls"]
        deltas = [d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls") or []]
        call = {"id": deltas[0]["id"], "type": "function", "function": {"name": deltas[0]["function"]["name"]}}
        call["function"]["arguments"] = "".join(d["function"].get("arguments") or "" for d in deltas)
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    else:
        response = httpx.post(server.base_url + "/chat/completions", headers=server.headers, json=body, timeout=60)
        assert response.status_code == 200, response.text
        openapi.validate(response.json(), "CreateChatCompletionResponse")
        choice = response.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        message = choice["message"]
    assert time.monotonic() - started < 20  # answered, not held until the request timeout
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == CALL["input"]
    assert [r.body["stream"] for r in upstream.requests_matching(f"{tag} weather")] == [True, False]
    # The CLI waits on the retried call: the caller's result continues it.
    answer = httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={**body, "messages": _tool_messages(tag, message)},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Sunny in Paris."
    (continued,) = upstream.requests_matching(f"{tag}-sunny")
    assert continued.body["messages"][-2]["content"][-1]["input"] == CALL["input"]


def test_a_tool_call_cut_after_its_text_is_resumed_by_the_cli(make_server, upstream):
    server = make_server({"server": {"request_timeout_s": 60}, "pool": {"spares": 0}})
    # Its text block was whole, so the CLI keeps it and asks the model to resume in a new turn.
    upstream.on("cut off mid-stream", Reply(chunks=[], tool_use={**CALL, "id": "toolu_resumed"}))
    upstream.on(
        "resume weather",
        Reply(chunks=["Let me check."], tool_use=CALL, json_pieces=3, break_after=1, break_in_tool=True, times=1),
    )
    upstream.on("resume-sunny", Reply(text="Sunny."))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "resume weather?"}], "tools": [WEATHER]}
    response = httpx.post(server.base_url + "/chat/completions", headers=server.headers, json=body, timeout=60)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    (call,) = choice["message"]["tool_calls"]
    assert (call["id"], json.loads(call["function"]["arguments"])) == ("toolu_resumed", CALL["input"])
    (resumed,) = upstream.requests_matching("cut off mid-stream")
    assert resumed.body["messages"][-2]["content"] == [{"type": "text", "text": "Let me check."}]
    answer = httpx.post(
        server.base_url + "/chat/completions",
        headers=server.headers,
        json={**body, "messages": _tool_messages("resume", choice["message"])},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Sunny."


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, error_type="api_error", error_message="boom"),
        Reply(status=529, error_type="overloaded_error", error_message="Overloaded"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_do_not_reveal_the_upstream_address(server, upstream, reply, stream):
    upstream.on("hide-address", reply)
    response = _post(server, "hide-address", stream=stream)
    assert response.status_code == (503 if reply.status == 529 else 502)
    error = response.json()["error"]
    openapi.validate(response.json(), "ErrorResponse")
    port = upstream.url.rsplit(":", 1)[1]
    assert "127.0.0.1" not in response.text and port not in response.text
    assert str(reply.status) in error["message"] and reply.error_type in error["message"]
    # The operator keeps the CLI's full text, address and all.
    assert server.wait_until(lambda: f"127.0.0.1:{port}" in server.log_path.read_text(), timeout=5)


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a disk that can really be filled. Needs the right to mount (root)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path) -> None:
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def test_a_full_disk_refuses_new_work_until_the_ledger_can_be_written(make_server, small_disk):
    server = make_server({"storage": {"path": str(small_disk / "data")}})
    client = httpx.Client(base_url=server.base_url, headers=server.headers, timeout=60)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "disk full"}], "max_tokens": 16}
    assert client.post("/chat/completions", json=body).status_code == 200
    _fill(small_disk / "filler")

    # The answer that could not be recorded is still delivered; from then on nothing new runs.
    statuses = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and 503 not in statuses:
        response = client.post("/chat/completions", json=body)
        statuses.append(response.status_code)
    refused = response.json()
    assert response.status_code == 503, statuses
    openapi.validate(refused, "ErrorResponse")
    assert refused["error"]["code"] == "storage_unavailable"
    assert set(statuses) <= {200, 503}
    health = httpx.get(server.base_url.removesuffix("/v1") + "/health").json()
    assert health["status"] == "degraded" and health["storage"]["ok"] is False

    (small_disk / "filler").unlink()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = client.post("/chat/completions", json=body)
        if response.status_code == 200:
            break
    assert response.status_code == 200  # the probe found the ledger writable again
    assert httpx.get(server.base_url.removesuffix("/v1") + "/health").json()["storage"] == {"ok": True}
    usage = client.get("/usage").json()
    assert usage["reserved_usd"] == 0  # nothing is left reserved by the failed records
