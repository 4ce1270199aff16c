"""Route-level seam tests: the real app in-process, a scripted backend behind it.

These pin what a caller sees over HTTP (bodies, headers, SSE framing, errors, the ledger, the
cache, batches) and what the backend is asked to run, so that the request pipeline between
the routes and `ChatBackend` can be restructured without changing either.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from litestar.testing import TestClient

from budgets.database import open_database
from budgets.keys import KeyStore, Project
from core.errors import RateLimited
from core.types import Priority, Started, TextBlock, TextDelta, TokenUsage, ToolSpec, Turn
from proxy.app import create_app
from proxy.settings import load_settings
from tests.support import openapi
from tests.support.fake_backend import USAGE, FakeBackend, reply, tool_call

# Building the app warns ~90 times that Litestar 3 will stop inferring dependencies and path
# parameters the way proxy/routes declares them; that is production code's to fix, and repeated
# for every app built here it would bury this file's own output.
pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")

# USAGE as OpenAI reports it: prompt tokens include cache reads and cache writes.
PROMPT_TOKENS = USAGE.input_tokens + USAGE.cache_read_tokens + USAGE.cache_creation_tokens
COMPLETION_TOKENS = USAGE.output_tokens


class Proxy:
    """One running app: its test client, the fake behind it, and a key of project `acme`."""

    def __init__(self, client: TestClient, backend: FakeBackend, key: str, project: str) -> None:
        self.client = client
        self.backend = backend
        self.key = key
        self.project = project
        self.headers = {"Authorization": f"Bearer {key}"}

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None):
        return self.client.post(path, json=body, headers={**self.headers, **(headers or {})})

    def chat(self, headers: dict[str, str] | None = None, **body: Any):
        body.setdefault("model", "gpt-4o-mini")
        body.setdefault("messages", [{"role": "user", "content": "Hi"}])
        return self.post("/v1/chat/completions", body, headers)

    def get(self, path: str):
        return self.client.get(path, headers=self.headers)


@pytest.fixture()
def make_proxy(tmp_path) -> Iterator[Callable[..., Proxy]]:
    """Builds and starts an app (lifespan included); every one is stopped after the test."""
    stack = ExitStack()
    count = 0

    def make(backend: FakeBackend | None = None, *, project: Project | None = None, **overrides: Any) -> Proxy:
        nonlocal count
        count += 1
        storage = tmp_path / f"app{count}"
        settings = load_settings(None, environ={}, overrides={"storage.path": str(storage), **overrides})
        project = project or Project(name="acme")
        db = open_database(storage)
        keys = KeyStore(db)
        keys.upsert_project(project)
        secret, _ = keys.create_key(project.name)
        db.close()
        backend = backend or FakeBackend()
        client = stack.enter_context(TestClient(app=create_app(settings, backend=backend)))
        return Proxy(client, backend, secret, project.name)

    yield make
    stack.close()


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of an SSE body in order: decoded JSON, or the literal `[DONE]`."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def assert_error(response, status: int, *, code: str, type_: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if type_ is not None:
        assert error["type"] == type_
    if param is not None:
        assert error["param"] == param
    return error


# --------------------------------------------------------------------------- chat, not streamed


def test_chat_completion_body_headers_and_the_job_the_backend_got(make_proxy):
    proxy = make_proxy(project=Project(name="acme", rpm=5))
    before = int(time.time())
    response = proxy.chat(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        max_tokens=50,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert before <= body["created"] <= int(time.time())
    assert body["model"] == "gpt-4o-mini"  # the alias the caller sent, not the Claude model
    assert len(body["choices"]) == 1
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Hello world"
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == PROMPT_TOKENS == 131
    assert usage["completion_tokens"] == COMPLETION_TOKENS
    assert usage["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS
    assert usage["prompt_tokens_details"]["cached_tokens"] == USAGE.cache_read_tokens

    assert response.headers["x-claude-model"] == "haiku"
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_")
    assert response.headers["x-ratelimit-limit-requests"] == "5"
    assert response.headers["x-ratelimit-remaining-requests"] == "4"
    assert "x-ratelimit-reset-requests" in response.headers

    [job] = proxy.backend.jobs
    assert job.model == "haiku"
    assert job.system == "Be brief."
    assert job.history == []
    assert job.prompt == [TextBlock("Hi there")]
    assert job.max_output_tokens == 50
    assert job.owner == "acme"
    assert job.priority == Priority.INTERACTIVE
    assert job.request_id == request_id
    assert job.tools == []
    assert job.json_schema is None


def test_history_default_max_tokens_and_model_tiers_reach_the_backend(make_proxy):
    proxy = make_proxy()
    messages = [
        {"role": "developer", "content": "Rule one."},
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "Answer"},
        {"role": "user", "content": [{"type": "text", "text": "Second"}]},
    ]
    first = proxy.chat(model="gpt-4o", messages=messages)
    second = proxy.chat(model="opus", max_completion_tokens=33)
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-claude-model"], second.headers["x-claude-model"]) == ("sonnet", "opus")
    assert first.json()["model"] == "gpt-4o" and second.json()["model"] == "opus"
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # No rpm/tpm on the project: no rate-limit headers.
    assert not [name for name in first.headers if name.startswith("x-ratelimit-")]

    job, other = proxy.backend.jobs
    assert job.model == "sonnet"
    assert job.system == "Rule one."
    assert job.history == [Turn("user", [TextBlock("First")]), Turn("assistant", [TextBlock("Answer")])]
    assert job.prompt == [TextBlock("Second")]
    assert job.max_output_tokens == 8192  # budgets.default_max_tokens bounds every job
    assert (other.model, other.max_output_tokens, other.system) == ("opus", 33, "")


def test_rpm_exhausted_gives_429_with_retry_after_and_no_job(make_proxy):
    proxy = make_proxy(project=Project(name="acme", rpm=1))
    assert proxy.chat().status_code == 200
    refused = proxy.chat()
    assert_error(refused, 429, code="rate_limit_exceeded", type_="requests")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == "1"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(proxy.backend.jobs) == 1


def test_n_two_runs_two_jobs_and_sums_their_usage(make_proxy):
    backend = FakeBackend().then(reply("first"), reply("second"))
    proxy = make_proxy(backend)
    response = proxy.chat(n=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert sorted(c["message"]["content"] for c in body["choices"]) == ["first", "second"]
    assert [c["finish_reason"] for c in body["choices"]] == ["stop", "stop"]
    assert body["usage"]["prompt_tokens"] == 2 * PROMPT_TOKENS
    assert body["usage"]["completion_tokens"] == 2 * COMPLETION_TOKENS
    assert len(backend.jobs) == 2
    assert backend.jobs[0] == backend.jobs[1]


def test_stop_sequence_cuts_the_text_and_finishes_with_stop(make_proxy):
    # The backend would go on and even say "length"; the proxy cuts at the stop and says "stop".
    backend = FakeBackend(reply("one two ", "three EN", "D four", finish_reason="length"))
    proxy = make_proxy(backend)
    response = proxy.chat(stop=["END", "never"])
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == "one two three "
    assert choice["finish_reason"] == "stop"
    assert response.json()["usage"]["completion_tokens"] > 0
    # The backend stream was closed once the stop matched.
    assert backend.closed_streams == [backend.jobs[0].request_id]


def test_length_finish_reason_passes_through(make_proxy):
    proxy = make_proxy(FakeBackend(reply("truncated", finish_reason="length")))
    choice = proxy.chat(max_tokens=3).json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("truncated", "length")


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def test_tool_calls_from_the_backend_become_message_tool_calls(make_proxy):
    proxy = make_proxy(FakeBackend(tool_call("call_abc", "get_weather", '{"city":', ' "Paris"}')))
    response = proxy.chat(messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS)
    assert response.status_code == 200, response.text
    body = response.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    [job] = proxy.backend.jobs
    assert job.tools == [
        ToolSpec(name="get_weather", description="Weather in a city", parameters=TOOLS[0]["function"]["parameters"])
    ]
    assert job.tool_choice == "auto"


def test_streamed_tool_call_arrives_as_tool_call_deltas(make_proxy):
    proxy = make_proxy(FakeBackend(tool_call("call_abc", "get_weather", '{"city":', ' "Paris"}')))
    response = proxy.chat(tools=TOOLS, stream=True)
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    deltas = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert deltas[0]["id"] == "call_abc" and deltas[0]["function"]["name"] == "get_weather"
    assert "".join(d["function"].get("arguments", "") for d in deltas) == '{"city": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


# --------------------------------------------------------------------------- chat, streamed


def test_stream_sends_role_text_finish_and_done(make_proxy):
    proxy = make_proxy(FakeBackend(reply("Hel", "lo", " world")))
    response = proxy.chat(stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-claude-model"] == "haiku"
    assert response.headers["x-request-id"].startswith("req_")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    assert "[DONE]" not in events[:-1]
    chunks = events[:-1]
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gpt-4o-mini"
        assert "usage" not in chunk  # only with stream_options.include_usage
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["finish_reason"] is None
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]]
    assert texts == ["Hel", "lo", " world"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[1:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not chunks[-1]["choices"][0]["delta"].get("content")
    [job] = proxy.backend.jobs
    assert (job.model, job.owner, job.priority) == ("haiku", "acme", Priority.INTERACTIVE)


def test_stream_with_include_usage_ends_with_a_usage_chunk(make_proxy):
    proxy = make_proxy()
    response = proxy.chat(stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    *chunks, usage_chunk = events[:-1]
    assert all(chunk["usage"] is None for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert usage_chunk["usage"]["completion_tokens"] == COMPLETION_TOKENS
    assert usage_chunk["usage"]["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS
    assert usage_chunk["id"] == chunks[0]["id"]


def test_stream_stop_sequence_split_across_deltas_is_cut(make_proxy):
    proxy = make_proxy(FakeBackend(reply("abc E", "ND xyz")))
    response = proxy.chat(stream=True, stop="END")
    chunks = sse_events(response.text)[:-1]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "abc "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stream_n_two_has_a_role_and_a_finish_chunk_per_choice(make_proxy):
    proxy = make_proxy(FakeBackend().then(reply("a"), reply("b")))
    chunks = sse_events(proxy.chat(stream=True, n=2).text)[:-1]
    roles = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["delta"].get("role") == "assistant"]
    finishes = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"] == "stop"]
    assert roles[:2] == [0, 1] and len(roles) == 2
    assert sorted(finishes) == [0, 1]
    texts = {
        c["choices"][0]["index"]: c["choices"][0]["delta"]["content"]
        for c in chunks[2:]
        if c["choices"][0]["delta"].get("content")
    }
    assert sorted(texts.values()) == ["a", "b"] and sorted(texts) == [0, 1]
    assert len(proxy.backend.jobs) == 2


# --------------------------------------------------------------------------- backend errors


@pytest.mark.parametrize("stream", [False, True])
def test_backend_rate_limited_before_any_event_is_http_429(make_proxy, stream):
    proxy = make_proxy(FakeBackend([RateLimited("upstream is busy", retry_after=3)]))
    response = proxy.chat(stream=stream)
    error = assert_error(response, 429, code="rate_limit_exceeded", type_="requests")
    assert error["message"] == "upstream is busy"
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-request-id"].startswith("req_")
    assert len(proxy.backend.jobs) == 1


def test_backend_failing_after_text_in_a_stream_sends_an_error_object_then_done(make_proxy):
    script = [Started(TokenUsage(input_tokens=5)), TextDelta("partial"), RateLimited("cut off", retry_after=1)]
    proxy = make_proxy(FakeBackend(script))
    response = proxy.chat(stream=True)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    role, text, error = events[:-1]
    assert role["choices"][0]["delta"]["role"] == "assistant"
    assert text["choices"][0]["delta"]["content"] == "partial"
    assert error == {"error": {"message": "cut off", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}


def test_backend_failing_after_text_without_stream_is_an_http_error(make_proxy):
    script = [Started(TokenUsage(input_tokens=5)), TextDelta("partial"), RateLimited("cut off", retry_after=2)]
    response = make_proxy(FakeBackend(script)).chat()
    assert_error(response, 429, code="rate_limit_exceeded")
    assert response.headers["retry-after"] == "2"


# --------------------------------------------------------------------------- request errors


def test_unknown_model_is_404_model_not_found(make_proxy):
    proxy = make_proxy()
    response = proxy.chat(model="gpt-nonexistent")
    error = assert_error(response, 404, code="model_not_found", type_="invalid_request_error", param="model")
    assert "gpt-nonexistent" in error["message"]
    assert proxy.backend.jobs == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-cp-wrong"}])
def test_missing_or_wrong_key_is_401(make_proxy, headers):
    proxy = make_proxy()
    response = proxy.client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        headers=headers,
    )
    assert_error(response, 401, code="invalid_api_key", type_="invalid_request_error")
    assert proxy.backend.jobs == []


def test_invalid_json_is_400(make_proxy):
    proxy = make_proxy()
    response = proxy.client.post(
        "/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [',
        headers={**proxy.headers, "content-type": "application/json"},
    )
    assert_error(response, 400, code="invalid_json", type_="invalid_request_error")
    missing = proxy.post("/v1/chat/completions", {"model": "gpt-4o-mini"})
    assert_error(missing, 400, code="missing_required_parameter", param="messages")
    assert proxy.backend.jobs == []


# --------------------------------------------------------------------------- ledger and budgets


def test_usage_reports_the_requests_and_tokens_served(make_proxy):
    proxy = make_proxy(FakeBackend(reply("Hello", cost_usd=0.25)))
    empty = proxy.get("/v1/usage").json()
    assert (empty["requests"], empty["prompt_tokens"], empty["completion_tokens"]) == (0, 0, 0)
    assert proxy.chat().status_code == 200
    assert proxy.chat(stream=True).status_code == 200
    assert proxy.chat(model="gpt-4o").status_code == 200
    report = proxy.get("/v1/usage")
    assert report.status_code == 200
    usage = report.json()
    assert usage["object"] == "usage"
    assert usage["project"] == "acme"
    assert usage["requests"] == 3
    assert usage["prompt_tokens"] == 3 * PROMPT_TOKENS
    assert usage["completion_tokens"] == 3 * COMPLETION_TOKENS
    assert usage["total_tokens"] == 3 * (PROMPT_TOKENS + COMPLETION_TOKENS)
    assert usage["total_cost_usd"] == pytest.approx(0.75)  # the backend's own cost is preferred
    assert usage["period_spent_usd"] == pytest.approx(0.75)
    assert usage["reserved_usd"] == pytest.approx(0.0)  # every reservation was settled
    assert usage["by_model"]["gpt-4o-mini"]["requests"] == 2
    assert usage["by_model"]["gpt-4o"]["requests"] == 1


def test_usage_without_backend_cost_is_priced_from_the_table(make_proxy):
    proxy = make_proxy()  # the default script reports no cost
    assert proxy.chat(model="haiku").status_code == 200
    usage = proxy.get("/v1/usage").json()
    # haiku: 1.0 input, 5.0 output, 0.1 cache read, 1.25 cache write per million tokens.
    expected = (11 * 1.0 + 7 * 5.0 + 100 * 0.1 + 20 * 1.25) / 1_000_000
    assert usage["total_cost_usd"] == pytest.approx(expected)


def test_tiny_budget_is_429_insufficient_quota_and_no_job(make_proxy):
    proxy = make_proxy(project=Project(name="acme", budget_usd=0.000001))
    response = proxy.chat()
    assert_error(response, 429, code="insufficient_quota", type_="insufficient_quota")
    streamed = proxy.chat(stream=True)
    assert_error(streamed, 429, code="insufficient_quota")
    assert proxy.backend.jobs == []
    usage = proxy.get("/v1/usage").json()
    assert usage["budget_usd"] == pytest.approx(0.000001)
    assert usage["requests"] == 0


def test_budget_is_spent_by_completed_requests(make_proxy):
    # Enough for one worst-case haiku reservation (about 0.042 USD: 8192 output tokens at 5 USD
    # per million, plus the prompt estimate), and the first request reports spending nearly all of it.
    proxy = make_proxy(FakeBackend(reply("x", cost_usd=0.095)), project=Project(name="acme", budget_usd=0.1))
    assert proxy.chat().status_code == 200
    assert_error(proxy.chat(), 429, code="insufficient_quota")
    assert len(proxy.backend.jobs) == 1


def test_ledger_records_admitted_failures_but_not_refusals(make_proxy):
    failing = [Started(TokenUsage(input_tokens=5)), TextDelta("partial"), RateLimited("cut off", retry_after=1)]
    backend = FakeBackend().then([RateLimited("busy", retry_after=1)], failing)
    proxy = make_proxy(backend)
    # Refused before admission: not recorded.
    assert proxy.chat(model="no-such-model").status_code == 404
    assert proxy.client.post("/v1/chat/completions", json={}, headers={"Authorization": "Bearer x"}).status_code == 401
    assert proxy.post("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}).status_code == 400
    assert proxy.get("/v1/usage").json()["requests"] == 0
    # Admitted, then failed (before any event; mid-stream): recorded, with no tokens returned.
    assert proxy.chat().status_code == 429
    assert proxy.chat(stream=True).status_code == 200
    usage = proxy.get("/v1/usage").json()
    assert usage["requests"] == 2
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (0, 0)
    assert usage["reserved_usd"] == pytest.approx(0.0)
    assert len(backend.jobs) == 2


# --------------------------------------------------------------------------- legacy completions


def test_legacy_completion_runs_a_chat_job(make_proxy):
    proxy = make_proxy(project=Project(name="acme", rpm=10))
    response = proxy.post("/v1/completions", {"model": "gpt-3.5-turbo", "prompt": "Say hi", "max_tokens": 20})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "gpt-3.5-turbo"
    assert body["choices"] == [{"text": "Hello world", "index": 0, "finish_reason": "stop", "logprobs": None}]
    assert body["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert body["usage"]["completion_tokens"] == COMPLETION_TOKENS
    assert response.headers["x-claude-model"] == "haiku"
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    [job] = proxy.backend.jobs
    assert (job.model, job.system, job.history, job.prompt) == ("haiku", "", [], [TextBlock("Say hi")])
    assert (job.max_output_tokens, job.owner, job.priority) == (20, "acme", Priority.INTERACTIVE)


def test_legacy_completion_with_several_prompts_runs_one_job_each(make_proxy):
    proxy = make_proxy()
    body = proxy.post("/v1/completions", {"model": "gpt-4o-mini", "prompt": ["one", "two"]}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["usage"]["prompt_tokens"] == 2 * PROMPT_TOKENS
    assert sorted(job.prompt[0].text for job in proxy.backend.jobs) == ["one", "two"]


def test_legacy_completion_streams_text_completion_chunks(make_proxy):
    proxy = make_proxy(FakeBackend(reply("Hi", " there")))
    response = proxy.post(
        "/v1/completions",
        {"model": "gpt-4o-mini", "prompt": "Greet", "stream": True, "stream_options": {"include_usage": True}},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("cmpl-")
    *texts, finish, usage = chunks
    assert [c["choices"][0]["text"] for c in texts] == ["Hi", " there"]  # no role chunk first
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == PROMPT_TOKENS
    [job] = proxy.backend.jobs
    assert job.prompt == [TextBlock("Greet")]


def test_legacy_completion_unknown_model_is_404(make_proxy):
    proxy = make_proxy()
    response = proxy.post("/v1/completions", {"model": "davinci-nope", "prompt": "x"})
    assert_error(response, 404, code="model_not_found")
    assert proxy.backend.jobs == []


# --------------------------------------------------------------------------- response cache


def test_identical_request_is_served_from_the_cache(make_proxy):
    proxy = make_proxy(**{"cache.enabled": True})
    first = proxy.chat(messages=[{"role": "user", "content": "cache me"}])
    second = proxy.chat(messages=[{"role": "user", "content": "cache me"}])
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.headers["x-claude-model"] == "haiku"
    assert len(proxy.backend.jobs) == 1
    hit = second.json()
    assert hit["choices"][0]["message"]["content"] == "Hello world"
    assert hit["usage"] == first.json()["usage"]
    assert hit["id"] != first.json()["id"]

    streamed = proxy.chat(messages=[{"role": "user", "content": "cache me"}], stream=True)
    assert streamed.headers["x-cache"] == "hit"
    chunks = sse_events(streamed.text)[:-1]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello world"
    assert len(proxy.backend.jobs) == 1

    other = proxy.chat(messages=[{"role": "user", "content": "something else"}])
    bypass = proxy.chat(messages=[{"role": "user", "content": "cache me"}], headers={"Cache-Control": "no-cache"})
    assert other.headers["x-cache"] == "miss" and bypass.headers["x-cache"] == "miss"
    assert len(proxy.backend.jobs) == 3
    # Replays are in the ledger (at no cost) as well.
    assert proxy.get("/v1/usage").json()["requests"] == 5


def test_cache_hit_is_served_past_rate_limits_and_a_spent_budget(make_proxy):
    proxy = make_proxy(
        FakeBackend(reply("cached", cost_usd=0.2)),
        project=Project(name="acme", rpm=1, budget_usd=0.2),
        **{"cache.enabled": True},
    )
    assert proxy.chat().headers["x-cache"] == "miss"
    hit = proxy.chat()  # the rpm of 1 is used and the budget is spent, yet the replay is served
    assert hit.status_code == 200 and hit.headers["x-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == "cached"
    assert proxy.chat(messages=[{"role": "user", "content": "new"}]).status_code == 429
    assert len(proxy.backend.jobs) == 1


def test_without_cache_there_is_no_x_cache_header(make_proxy):
    proxy = make_proxy()
    first, second = proxy.chat(), proxy.chat()
    assert "x-cache" not in first.headers and "x-cache" not in second.headers
    assert len(proxy.backend.jobs) == 2


# --------------------------------------------------------------------------- batches


def test_batch_lines_run_as_batch_priority_jobs(make_proxy):
    proxy = make_proxy(**{"batches.poll_s": 0.05})
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]},
        }
        for i in range(3)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    upload = proxy.client.post(
        "/v1/files", files={"file": ("input.jsonl", content)}, data={"purpose": "batch"}, headers=proxy.headers
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    created = proxy.post(
        "/v1/batches", {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    )
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]

    deadline = time.monotonic() + 10
    while True:
        batch = proxy.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            break
        assert time.monotonic() < deadline, f"batch still {batch['status']}"
        time.sleep(0.01)
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}

    output = proxy.get(f"/v1/files/{batch['output_file_id']}/content")
    results = {row["custom_id"]: row for row in map(json.loads, output.text.splitlines())}
    assert set(results) == {"line-0", "line-1", "line-2"}
    for row in results.values():
        assert row["error"] is None
        assert row["response"]["status_code"] == 200
        assert row["response"]["body"]["choices"][0]["message"]["content"] == "Hello world"

    jobs = proxy.backend.jobs
    assert len(jobs) == 3
    assert all(job.priority == Priority.BATCH for job in jobs)
    assert all((job.model, job.owner) == ("haiku", "acme") for job in jobs)
    assert sorted(job.prompt[0].text for job in jobs) == ["question 0", "question 1", "question 2"]


# --------------------------------------------------------------------------- OpenAI's schemas


@pytest.fixture()
def schemas() -> None:
    try:
        openapi.document_path()
    except Exception:  # noqa: BLE001 - the shared OpenAI document is not beside this checkout
        pytest.skip("OpenAI's OpenAPI document is not available")


def test_bodies_and_chunks_match_openai_schemas(make_proxy, schemas):
    backend = FakeBackend().then(
        reply("plain"),
        reply("a"),
        reply("b"),
        tool_call("call_1", "get_weather", '{"city": "Oslo"}'),
        reply("str", "eamed"),
        tool_call("call_2", "get_weather", '{"city":', ' "Rome"}'),
        reply("legacy"),
    )
    proxy = make_proxy(backend, **{"cache.enabled": True})
    for response in (
        proxy.chat(),
        proxy.chat(n=2, messages=[{"role": "user", "content": "two"}]),
        proxy.chat(tools=TOOLS, messages=[{"role": "user", "content": "tool"}]),
        proxy.chat(),  # a cache hit
    ):
        assert response.status_code == 200, response.text
        openapi.validate(response.json(), "CreateChatCompletionResponse")
    for response in (
        proxy.chat(stream=True, stream_options={"include_usage": True}, messages=[{"role": "user", "content": "s"}]),
        proxy.chat(stream=True, tools=TOOLS, messages=[{"role": "user", "content": "st"}]),
        proxy.chat(stream=True),  # a cache hit, replayed as chunks
    ):
        chunks = sse_events(response.text)[:-1]
        assert chunks
        for chunk in chunks:
            openapi.validate(chunk, "CreateChatCompletionStreamResponse")
    legacy = proxy.post("/v1/completions", {"model": "gpt-4o-mini", "prompt": "old"})
    openapi.validate(legacy.json(), "CreateCompletionResponse")
    assert len(backend.jobs) == 7  # n=2 ran twice; the two cache hits ran nothing


# --------------------------------------------------------------------------- lifespan


def test_lifespan_starts_and_closes_the_backend(tmp_path):
    backend = FakeBackend()
    settings = load_settings(None, environ={}, overrides={"storage.path": str(tmp_path)})
    app = create_app(settings, backend=backend)
    assert not backend.started
    with TestClient(app=app):
        assert backend.started and not backend.stopped
    assert backend.stopped
