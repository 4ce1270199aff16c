"""Prices per model tier, and the worst-case cost a request is reserved against."""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct

from core.types import TokenUsage


class Price(Struct, forbid_unknown_fields=True, kw_only=True):
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


# List prices per million tokens, rounded up so that a reservation is never below the real cost.
DEFAULT_PRICES: dict[str, Price] = {
    "haiku": Price(input=1.0, output=5.0, cache_read=0.1, cache_write=1.25),
    "sonnet": Price(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75),
    "opus": Price(input=15.0, output=75.0, cache_read=1.5, cache_write=18.75),
}


def tier_of(model: str) -> str:
    """`haiku`, `sonnet` or `opus` for a tier name or a full claude-* id; unknown ids count as opus."""
    for tier in ("haiku", "sonnet", "opus"):
        if tier in model:
            return tier
    return "opus"  # the dearest, so an unknown model is never under-reserved


def price_for(model: str, prices: Mapping[str, Price]) -> Price:
    return prices.get(model) or prices[tier_of(model)]


def cost_of(usage: TokenUsage, price: Price) -> float:
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_creation_tokens * price.cache_write
    ) / 1_000_000


def worst_case_cost(prompt_tokens: int, max_output_tokens: int, price: Price) -> float:
    """Every prompt token at the dearest input rate (a cache write), every output token used."""
    dearest_input = max(price.input, price.cache_write, price.cache_read)
    return (prompt_tokens * dearest_input + max_output_tokens * price.output) / 1_000_000
