"""`/v1/messages` in-process: the real app, a scripted backend behind it. Every body is checked
with the official `anthropic` SDK's own types in strict mode, and the job the backend got is
checked too (the SDK itself runs against the real server in tests/e2e/test_messages.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from anthropic.types import Message, MessageTokensCount, ModelInfo, RawMessageStreamEvent
from pydantic import TypeAdapter

from budgets.keys import Project
from core.errors import CliUnavailable, RateLimited, UpstreamError
from core.types import (
    DocumentBlock,
    DocumentSource,
    Started,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    TokenUsage,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from proxy.documents import PDF
from tests.support.fake_backend import FakeBackend, reply, tool_call
from tests.support.pdf import tiny_pdf
from tests.unit import test_app_routes

pytestmark = pytest.mark.filterwarnings("ignore::litestar.exceptions.LitestarDeprecationWarning")


@pytest.fixture()
def make_proxy(tmp_path):
    """test_app_routes' app factory: the real app, a fake backend, a key of project `acme`."""
    yield from test_app_routes.make_proxy.__wrapped__(tmp_path)


VERSION = {"anthropic-version": "2023-06-01"}
_stream_event = TypeAdapter(RawMessageStreamEvent)


def post(proxy, body: dict[str, Any], *, path: str = "/v1/messages", headers: dict[str, str] | None = None):
    sent = {"x-api-key": proxy.key, **VERSION, **(headers or {})}
    return proxy.client.post(path, json=body, headers=sent)


def create(proxy, **body: Any):
    body.setdefault("model", "claude-sonnet-4-5")
    body.setdefault("max_tokens", 100)
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return post(proxy, body)


def message(response) -> Message:
    assert response.status_code == 200, response.text
    return Message.model_validate_json(response.text, strict=True)


def events(response) -> list[Any]:
    """Each server-sent event, checked against the SDK's stream event union; `event:` names
    must match the payload's type."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    out = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        name_line, data_line = block.split("\n")
        name = name_line.removeprefix("event: ")
        payload = json.loads(data_line.removeprefix("data: "))
        assert payload["type"] == name
        if name in ("ping", "error"):
            out.append(payload)
        else:
            out.append(_stream_event.validate_json(data_line.removeprefix("data: "), strict=True))
    return out


def error_of(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert body["error"]["type"] == kind
    return body["error"]["message"]


# --------------------------------------------------------------------------- create


def test_plain_message_echoes_the_model_and_reports_anthropic_usage(make_proxy):
    proxy = make_proxy(project=Project(name="acme", rpm=10, tpm=100000))
    response = post(
        proxy,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 321,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
            "metadata": {"user_id": "u-1"},
            "temperature": 0.2,
            "top_k": 5,
        },
        path="/v1/messages?beta=true",
        headers={"anthropic-beta": "prompt-caching-2024-07-31,interleaved-thinking-2025-05-14"},
    )
    body = message(response)
    assert body.id.startswith("msg_")
    assert body.model == "claude-sonnet-4-5"
    assert [block.type for block in body.content] == ["text"]
    assert body.content[0].text == "Hello world"  # type: ignore[union-attr]
    assert (body.stop_reason, body.stop_sequence) == ("end_turn", None)
    # Anthropic counts cache reads and writes apart from input tokens.
    usage = body.usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 7)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 20)
    assert response.headers["anthropic-ratelimit-requests-limit"] == "10"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "9"
    assert response.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert response.headers["anthropic-ratelimit-tokens-limit"] == "100000"
    assert response.headers["request-id"] == response.headers["x-request-id"]  # the SDKs read request-id
    [job] = proxy.backend.jobs
    assert (job.model, job.system, job.history, job.prompt) == (
        "claude-sonnet-4-5",
        "Be brief.",
        [],
        [TextBlock("Hi there")],
    )
    assert (job.max_output_tokens, job.owner) == (321, "acme")


def test_tiers_and_aliases_resolve_and_the_request_name_is_echoed(make_proxy):
    proxy = make_proxy()
    assert message(create(proxy, model="haiku")).model == "haiku"
    assert message(create(proxy, model="gpt-4o")).model == "gpt-4o"
    assert [job.model for job in proxy.backend.jobs] == ["haiku", "sonnet"]
    assert "gemini-pro" in error_of(create(proxy, model="gemini-pro"), 404, "not_found_error")


def test_bearer_key_works_and_usage_counts_messages_like_chat(make_proxy):
    proxy = make_proxy()
    response = proxy.client.post(
        "/v1/messages",
        json={"model": "haiku", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {proxy.key}"},
    )
    message(response)
    usage = proxy.get("/v1/usage").json()
    assert usage["requests"] == 1
    assert usage["by_model"]["haiku"]["requests"] == 1


def test_stop_sequence_cut_and_named(make_proxy):
    proxy = make_proxy(FakeBackend(reply("one two ", "STOP three")))
    body = message(create(proxy, stop_sequences=["STOP", "never"]))
    assert body.content[0].text == "one two "  # type: ignore[union-attr]
    assert (body.stop_reason, body.stop_sequence) == ("stop_sequence", "STOP")


def test_length_is_max_tokens(make_proxy):
    proxy = make_proxy(FakeBackend(reply("cut", finish_reason="length")))
    assert message(create(proxy)).stop_reason == "max_tokens"


# --------------------------------------------------------------------------- conversation


def test_system_message_inside_messages_stays_at_its_place_as_system_text(make_proxy):
    proxy = make_proxy()
    create(
        proxy,
        system="Top.",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "system", "content": "mid-conversation note"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
            {"role": "system", "content": [{"type": "text", "text": "last note"}]},
        ],
    )
    [job] = proxy.backend.jobs
    assert job.system == "Top."  # not merged into the top-level system prompt
    assert [turn.role for turn in job.history] == ["user", "assistant"]
    assert job.prompt == [
        TextBlock("<system-reminder>\nmid-conversation note\n</system-reminder>"),
        TextBlock("second"),
        TextBlock("<system-reminder>\nlast note\n</system-reminder>"),
    ]


def test_tools_reach_the_model_under_the_callers_names_and_a_tool_loop_continues(make_proxy):
    backend = FakeBackend().then(tool_call("toolu_01", "get_weather", '{"city":', ' "Paris"}'), reply("Sunny."))
    proxy = make_proxy(backend)
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "defer_loading": True,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    first = message(create(proxy, tools=tools, tool_choice={"type": "auto"}))
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "toolu_01", "get_weather", {"city": "Paris"})  # type: ignore[union-attr]
    second = message(
        create(
            proxy,
            tools=tools,
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [call.model_dump()]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": [{"type": "text", "text": "sunny"}],
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
            ],
        )
    )
    assert second.content[0].text == "Sunny."  # type: ignore[union-attr]
    first_job, second_job = backend.jobs
    assert first_job.tools == [
        ToolSpec(name="get_weather", description="Weather for a city", parameters=tools[0]["input_schema"])
    ]
    assert second_job.history[1].content == [ToolUseBlock("toolu_01", "get_weather", {"city": "Paris"})]
    assert second_job.prompt == [ToolResultBlock("toolu_01", [TextBlock("sunny")])]


@pytest.mark.parametrize(
    ("choice", "mode", "offered"),
    [
        ({"type": "auto"}, "auto", ["a", "b"]),
        ({"type": "any"}, "required", ["a", "b"]),
        ({"type": "tool", "name": "b"}, "required", ["b"]),
        ({"type": "none"}, "none", []),
    ],
)
def test_tool_choice(make_proxy, choice, mode, offered):
    proxy = make_proxy()
    tools = [{"name": name, "input_schema": {"type": "object"}} for name in ("a", "b")]
    message(create(proxy, tools=tools, tool_choice=choice))
    [job] = proxy.backend.jobs
    assert job.tool_choice == mode
    assert [spec.name for spec in job.tools] == offered


def test_server_tools_are_refused_clearly_and_tool_search_is_left_out(make_proxy):
    proxy = make_proxy()
    text = error_of(
        create(proxy, tools=[{"type": "web_search_20250305", "name": "web_search"}]), 400, "invalid_request_error"
    )
    assert "web_search_20250305" in text and "not supported" in text
    tools = [
        {"type": "tool_search_tool_regex_20251119", "name": "tool_search_tool_regex"},
        {"name": "Bash", "input_schema": {"type": "object"}, "defer_loading": True},
    ]
    message(create(proxy, tools=tools))
    assert [spec.name for spec in proxy.backend.jobs[0].tools] == ["Bash"]


def test_images_and_text_documents_reach_the_model(make_proxy):
    proxy = make_proxy()
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}},
        {"type": "text", "text": "Describe."},
    ]
    message(create(proxy, messages=[{"role": "user", "content": content}]))
    [job] = proxy.backend.jobs
    assert job.prompt[0].source.data == png  # type: ignore[union-attr]
    assert job.prompt[1:] == [TextBlock("Notes\n\nabc"), TextBlock("Describe.")]
    pdf = base64.b64encode(tiny_pdf("Quarterly report")).decode()
    document = {"type": "document", "title": "q.pdf", "source": {"type": "base64", "media_type": PDF, "data": pdf}}
    message(create(proxy, messages=[{"role": "user", "content": [document, {"type": "text", "text": "Sum up."}]}]))
    assert proxy.backend.jobs[1].prompt[0] == DocumentBlock(
        source=DocumentSource(type="base64", media_type=PDF, data=pdf), title="q.pdf"
    )
    by_url = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    assert "by URL or file id" in error_of(
        create(proxy, messages=[{"role": "user", "content": [by_url]}]), 400, "invalid_request_error"
    )
    not_pdf = {"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": "eA=="}}
    assert "must be PDFs" in error_of(
        create(proxy, messages=[{"role": "user", "content": [not_pdf]}]), 400, "invalid_request_error"
    )


def test_thinking_and_claude_code_extras_are_accepted(make_proxy):
    proxy = make_proxy()
    body = message(
        create(
            proxy,
            max_tokens=128000,
            thinking={"type": "adaptive"},
            output_config={"effort": "high"},
            context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            metadata={"user_id": "someone"},
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "a"},
                    ],
                },
                {"role": "user", "content": "q2"},
            ],
        )
    )
    assert body.stop_reason == "end_turn"
    [job] = proxy.backend.jobs
    assert job.max_output_tokens == 128000
    # Signed thinking goes back to the upstream with the text after it; the effort is the caller's.
    assert job.history[1].content == [ThinkingBlock("hmm", "sig"), TextBlock("a")]
    assert job.effort == "high"


# --------------------------------------------------------------------------- streaming


def test_stream_sends_anthropics_event_sequence(make_proxy):
    proxy = make_proxy()
    sent = events(create(proxy, stream=True, model="opus"))
    kinds = [event["type"] if isinstance(event, dict) else event.type for event in sent]
    assert kinds == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, _, block, one, two, stop, delta, _ = sent
    assert start.message.model == "opus" and start.message.content == []
    assert (block.index, block.content_block.type) == (0, "text")
    assert one.delta.text + two.delta.text == "Hello world"
    assert stop.index == 0
    assert (delta.delta.stop_reason, delta.usage.output_tokens, delta.usage.input_tokens) == ("end_turn", 7, 11)
    assert delta.usage.cache_read_input_tokens == 100


def test_stream_of_text_then_a_tool_call_opens_a_block_each(make_proxy):
    script = [
        Started(TokenUsage(input_tokens=3)),
        TextDelta("Checking."),
        *tool_call("toolu_9", "Bash", '{"command": ', '"ls"}')[1:],
    ]
    proxy = make_proxy(FakeBackend(script))
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    sent = [event for event in events(create(proxy, stream=True, tools=tools)) if not isinstance(event, dict)]
    starts = [event for event in sent if event.type == "content_block_start"]
    assert [(event.index, event.content_block.type) for event in starts] == [(0, "text"), (1, "tool_use")]
    assert (starts[1].content_block.id, starts[1].content_block.name) == ("toolu_9", "Bash")
    pieces = [e.delta.partial_json for e in sent if e.type == "content_block_delta" and e.index == 1]
    assert json.loads("".join(pieces)) == {"command": "ls"}
    assert [e.index for e in sent if e.type == "content_block_stop"] == [0, 1]
    [delta] = [event for event in sent if event.type == "message_delta"]
    assert delta.delta.stop_reason == "tool_use"


def test_failure_after_the_stream_began_is_an_error_event(make_proxy):
    script = [Started(TokenUsage(input_tokens=5)), TextDelta("partial"), UpstreamError("broke off")]
    sent = events(create(make_proxy(FakeBackend(script)), stream=True))
    assert sent[-1] == {"type": "error", "error": {"type": "api_error", "message": "broke off"}}


# --------------------------------------------------------------------------- errors


def test_errors_take_anthropics_shape_and_status_pairs(make_proxy):
    proxy = make_proxy()
    assert error_of(create(proxy, max_tokens=None), 400, "invalid_request_error") == "max_tokens: Field required"
    assert "messages" in error_of(create(proxy, messages="hi"), 400, "invalid_request_error")
    no_key = proxy.client.post("/v1/messages", json={}, headers=VERSION)
    error_of(no_key, 401, "authentication_error")
    error_of(post(proxy, {}, path="/v1/messages/nope"), 404, "not_found_error")
    # The OpenAI routes keep OpenAI's shape.
    assert proxy.client.post("/v1/chat/completions", json={}).json()["error"]["code"] == "invalid_api_key"


def test_rate_limits_and_budgets_are_429_rate_limit_error(make_proxy):
    proxy = make_proxy(project=Project(name="acme", rpm=1))
    message(create(proxy))
    limited = create(proxy)
    error_of(limited, 429, "rate_limit_error")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    broke = make_proxy(project=Project(name="acme", budget_usd=0.000001))
    assert "budget" in error_of(create(broke), 429, "rate_limit_error")


@pytest.mark.parametrize(
    ("raised", "status", "kind"),
    [
        (RateLimited("busy", retry_after=3), 429, "rate_limit_error"),
        (CliUnavailable("no CLI"), 529, "overloaded_error"),
        (UpstreamError("upstream broke"), 500, "api_error"),
    ],
)
def test_backend_errors_before_output_map_to_anthropic_statuses(make_proxy, raised, status, kind):
    proxy = make_proxy(FakeBackend([raised]))
    for stream in (False, True):
        assert error_of(create(proxy, stream=stream), status, kind) == raised.message


# --------------------------------------------------------------------------- count_tokens, models


def test_count_tokens_needs_no_max_tokens_and_grows_with_the_prompt(make_proxy):
    proxy = make_proxy()
    short = post(
        proxy, {"model": "haiku", "messages": [{"role": "user", "content": "Hi"}]}, path="/v1/messages/count_tokens"
    )
    long = post(
        proxy,
        {"model": "haiku", "messages": [{"role": "user", "content": "Hi " * 500}]},
        path="/v1/messages/count_tokens",
    )
    assert short.status_code == 200, short.text
    counted = MessageTokensCount.model_validate_json(short.text, strict=True).input_tokens
    assert 0 < counted < MessageTokensCount.model_validate_json(long.text, strict=True).input_tokens
    assert proxy.backend.jobs == []
    assert proxy.get("/v1/usage").json()["requests"] == 0


def test_models_in_anthropics_shape_with_anthropic_version(make_proxy):
    proxy = make_proxy()
    headers = {"x-api-key": proxy.key, **VERSION}
    page = proxy.client.get("/v1/models", headers=headers).json()
    assert page["has_more"] is False
    assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
    infos = [ModelInfo.model_validate_json(json.dumps(model), strict=True) for model in page["data"]]
    assert {"haiku", "sonnet", "opus"} <= {info.id for info in infos}
    one = proxy.client.get("/v1/models/claude-opus-4-1", headers=headers)
    assert ModelInfo.model_validate_json(one.text, strict=True).id == "claude-opus-4-1"
    error_of(proxy.client.get("/v1/models/gemini", headers=headers), 404, "not_found_error")
    # Without the header: OpenAI's shape, errors included.
    assert proxy.get("/v1/models").json()["object"] == "list"
    assert proxy.get("/v1/models/gemini").json()["error"]["code"] == "model_not_found"
