"""Reservations calibrated from settled requests fit small budgets, end to end with the real CLI."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.upstream import Reply

pytestmark = pytest.mark.e2e

WARM_UP = 3  # budgets.overhead_samples: settled requests before the overhead is calibrated
# A small request: a paragraph to classify, a two-word answer, `max_completion_tokens: 16`.
# Its worst case still prices every prompt token at the dearest input rate and all 16 output
# tokens, so only a prompt of some hundred tokens keeps it within 1.5 times the real cost.
PARAGRAPH = " ".join(["The delivery came two days late, the box was dented, but the lamp itself works well."] * 25)


def _small(server, key: str, content: str) -> httpx.Response:
    return httpx.post(
        server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": f"{content}: classify this review in two words. {PARAGRAPH}"}],
            "max_completion_tokens": 16,
        },
        timeout=60,
    )


def _usage(server, key: str) -> dict:
    response = httpx.get(server.base_url + "/usage", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def _calibrated(make_server, upstream):
    """A server whose overhead is calibrated, and what one small request really costs there."""
    # Costs from the price table the reservations use (the CLI's own figure prices this scripted
    # model lower than the table, which no calibration of the prompt could make up for).
    budgets = {"overhead_samples": WARM_UP, "prefer_cli_cost": False}
    server = make_server({"budgets": budgets, "pool": {"spares": 0}})
    # The upstream counts the whole request the CLI sends (its own system prompt included).
    upstream.on("small", Reply(text="Two words", output_tokens=2, count_input=True))
    warm = server.create_key("warm-up")
    for n in range(WARM_UP):
        assert _small(server, warm, f"small {n}").status_code == 200
    cost = _usage(server, warm)["total_cost_usd"] / WARM_UP
    assert cost > 0
    return server, cost


def test_a_budget_worth_two_and_a_half_small_requests_admits_two(make_server, upstream):
    server, cost = _calibrated(make_server, upstream)
    key = server.create_key("small-budget", budget_usd=2.5 * cost)
    codes = [_small(server, key, f"small {n}").status_code for n in range(3, 6)]
    assert codes == [200, 200, 429]
    usage = _usage(server, key)
    assert usage["requests"] == 2
    assert usage["total_cost_usd"] <= 2.5 * cost
    assert usage["reserved_usd"] == 0
    # The refused request never reached the upstream.
    assert upstream.requests_matching("small 5") == []
    assert len(upstream.requests_matching("small 4")) == 1


def test_twenty_concurrent_small_requests_overspend_by_at_most_one(make_server, upstream):
    server, cost = _calibrated(make_server, upstream)
    budget = 2.5 * cost
    key = server.create_key("small-race", budget_usd=budget)
    upstream.on("race", Reply(text="Two words", output_tokens=2, count_input=True, chunk_delay=0.05))
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda n: _small(server, key, f"small race {n:02}"), range(20)))
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 429}
    assert all(r.json()["error"]["code"] == "insufficient_quota" for r in responses if r.status_code == 429)
    usage = _usage(server, key)
    assert usage["requests"] == codes.count(200)
    assert usage["total_cost_usd"] <= budget + cost
    assert usage["reserved_usd"] == 0
    assert len(upstream.requests_matching("small race")) == codes.count(200)
