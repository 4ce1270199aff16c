"""proxy.chat.render.to_usage and core.types.TokenUsage."""

from __future__ import annotations

from core.types import TokenUsage
from proxy.chat.render import to_usage


def test_prompt_tokens_include_cache_reads_and_writes():
    usage = TokenUsage(input_tokens=10, output_tokens=7, cache_read_tokens=5, cache_creation_tokens=2)
    assert usage.prompt_tokens == 17


def test_token_usage_defaults_to_zero():
    usage = TokenUsage()
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens) == (
        0,
        0,
        0,
        0,
    )
    assert usage.prompt_tokens == 0


def test_to_usage_single_part():
    usage = to_usage([TokenUsage(input_tokens=10, output_tokens=7, cache_read_tokens=5, cache_creation_tokens=2)])
    assert usage.prompt_tokens == 17
    assert usage.completion_tokens == 7
    assert usage.total_tokens == 24
    assert usage.prompt_tokens_details.cached_tokens == 5


def test_to_usage_sums_several_parts():
    parts = [
        TokenUsage(input_tokens=10, output_tokens=7, cache_read_tokens=5, cache_creation_tokens=2),
        TokenUsage(input_tokens=3, output_tokens=11, cache_read_tokens=100, cache_creation_tokens=0),
        TokenUsage(input_tokens=1, output_tokens=0, cache_read_tokens=0, cache_creation_tokens=40),
    ]
    usage = to_usage(parts)
    assert usage.prompt_tokens == (10 + 5 + 2) + (3 + 100) + (1 + 40)
    assert usage.completion_tokens == 18
    assert usage.total_tokens == 161 + 18
    assert usage.prompt_tokens_details.cached_tokens == 105


def test_cache_creation_is_not_counted_as_cached():
    usage = to_usage([TokenUsage(input_tokens=1, cache_creation_tokens=50)])
    assert usage.prompt_tokens == 51
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_to_usage_of_nothing_is_zero():
    usage = to_usage([])
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (0, 0, 0)
    assert usage.prompt_tokens_details.cached_tokens == 0
