"""Seams of the Messages surface: pings while a stream waits, Anthropic's rate-limit headers
and status pairs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from core.errors import InvalidRequest, ProxyError, RequestTimeout, ShuttingDown, UpstreamError
from core.types import Completed, TokenUsage
from proxy.messages.errors import anthropic_headers, anthropic_status, error_body, is_anthropic_path
from proxy.messages.render import with_pings
from proxy.pipeline import ChoiceDone, ChoiceText, RunEnded, StreamEvent


def test_with_pings_fills_a_wait_and_keeps_the_events_in_order():
    release = asyncio.Event()
    closed = []

    async def slow() -> AsyncGenerator[StreamEvent, None]:
        try:
            yield ChoiceText(0, "a")
            await release.wait()  # the model is thinking: nothing to send
            yield ChoiceText(0, "b")
        finally:
            closed.append(True)

    async def run() -> list[object]:
        seen: list[object] = []
        async for event in with_pings(slow(), interval_s=0.01):
            seen.append(event)
            if event is None and not release.is_set():
                release.set()
        return seen

    seen = asyncio.run(run())
    assert seen[0] == ChoiceText(0, "a") and seen[-1] == ChoiceText(0, "b")
    assert None in seen[1:-1]
    assert closed == [True]


def test_with_pings_closing_early_closes_the_events_even_mid_wait():
    closed = []

    async def stuck() -> AsyncGenerator[StreamEvent, None]:
        try:
            yield ChoiceText(0, "a")
            await asyncio.Event().wait()
            yield RunEnded([])  # never reached
        finally:
            closed.append(True)

    async def run() -> None:
        pinged = with_pings(stuck(), interval_s=0.01)
        assert await pinged.__anext__() == ChoiceText(0, "a")
        assert await pinged.__anext__() is None
        await pinged.aclose()

    asyncio.run(run())
    assert closed == [True]


def test_done_event_passes_through_unchanged():
    done = ChoiceDone(0, Completed(finish_reason="stop", usage=TokenUsage()), "STOP")

    async def one() -> AsyncGenerator[StreamEvent, None]:
        yield done

    async def run() -> list[object]:
        return [event async for event in with_pings(one(), interval_s=5)]

    assert asyncio.run(run()) == [done]


def test_rate_limit_headers_are_mirrored_with_an_rfc3339_reset():
    headers = {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "1m30s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "200",
        "x-ratelimit-reset-tokens": "250ms",
    }
    out = anthropic_headers(headers, now=0)
    assert out["anthropic-ratelimit-requests-limit"] == "10"
    assert out["anthropic-ratelimit-requests-remaining"] == "4"
    assert out["anthropic-ratelimit-requests-reset"] == "1970-01-01T00:01:30Z"
    assert out["anthropic-ratelimit-tokens-remaining"] == "200"
    assert out["anthropic-ratelimit-tokens-reset"] == "1970-01-01T00:00:00Z"
    assert out["x-ratelimit-limit-requests"] == "10"  # the OpenAI names stay
    assert anthropic_headers({}) == {}


def test_status_pairs():
    assert (anthropic_status(ShuttingDown("x")), error_body(ShuttingDown("x")).error.type) == (529, "overloaded_error")
    assert (anthropic_status(UpstreamError("x")), error_body(UpstreamError("x")).error.type) == (500, "api_error")
    assert error_body(RequestTimeout("x")).error.type == "timeout_error"
    assert error_body(ProxyError("x")).error.type == "api_error"
    bad = error_body(InvalidRequest("must be positive", param="max_tokens"))
    assert (bad.error.type, bad.error.message) == ("invalid_request_error", "max_tokens: must be positive")


def test_which_paths_answer_in_anthropics_shape():
    assert is_anthropic_path("/v1/messages", {})
    assert is_anthropic_path("/v1/messages/count_tokens", {})
    assert not is_anthropic_path("/v1/messagesx", {})
    assert not is_anthropic_path("/v1/models", {})
    assert is_anthropic_path("/v1/models/haiku", {"anthropic-version": "2023-06-01"})
    assert not is_anthropic_path("/v1/chat/completions", {"anthropic-version": "2023-06-01"})
