"""budgets.pricing: tiers, price lookup, cost arithmetic and the worst-case reservation."""

from __future__ import annotations

import pytest

from budgets.pricing import DEFAULT_PRICES, Price, cost_of, price_for, tier_of, worst_case_cost
from core.types import TokenUsage

PRICE = Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("haiku", "haiku"),
        ("sonnet", "sonnet"),
        ("opus", "opus"),
        ("claude-sonnet-5-5", "sonnet"),
        ("claude-sonnet-4-5-20250929", "sonnet"),
        ("claude-3-5-haiku-latest", "haiku"),
        ("claude-haiku-4-5", "haiku"),
        ("claude-opus-4-1", "opus"),
        ("claude-3-7-sonnet-latest", "sonnet"),
    ],
)
def test_tier_of_known_names(model: str, tier: str) -> None:
    assert tier_of(model) == tier


@pytest.mark.parametrize("model", ["claude-mystery-9", "gpt-4o", "", "claude-next"])
def test_tier_of_unknown_ids_count_as_the_dearest_tier(model: str) -> None:
    assert tier_of(model) == "opus"


def test_default_prices_order_tiers_by_cost() -> None:
    haiku, sonnet, opus = (DEFAULT_PRICES[t] for t in ("haiku", "sonnet", "opus"))
    for field in ("input", "output", "cache_read", "cache_write"):
        assert getattr(haiku, field) < getattr(sonnet, field) < getattr(opus, field)


def test_price_for_uses_the_tier_price_for_a_full_id() -> None:
    assert price_for("claude-sonnet-5-5", DEFAULT_PRICES) == DEFAULT_PRICES["sonnet"]
    assert price_for("claude-3-5-haiku-latest", DEFAULT_PRICES) == DEFAULT_PRICES["haiku"]
    assert price_for("claude-unknown", DEFAULT_PRICES) == DEFAULT_PRICES["opus"]


def test_price_for_prefers_an_exact_model_entry_over_its_tier() -> None:
    special = Price(input=0.5, output=2.0, cache_read=0.05, cache_write=0.6)
    prices = {**DEFAULT_PRICES, "claude-sonnet-5-5": special}
    assert price_for("claude-sonnet-5-5", prices) is special
    # Other ids of the same tier still get the tier price.
    assert price_for("claude-sonnet-4-5", prices) == DEFAULT_PRICES["sonnet"]
    assert price_for("sonnet", prices) == DEFAULT_PRICES["sonnet"]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (TokenUsage(input_tokens=1_000_000), 3.0),
        (TokenUsage(output_tokens=1_000_000), 15.0),
        (TokenUsage(cache_read_tokens=1_000_000), 0.3),
        (TokenUsage(cache_creation_tokens=1_000_000), 3.75),
        (TokenUsage(input_tokens=1000), 0.003),
        (TokenUsage(output_tokens=200), 0.003),
        (TokenUsage(), 0.0),
    ],
)
def test_cost_of_each_token_kind(usage: TokenUsage, expected: float) -> None:
    assert cost_of(usage, PRICE) == pytest.approx(expected)


def test_cost_of_sums_all_token_kinds() -> None:
    usage = TokenUsage(input_tokens=100, output_tokens=50, cache_read_tokens=2000, cache_creation_tokens=400)
    expected = (100 * 3.0 + 50 * 15.0 + 2000 * 0.3 + 400 * 3.75) / 1_000_000
    assert cost_of(usage, PRICE) == pytest.approx(expected)


def test_worst_case_cost_prices_prompt_tokens_at_the_cache_write_rate_when_dearest() -> None:
    # cache_write (3.75) is the dearest of input/cache_write/cache_read.
    assert worst_case_cost(1_000_000, 0, PRICE) == pytest.approx(3.75)
    assert worst_case_cost(0, 1_000_000, PRICE) == pytest.approx(15.0)
    assert worst_case_cost(1000, 500, PRICE) == pytest.approx((1000 * 3.75 + 500 * 15.0) / 1_000_000)


@pytest.mark.parametrize(
    ("price", "dearest"),
    [
        (Price(input=9.0, output=1.0, cache_read=2.0, cache_write=3.0), 9.0),
        (Price(input=1.0, output=1.0, cache_read=7.0, cache_write=3.0), 7.0),
        (Price(input=1.0, output=1.0, cache_read=2.0, cache_write=5.0), 5.0),
    ],
)
def test_worst_case_cost_uses_the_dearest_prompt_rate(price: Price, dearest: float) -> None:
    assert worst_case_cost(1_000_000, 0, price) == pytest.approx(dearest)


def test_worst_case_cost_is_never_below_a_real_cost_of_the_same_size() -> None:
    # However the prompt splits into fresh, cached and cache-write tokens, the real cost fits.
    for split in [(1000, 0, 0), (0, 1000, 0), (0, 0, 1000), (300, 300, 400)]:
        usage = TokenUsage(
            input_tokens=split[0], cache_read_tokens=split[1], cache_creation_tokens=split[2], output_tokens=700
        )
        for price in DEFAULT_PRICES.values():
            assert cost_of(usage, price) <= worst_case_cost(1000, 700, price) + 1e-12
